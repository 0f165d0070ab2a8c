//! What the management API answers, reduced to the fields Redrive reads.
//! Fields Redrive can do without have defaults: a broker version that
//! leaves one out must not make a whole listing unreadable.

use app::model::QueueKind;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Vhost {
    pub name: String,
}

/// A queue as `GET /api/queues/{vhost}` describes it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct QueueStats {
    pub vhost: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: QueueKind,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub exclusive: bool,
    #[serde(default)]
    pub arguments: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub policy: Option<String>,
    /// An operator policy (set by whoever runs the broker, e.g. a managed
    /// service) that applies on top of the user policy.
    #[serde(default)]
    pub operator_policy: Option<String>,
    #[serde(default)]
    pub effective_policy_definition: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub messages: i64,
    #[serde(default)]
    pub messages_ready: i64,
    #[serde(default)]
    pub messages_unacknowledged: i64,
    #[serde(default)]
    pub consumers: i64,
    #[serde(default)]
    pub message_stats: MessageStats,
}

impl QueueStats {
    /// A queue setting from its `x-` argument, else from its effective policy
    /// (arguments win over policies, as in the broker).
    pub fn setting(&self, key: &str) -> Option<&serde_json::Value> {
        self.arguments
            .get(&format!("x-{key}"))
            .or_else(|| self.effective_policy_definition.as_ref().and_then(|d| d.get(key)))
    }

    /// `lazy` or `default`; quorum queues and streams have no mode.
    pub fn mode(&self) -> &'static str {
        match self.setting("queue-mode").and_then(|v| v.as_str()) {
            Some("lazy") if self.kind == QueueKind::Classic => "lazy",
            _ => "default",
        }
    }

    pub fn dead_letter_exchange(&self) -> Option<&str> {
        self.setting("dead-letter-exchange").and_then(|v| v.as_str())
    }

    /// A stream: listed, never consumed (see `ingest::classify`).
    pub fn is_stream(&self) -> bool {
        self.kind == QueueKind::Stream
    }

    pub fn has_ttl(&self) -> bool {
        self.setting("message-ttl").is_some()
    }
}

/// Per-second rates; absent until the queue has seen traffic.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct MessageStats {
    #[serde(default)]
    pub publish_details: Rate,
    #[serde(default)]
    pub deliver_get_details: Rate,
    #[serde(default)]
    pub redeliver_details: Rate,
    #[serde(default)]
    pub ack_details: Rate,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Rate {
    #[serde(default)]
    pub rate: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExchangeInfo {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub internal: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct BindingInfo {
    pub source: String,
    pub destination: String,
    pub destination_type: String,
    #[serde(default)]
    pub routing_key: String,
    /// The binding's arguments (a headers exchange matches on them).
    #[serde(default)]
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// A consumer as `GET /api/consumers/{vhost}` describes it, reduced to what
/// the advisor needs.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConsumerInfo {
    #[serde(default)]
    pub queue: NamedRef,
    /// Redrive's own consumers are tagged `redrive-…`.
    #[serde(default)]
    pub consumer_tag: String,
    /// `false` for a consumer with automatic acknowledgement (no-ack).
    #[serde(default = "yes")]
    pub ack_required: bool,
    #[serde(default)]
    pub channel_details: ChannelRef,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NamedRef {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChannelRef {
    #[serde(default)]
    pub connection_name: String,
}

/// An open channel, reduced to what tells whether it publishes safely.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChannelInfo {
    #[serde(default)]
    pub user: String,
    /// Whether the channel is in publisher-confirm mode.
    #[serde(default)]
    pub confirm: bool,
    #[serde(default)]
    pub transactional: bool,
    #[serde(default)]
    pub connection_details: ConnectionRef,
    #[serde(default)]
    pub message_stats: ChannelStats,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConnectionRef {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub peer_host: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct ChannelStats {
    /// Messages published on the channel since it opened.
    #[serde(default)]
    pub publish: i64,
}

/// A connection and the name its client gave it, if any.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConnectionInfo {
    pub name: String,
    #[serde(default)]
    pub client_properties: ClientProperties,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientProperties {
    #[serde(default)]
    pub connection_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct OverviewInfo {
    #[serde(default)]
    pub rabbitmq_version: String,
    #[serde(default)]
    pub cluster_name: String,
    #[serde(default)]
    pub object_totals: ObjectTotals,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct ObjectTotals {
    #[serde(default)]
    pub connections: i64,
    #[serde(default)]
    pub consumers: i64,
    #[serde(default)]
    pub queues: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeStats {
    pub name: String,
    #[serde(default)]
    pub running: bool,
    #[serde(default)]
    pub mem_used: i64,
    #[serde(default)]
    pub mem_limit: i64,
    #[serde(default)]
    pub mem_alarm: bool,
    #[serde(default)]
    pub disk_free: i64,
    #[serde(default)]
    pub disk_free_limit: i64,
    #[serde(default)]
    pub disk_free_alarm: bool,
}
