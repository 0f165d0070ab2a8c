//! Broker health: queue statistics, history, policies, advisor findings and
//! alerts, as the REST API, the server functions and the pages share them.

use serde::{Deserialize, Serialize};

use super::word::word;

/// A queue's type, as the broker names it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum QueueKind {
    /// Also what a broker that leaves the type out means.
    #[default]
    #[serde(alias = "")]
    Classic,
    Quorum,
    /// Listed, never consumed: a stream keeps its messages for every reader.
    Stream,
    /// A type this Redrive does not know (a newer broker's or a plugin's),
    /// so one unfamiliar queue does not make a whole listing unreadable.
    #[serde(other)]
    Other,
}

word!(QueueKind, "queue type");

/// One queue as the management UI shows it, plus what Redrive knows about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueInfo {
    pub vhost: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: QueueKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive: bool,
    /// `lazy` or `default`, from the queue's arguments or its effective policy.
    pub mode: String,
    /// Name of the policy that applies, if any.
    pub policy: Option<String>,
    /// Name of the operator policy that applies on top of it, if any.
    #[serde(default)]
    pub operator_policy: Option<String>,
    /// The queue's declared `x-*` arguments.
    pub arguments: serde_json::Value,
    /// The definition of the effective policy (empty object without one).
    pub effective_policy: serde_json::Value,
    pub messages_ready: i64,
    pub messages_unacknowledged: i64,
    pub messages: i64,
    pub consumers: i64,
    /// Messages per second, as the broker's statistics report them.
    pub rates: Rates,
    /// Whether Redrive captures this queue's messages.
    pub watched: bool,
    /// Why it is captured ("dead-letter target of payments.work via policy
    /// payments-dlx"), or why a failure-looking queue is not.
    #[serde(default)]
    pub watch_reason: Option<String>,
    /// The operator's switch, when one overrides the rules.
    #[serde(default)]
    pub watch_override: Option<bool>,
    /// The state of Redrive's consumer on this queue, when it has one.
    #[serde(default)]
    pub capture: Option<ConsumerHealth>,
    /// How Redrive captures this queue, when it does.
    #[serde(default)]
    pub capture_mode: Option<CaptureMode>,
    /// For a tapped queue: its tap and what waits on each side.
    #[serde(default)]
    pub tap: Option<TapState>,
}

/// How Redrive captures a queue.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum CaptureMode {
    /// Redrive consumes the queue: its messages move into Redrive's store.
    #[default]
    Consume,
    /// Redrive binds a queue of its own (`redrive.tap.<queue>`) wherever
    /// the queue is bound and captures the copies; the queue, its messages
    /// and its consumers are left alone.
    Tap,
}

word!(CaptureMode, "capture mode");

impl std::str::FromStr for CaptureMode {
    type Err = crate::model::UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

/// The prefix of Redrive's tap queues: whoever lists the broker's queues
/// sees whose they are.
pub const TAP_PREFIX: &str = "redrive.tap.";

/// The name of the tap of `queue`, or `None` when it would be longer than
/// a queue name may be (255 bytes).
pub fn tap_queue_name(queue: &str) -> Option<String> {
    let name = format!("{TAP_PREFIX}{queue}");
    (name.len() <= 255).then_some(name)
}

/// A tapped queue as the Queues page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TapState {
    /// Redrive's queue that receives the copies.
    pub tap_queue: String,
    /// Whether the tap queue exists on the broker.
    pub exists: bool,
    /// Messages waiting in the tap queue for Redrive to store them.
    pub tap_backlog: i64,
    /// Originals waiting in the service's queue (Redrive leaves them).
    pub waiting_in_queue: i64,
    /// Messages Redrive holds for this queue (copies and earlier captures).
    pub held_by_redrive: i64,
    /// A change of mode under way, in words ("switching from consume").
    #[serde(default)]
    pub note: Option<String>,
}

