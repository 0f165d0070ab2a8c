//! One consistent look at the broker, and the last good one kept for when the
//! management API is down (degraded mode).

use std::collections::HashMap;

use app::model::{tap_queue_name, BrokerVersion, Freshness, NodeInfo, QueueInfo, Rates, TapState, Totals};

use crate::broker::management::{NodeStats, OverviewInfo};
use crate::broker::{Management, ManagementError, QueueStats};
use crate::ingest::CaptureStatus;
use crate::topology::{classify, Modes, Overrides, VhostState, WatchRules};

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub overview: OverviewInfo,
    pub nodes: Vec<NodeStats>,
    pub vhosts: Vec<VhostState>,
}

impl Snapshot {
    /// Fetches every vhost and classifies its queues with `rules` and the
    /// operator's `overrides`, as capture does.
    pub async fn fetch(
        management: &Management,
        explicit_vhosts: Vec<String>,
        rules: &WatchRules,
        overrides: &Overrides,
        modes: &Modes,
    ) -> Result<Self, ManagementError> {
        let overview = management.overview().await?;
        let nodes = management.nodes().await?;
        let mut vhosts = Vec::new();
        for name in management.vhost_names(explicit_vhosts).await? {
            let read = tokio::try_join!(
                management.queues(&name),
                management.exchanges(&name),
                management.bindings(&name),
                management.policies(&name),
                management.consumers(&name),
                management.channels(&name),
                management.connections(&name),
            );
            // A vhost named in REDRIVE_VHOSTS that does not exist (yet, or
            // any more) has nothing to show; it must not blank the others.
            let (queues, exchanges, bindings, policies, consumers, channels, connections) = match read {
                Err(ManagementError::Status { status: 404, .. }) => {
                    tracing::debug!(vhost = %name, "vhost not found; skipped");
                    continue;
                }
                other => other?,
            };
            let mut state = VhostState {
                overrides: overrides.get(&name).cloned().unwrap_or_default(),
                modes: modes.get(&name).cloned().unwrap_or_default(),
                default_mode: rules.default_mode,
                name,
                queues,
                exchanges,
                bindings,
                policies,
                consumers,
                channels,
                connections,
                verdicts: HashMap::new(),
            };
            state.verdicts = classify(&state, rules, &state.overrides);
            vhosts.push(state);
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

    pub fn queue_infos(&self, capture: &CaptureStatus) -> Vec<QueueInfo> {
        self.vhosts
            .iter()
            .flat_map(|v| v.queues.iter().map(move |q| queue_info(q, v, capture)))
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

pub fn queue_info(q: &QueueStats, v: &VhostState, capture: &CaptureStatus) -> QueueInfo {
    let verdict = v.verdict(&q.name);
    let stats = q.message_stats;
    QueueInfo {
        vhost: q.vhost.clone(),
        name: q.name.clone(),
        kind: q.kind,
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
        watched: verdict.is_some_and(|v| v.watched),
        watch_reason: verdict.and_then(|v| v.reason.clone()),
        watch_override: v.overrides.get(&q.name).copied(),
        capture: capture.consumer(&q.vhost, &q.name),
        capture_mode: v.is_watched(&q.name).then(|| v.mode_of(&q.name)),
        tap: v.is_tapped(&q.name).then(|| tap_state(q, v)),
    }
}

/// A tapped queue's tap as the broker shows it; `held_by_redrive` is the
/// service's to fill from the store.
fn tap_state(q: &QueueStats, v: &VhostState) -> TapState {
    let tap_queue = tap_queue_name(&q.name).unwrap_or_default();
    let tap = v.queues.iter().find(|t| t.name == tap_queue);
    TapState {
        exists: tap.is_some(),
        tap_backlog: tap.map_or(0, |t| t.messages),
        waiting_in_queue: q.messages,
        held_by_redrive: 0,
        note: None,
        tap_queue,
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
