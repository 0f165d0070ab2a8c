//! One consistent look at the broker, and the last good one kept for when the
//! management API is down (degraded mode).

use app::model::{BrokerVersion, Freshness, NodeInfo, Policy, QueueInfo, Rates, Totals};
use regex::Regex;

use crate::broker::management::{
    BindingInfo, ChannelInfo, ConnectionInfo, ConsumerInfo, ExchangeInfo, NodeStats, OverviewInfo,
};
use crate::broker::{Management, ManagementError, QueueStats};

#[derive(Debug, Clone, Default)]
pub struct VhostState {
    pub name: String,
    pub queues: Vec<QueueStats>,
    pub exchanges: Vec<ExchangeInfo>,
    pub bindings: Vec<BindingInfo>,
    pub policies: Vec<Policy>,
    pub consumers: Vec<ConsumerInfo>,
    pub channels: Vec<ChannelInfo>,
    pub connections: Vec<ConnectionInfo>,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub overview: OverviewInfo,
    pub nodes: Vec<NodeStats>,
    pub vhosts: Vec<VhostState>,
}

impl Snapshot {
    pub async fn fetch(
        management: &Management,
        explicit_vhosts: Vec<String>,
    ) -> Result<Self, ManagementError> {
        let overview = management.overview().await?;
        let nodes = management.nodes().await?;
        let mut vhosts = Vec::new();
        for name in management.vhost_names(explicit_vhosts).await? {
            let (queues, exchanges, bindings, policies, consumers, channels, connections) = tokio::try_join!(
                management.queues(&name),
                management.exchanges(&name),
                management.bindings(&name),
                management.policies(&name),
                management.consumers(&name),
                management.channels(&name),
                management.connections(&name),
            )?;
            vhosts.push(VhostState {
                name,
                queues,
                exchanges,
                bindings,
                policies,
                consumers,
                channels,
                connections,
            });
        }
        Ok(Self {
            overview,
            nodes,
            vhosts,
        })
    }

    pub fn version(&self) -> BrokerVersion {
        BrokerVersion::parse(&self.overview.rabbitmq_version)
    }

    /// From 3.12 classic queues keep messages on disk and ignore `queue-mode`.
    pub fn lazy_mode_matters(&self) -> bool {
        self.version().lazy_mode_matters()
    }

    pub fn vhost(&self, name: &str) -> Option<&VhostState> {
        self.vhosts.iter().find(|v| v.name == name)
    }

    pub fn queue_infos(&self, watch: &Regex) -> Vec<QueueInfo> {
        self.vhosts
            .iter()
            .flat_map(|v| v.queues.iter())
            .map(|q| queue_info(q, watch))
            .collect()
    }

    pub fn totals(&self) -> Totals {
        let queues = self.vhosts.iter().flat_map(|v| v.queues.iter());
        let mut t = Totals {
            connections: self.overview.object_totals.connections,
            ..Totals::default()
        };
        for q in queues {
            t.queues += 1;
            t.messages += q.messages;
            t.messages_ready += q.messages_ready;
            t.messages_unacknowledged += q.messages_unacknowledged;
            t.consumers += q.consumers;
        }
        t
    }

    pub fn node_infos(&self) -> Vec<NodeInfo> {
        self.nodes
            .iter()
            .map(|n| NodeInfo {
                name: n.name.clone(),
                running: n.running,
                mem_used: n.mem_used,
                mem_limit: n.mem_limit,
                mem_alarm: n.mem_alarm,
                disk_free: n.disk_free,
                disk_free_limit: n.disk_free_limit,
                disk_free_alarm: n.disk_free_alarm,
            })
            .collect()
    }
}

pub fn queue_info(q: &QueueStats, watch: &Regex) -> QueueInfo {
    let stats = q.message_stats;
    QueueInfo {
        vhost: q.vhost.clone(),
        name: q.name.clone(),
        kind: if q.kind.is_empty() {
            "classic".into()
        } else {
            q.kind.clone()
        },
        durable: q.durable,
        auto_delete: q.auto_delete,
        exclusive: q.exclusive,
        mode: q.mode().to_owned(),
        policy: q.policy.clone(),
        operator_policy: q.operator_policy.clone(),
        arguments: serde_json::Value::Object(q.arguments.clone()),
        effective_policy: serde_json::Value::Object(
            q.effective_policy_definition.clone().unwrap_or_default(),
        ),
        messages_ready: q.messages_ready,
        messages_unacknowledged: q.messages_unacknowledged,
        messages: q.messages,
        consumers: q.consumers,
        rates: Rates {
            incoming: stats.publish_details.rate,
            deliver_get: stats.deliver_get_details.rate,
            redelivered: stats.redeliver_details.rate,
            ack: stats.ack_details.rate,
        },
        watched: watch.is_match(&q.name),
    }
}

/// The last good snapshot with when it was taken, and the last error.
#[derive(Debug, Clone, Default)]
pub struct Cached {
    pub snapshot: Option<std::sync::Arc<Snapshot>>,
    pub fetched_at: Option<i64>,
    /// When the last attempt was made, successful or not.
    pub attempted_at: Option<i64>,
    pub error: Option<String>,
}

impl Cached {
    pub fn freshness(&self) -> Freshness {
        Freshness {
            fetched_at: self.fetched_at,
            error: self.error.clone(),
        }
    }
}