/// Where the original of a stored message is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum TapOriginal {
    /// Stored from a tap: the original went to the service's queue too and
    /// Redrive left it there.
    InQueue,
    /// Stored from a tap; Redrive later took the original from the service's
    /// queue (it was switched to consume) without storing it again.
    Taken,
    /// Stored from a tap; when the queue was switched to consume, the
    /// original was no longer in it (the service handled it, or it expired).
    Left,
}

word!(TapOriginal, "tap original");

/// Where one of Redrive's consumers stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ConsumerState {
    Starting,
    Connected,
    Reconnecting,
}

word!(ConsumerState, "consumer state");

/// A consumer's state, since when (unix ms), and the error that made it
/// reconnect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerHealth {
    pub vhost: String,
    pub queue: String,
    pub state: ConsumerState,
    pub since: i64,
    pub last_error: Option<String>,
}

/// Body of `PUT /api/v1/queues/{vhost}/{name}/watch`: `true` captures the
/// queue, `false` leaves it alone, `null` returns it to the rules. `mode`,
/// when given, sets how it is captured (kept when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSwitch {
    pub watch: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CaptureMode>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub incoming: f64,
    /// Deliveries plus basic.get, acked or not.
    pub deliver_get: f64,
    pub redelivered: f64,
    pub ack: f64,
}

/// How fresh broker data is: pages show a banner when the management API
/// could not be reached and the data shown is the last known.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Freshness {
    /// When the data was read from the broker (unix ms); `None` if never.
    pub fetched_at: Option<i64>,
    /// Why the last attempt to refresh failed, if it did.
    pub error: Option<String>,
}

impl Freshness {
    pub fn is_degraded(&self) -> bool {
        self.error.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuesView {
    pub queues: Vec<QueueInfo>,
    pub freshness: Freshness,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub running: bool,
    pub mem_used: i64,
    pub mem_limit: i64,
    pub mem_alarm: bool,
    pub disk_free: i64,
    pub disk_free_limit: i64,
    pub disk_free_alarm: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub queues: i64,
    pub messages: i64,
    pub messages_ready: i64,
    pub messages_unacknowledged: i64,
    pub consumers: i64,
    pub connections: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeverityCounts {
    pub critical: i64,
    pub warning: i64,
    pub info: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInflow {
    pub service: String,
    pub last_hour: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub rabbitmq_version: String,
    pub cluster_name: String,
    pub nodes: Vec<NodeInfo>,
    pub totals: Totals,
    /// The ten queues with the most messages.
    pub deepest: Vec<QueueInfo>,
    /// Failures captured in the last hour, per service.
    pub error_inflow: Vec<ServiceInflow>,
    pub findings: SeverityCounts,
    pub freshness: Freshness,
    /// Messages Redrive has stored (every status): 0 means nothing was
    /// ever captured, and the page explains why.
    #[serde(default)]
    pub stored: i64,
    /// Of those, failed ones still waiting for a human (groups on hold
    /// left out).
    #[serde(default)]
    pub waiting: i64,
    /// Failure groups on hold now, left out of `waiting` and `error_inflow`.
    #[serde(default)]
    pub held_groups: i64,
    /// Failed messages on hold by themselves (their group is not), left
    /// out of `waiting` and `error_inflow` too.
    #[serde(default)]
    pub held_messages: i64,
}

/// A policy as the broker stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    #[serde(rename = "apply-to", alias = "apply_to")]
    pub apply_to: String,
    pub priority: i64,
    pub definition: serde_json::Value,
}

/// Body of `PUT /api/v1/policies/{vhost}/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRequest {
    pub pattern: String,
    #[serde(default = "default_apply_to")]
    pub apply_to: String,
    #[serde(default)]
    pub priority: i64,
    pub definition: serde_json::Value,
}

/// What a policy can apply to, as the management API names it.
pub const APPLY_TO: [&str; 6] = [
    "queues",
    "classic_queues",
    "quorum_queues",
    "streams",
    "exchanges",
    "all",
];

fn default_apply_to() -> String {
    "queues".to_owned()
}

/// `major.minor` of the broker, for what its policies support. An unknown
/// version (`0.0`) counts as old for what Redrive advises (lazy mode may
/// matter) but offers every apply-to value: the broker's own error says more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct BrokerVersion {
    pub major: u32,
    pub minor: u32,
}

impl BrokerVersion {
    const V3_10: Self = Self { major: 3, minor: 10 };
    const V3_12: Self = Self { major: 3, minor: 12 };

