//! Types shared by the REST API, the server functions and the UI.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Failed,
    /// A replay is in flight: claimed, published, waiting for the broker's confirm.
    Replaying,
    Replayed,
    Discarded,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 4] = [
        MessageStatus::Failed,
        MessageStatus::Replaying,
        MessageStatus::Replayed,
        MessageStatus::Discarded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Failed => "failed",
            MessageStatus::Replaying => "replaying",
            MessageStatus::Replayed => "replayed",
            MessageStatus::Discarded => "discarded",
        }
    }
}

impl std::str::FromStr for MessageStatus {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "unknown status `{s}` (expected failed, replaying, replayed or discarded)"
                ))
            })
    }
}

impl std::fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the messages list. `exchange`/`routing_key` are the original
/// route the message was published to before it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageSummary {
    pub id: i64,
    pub vhost: String,
    pub queue: String,
    pub status: MessageStatus,
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub reason: Option<String>,
    pub service: Option<String>,
    pub death_count: i64,
    pub received_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: String,
    pub action: String,
    pub actor: String,
    pub target: Option<String>,
    /// `ok` or `error`.
    pub result: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDetail {
    #[serde(flatten)]
    pub summary: MessageSummary,
    /// AMQP basic properties, snake_case names, headers excluded.
    pub properties: serde_json::Value,
    /// Headers with their AMQP types: `{"name": {"type": "longstr", "value": "..."}}`.
    pub headers: serde_json::Value,
    pub stack_trace: Option<String>,
    pub delivery_exchange: String,
    pub delivery_routing_key: String,
    pub body_size: usize,
    pub body_base64: String,
    /// The body when it is valid UTF-8.
    pub body_text: Option<String>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagePage {
    pub items: Vec<MessageSummary>,
    pub next_cursor: Option<String>,
    pub total: i64,
}

/// Filters of the messages list; every field is optional and travels in the URL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageQuery {
    pub status: Option<String>,
    pub vhost: Option<String>,
    pub queue: Option<String>,
    pub q: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Where to replay to; defaults to the message's original route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayTarget {
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueInfo {
    pub vhost: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub durable: bool,
    pub messages_ready: i64,
    pub messages_unacknowledged: i64,
    pub consumers: i64,
    /// Whether Redrive captures this queue's messages.
    pub watched: bool,
}

/// The errors every boundary speaks; the server maps them to HTTP statuses.
/// Messages are meant for operators: they never carry internal causes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("broker refused: {0}")]
    Broker(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal error (see server log)")]
    Internal,
}
