//! Alert rules and their notifications, as the REST API, the server
//! functions and the Alerts page share them.

use serde::{Deserialize, Serialize};

use super::word::word;
use super::Severity;

/// What an alert rule watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertCondition {
    /// A queue counter above (or, for consumers, below) a threshold. `queue`
    /// is a regex over queue names; each matching queue fires on its own.
    Queue {
        #[serde(default)]
        vhost: Option<String>,
        queue: String,
        metric: QueueMetric,
        /// `above` or `below`.
        #[serde(default = "default_above")]
        op: String,
        threshold: f64,
    },
    /// Failures captured per minute for a service (any service when `None`).
    ErrorInflow {
        #[serde(default)]
        service: Option<String>,
        per_minute: f64,
    },
    /// Any open advisor finding at or above a severity.
    Finding { severity: Severity },
    /// A failure group appears: the first failure of a fingerprint Redrive
    /// had not stored before (since the rule was made). Fires once per group.
    NewGroup {
        #[serde(default)]
        service: Option<String>,
        #[serde(default)]
        vhost: Option<String>,
    },
}

fn default_above() -> String {
    "above".to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueMetric {
    Ready,
    Unacked,
    Consumers,
}

/// How a rule's notifications are sent.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum AlertFormat {
    /// Redrive's own JSON (`source`, `event`, `rule`, `key`, `summary`, …).
    #[default]
    Json,
    /// A Slack incoming webhook's message, with blocks.
    Slack,
    /// A Microsoft Teams incoming webhook's message card.
    Teams,
    /// Prometheus Alertmanager's webhook payload (`version` 4, `status`,
    /// `alerts[]`), for its routing and silences.
    Alertmanager,
    /// An e-mail through `REDRIVE_SMTP_URL` to `email_to`.
    Email,
}

word!(AlertFormat, "alert format");

/// One address or several, as a rule's `email_to` may be written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Addresses {
    One(String),
    Many(Vec<String>),
}

impl Addresses {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Addresses::One(a) => vec![a],
            Addresses::Many(all) => all,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRuleRequest {
    pub name: String,
    pub condition: AlertCondition,
    #[serde(default)]
    pub format: AlertFormat,
    /// Where webhook formats post (every format but `email`).
    #[serde(default)]
    pub webhook_url: String,
    /// Who `email` sends to.
    #[serde(default)]
    pub email_to: Option<Addresses>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub id: i64,
    pub name: String,
    pub condition: AlertCondition,
    #[serde(default)]
    pub format: AlertFormat,
    /// Empty for `email`; shown as `https://host/***` (its path can be the secret).
    pub webhook_url: String,
    #[serde(default)]
    pub email_to: Vec<String>,
    pub created_at: i64,
    /// Keys (e.g. `vhost/queue`) currently firing.
    pub firing: Vec<String>,
}

/// What a notification says happened.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum AlertEvent {
    /// A rule's condition started to hold for a key.
    Firing,
    /// It stopped holding.
    Resolved,
    /// An operator asked for a test notification.
    Test,
}

word!(AlertEvent, "alert event");

/// One webhook POST, queued durably and retried with backoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDelivery {
    pub id: i64,
    pub rule_id: i64,
    pub event: AlertEvent,
    pub key: String,
    pub payload: serde_json::Value,
    pub attempts: i64,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
}