    /// `3.13.7` → 3.13; anything unreadable → 0.0.
    pub fn parse(version: &str) -> Self {
        let mut parts = version.split('.').map(|p| p.trim().parse::<u32>().unwrap_or(0));
        Self {
            major: parts.next().unwrap_or(0),
            minor: parts.next().unwrap_or(0),
        }
    }

    pub fn is_known(self) -> bool {
        self != Self::default()
    }

    /// Before 3.12 a classic queue keeps messages in memory unless it is
    /// lazy; from 3.12 it always stores them on disk and ignores `queue-mode`.
    pub fn lazy_mode_matters(self) -> bool {
        self < Self::V3_12
    }

    /// From 3.10 quorum queues can dead-letter at-least-once.
    pub fn at_least_once_dead_lettering(self) -> bool {
        self >= Self::V3_10
    }

    /// From 3.12 a policy can apply to one queue type; older brokers refuse
    /// `classic_queues`, `quorum_queues` and `streams`.
    pub fn queue_type_apply_to(self) -> bool {
        self >= Self::V3_12
    }

    /// The apply-to values this broker accepts (all of them while unknown).
    pub fn apply_to_options(self) -> Vec<&'static str> {
        let every = !self.is_known() || self.queue_type_apply_to();
        APPLY_TO
            .into_iter()
            .filter(|a| every || matches!(*a, "queues" | "exchanges" | "all"))
            .collect()
    }
}

/// Which queues a (proposed) policy would match, and which policy wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyPreview {
    pub matches: Vec<PolicyMatch>,
    /// Version notes: e.g. `queue-mode` being ignored on this broker.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyMatch {
    pub queue: String,
    #[serde(rename = "type")]
    pub kind: QueueKind,
    /// The policy in force now.
    pub current: Option<String>,
    /// The policy that would win with the proposed one saved.
    pub winner: Option<String>,
    /// Why the proposed policy would not take effect here, if it would not.
    pub note: Option<String>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

word!(Severity, "severity");

/// A one-click fix the advisor offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FixAction {
    Policy {
        vhost: String,
        name: String,
        #[serde(flatten)]
        policy: PolicyRequest,
    },
    Binding {
        vhost: String,
        exchange: String,
        queue: String,
        routing_key: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: i64,
    pub vhost: String,
    /// The queue or exchange name, or the publishing application.
    pub object: String,
    /// `queue`, `exchange` or `publisher`.
    pub object_type: String,
    pub kind: String,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
    pub action: Option<FixAction>,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Set once the condition no longer holds.
    pub resolved_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvisorReport {
    pub findings: Vec<Finding>,
    pub freshness: Freshness,
}

/// Chart windows offered on the queue and service pages.
pub const WINDOWS: [&str; 3] = ["1h", "24h", "7d"];

/// `1h`, `24h`, `7d` → seconds.
pub fn window_secs(window: &str) -> Option<i64> {
    match window {
        "1h" => Some(3_600),
        "24h" => Some(86_400),
        "7d" => Some(7 * 86_400),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// Start of the bucket (unix ms).
    pub at: i64,
    pub ready: f64,
    pub unacked: f64,
    pub consumers: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueHistory {
    pub vhost: String,
    pub queue: String,
    pub window: String,
    pub bucket_secs: i64,
    /// The server's clock when answering (unix ms): the chart's right edge.
    pub until: i64,
    pub points: Vec<HistoryPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InflowPoint {
    pub at: i64,
    /// Failures captured in the bucket, per minute.
    pub per_minute: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceHistory {
    pub service: String,
    pub window: String,
    pub bucket_secs: i64,
    pub until: i64,
    pub points: Vec<InflowPoint>,
}
