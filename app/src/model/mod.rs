//! Types shared by the REST API, the server functions and the UI.

mod alerts;
mod auth;
mod jobs;
mod monitor;
mod plan;
mod word;

pub use alerts::*;
pub use auth::*;
pub use jobs::{Destination, DryRun, Job, JobAction, JobCommand, JobCreated, JobItem, JobRequest, JobState};
pub use monitor::*;
pub use plan::{Canary, JobPhase, Ramp, ReplayPlan, DEFAULT_MAX_BACKLOG};
use serde::{Deserialize, Serialize};
use word::word;
pub use word::UnknownWord;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum MessageStatus {
    Failed,
    /// A replay is in flight: claimed, published, waiting for the broker's confirm.
    Replaying,
    Replayed,
    Discarded,
}

word!(MessageStatus, "message status");

impl std::str::FromStr for MessageStatus {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown status `{s}` (expected failed, replaying, replayed or discarded)"
            ))
        })
    }
}

/// What was done to a message, as its history lists it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum HistoryAction {
    /// Edited before a replay (the diff is the entry's detail).
    Edit,
    Replay,
    Discard,
    Restore,
}

word!(HistoryAction, "history action");

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
    /// Failure group; see `GET /api/v1/groups`.
    pub group_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: String,
    pub action: HistoryAction,
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
    /// True when `body_base64`/`body_text` hold only the start of the body
    /// (the UI's view); the REST API always sends it whole.
    #[serde(default)]
    pub body_truncated: bool,
    pub history: Vec<HistoryEntry>,
    /// The earlier record this message is a replayed copy of (it failed again).
    #[serde(default)]
    pub replayed_from: Option<i64>,
    /// How many times this message failed again after being replayed.
    #[serde(default)]
    pub failed_again_after_replay: i64,
    /// Later records: copies of this message that came back after its replay.
    #[serde(default)]
    pub came_back_as: Vec<i64>,
    /// Tags and notes on this message (group tags are on the group).
    #[serde(default)]
    pub annotations: Annotations,
    /// Set when a replay was published but never confirmed: the
    /// `x-redrive-replay-id` it carried, which a retry reuses so consumers
    /// can recognise a second copy.
    #[serde(default)]
    pub uncertain_replay_id: Option<String>,
    /// Set when this row may be a second copy of that earlier row: the
    /// broker redelivered an identical message after Redrive sent the
    /// earlier one's ack and before it learnt the ack was processed.
    #[serde(default)]
    pub possible_copy_of: Option<i64>,
    /// Set for a copy taken from a tap: where its original is.
    #[serde(default)]
    pub tap: Option<TapOriginal>,
    /// Values shown here read `••••` (`REDRIVE_MASK`); the store and
    /// replays keep the real ones.
    #[serde(default)]
    pub masked: bool,
    /// The user on this message (a broker user name).
    #[serde(default)]
    pub owner: Option<String>,
    /// Its own hold, while one lasts (its group's is on the group).
    #[serde(default)]
    pub hold: Option<Hold>,
}

/// Tags and notes of a message or a failure group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Annotations {
    pub tags: Vec<String>,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub text: String,
    pub actor: String,
    pub at: String,
}

/// What an annotation (a note, a tag), an owner or a hold is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum AnnotationTarget {
    Message(i64),
    Group(String),
}

/// Add a note, add a tag, or remove a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationChange {
    AddNote(String),
    AddTag(String),
    RemoveTag(String),
}

impl MessageDetail {
    /// Keeps at most `limit` bytes of the body, so a 5 MiB payload does not
    /// travel into every page render twice (HTML and hydration data).
    pub fn truncate_body(mut self, limit: usize) -> Self {
        use base64::{engine::general_purpose::STANDARD as B64, Engine};
        if self.body_size <= limit {
            return self;
        }
        let bytes = B64.decode(self.body_base64.as_bytes()).unwrap_or_default();
        let head = &bytes[..limit.min(bytes.len())];
        self.body_base64 = B64.encode(head);
        // Cut on a char boundary so the text stays valid.
        self.body_text = self.body_text.map(|t| {
            let mut end = limit.min(t.len());
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t[..end].to_owned()
        });
        self.body_truncated = true;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagePage {
    pub items: Vec<MessageSummary>,
    pub next_cursor: Option<String>,
    /// Matching messages, counted up to [`COUNT_CAP`] unless the query asked
    /// for an exact count.
    pub total: i64,
    /// `total` is a lower bound: counting stopped at [`COUNT_CAP`]. An exact
    /// count of a search or a time window over a million rows costs a second
    /// on every page, so it is only made on demand (`exact=true`).
    #[serde(default)]
    pub total_capped: bool,
    /// Messages stored in the last moments that a search cannot see yet
    /// (the full-text indexer is catching up with a burst); 0 otherwise.
    #[serde(default)]
    pub unsearchable: i64,
}

/// How many matches a page counts before it says "1,000+". Only a search
/// or a time window is counted by reading rows; every other filter's total
/// is exact from the store's kept counts.
pub const COUNT_CAP: i64 = 1_000;

/// The most messages `/m/{message_id}` lists for one message id (a
/// publisher that reuses ids, or one failure captured again after replay).
pub const MESSAGE_ID_MATCHES: u32 = 100;

/// An AMQP `message_id` is a short string: at most 255 bytes.
pub const MESSAGE_ID_MAX_BYTES: usize = 255;

/// Filters of the messages list; every field is optional and travels in the URL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageQuery {
    pub status: Option<String>,
    pub vhost: Option<String>,
    pub queue: Option<String>,
    pub service: Option<String>,
    pub group: Option<String>,
    /// Tagged so, directly or through the message's group.
    pub tag: Option<String>,
    /// Received at or after (RFC 3339).
    pub from: Option<String>,
    /// Received before (RFC 3339).
    pub to: Option<String>,
    pub q: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Count every match instead of stopping at [`COUNT_CAP`].
    pub exact: Option<bool>,
}

/// One failure group: messages that failed the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub id: String,
    /// One of the services the group's messages came from (the first by
    /// name); see `services` for all of them.
    pub service: Option<String>,
    /// Every service the group's messages (within the query) came from, by
    /// name: one failure in a shared library fails several services alike.
    #[serde(default)]
    pub services: Vec<String>,
    /// Exception type and normalised message, or dead-letter reason and route.
    pub reason: String,
    pub exception_type: Option<String>,
    pub count: i64,
    pub failed: i64,
    pub replayed: i64,
    pub discarded: i64,
    /// Messages of the group that are replayed copies which failed again.
    pub came_back: i64,
    pub first_seen: String,
    pub last_seen: String,
    /// The oldest message of the group, to look at one example.
    pub example_id: i64,
    /// Arrivals per hour over the last 24 hours, oldest first.
    pub arrivals_24h: Vec<i64>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The user on it (a broker user name).
    #[serde(default)]
    pub owner: Option<String>,
    /// Its hold, while one lasts.
    #[serde(default)]
    pub hold: Option<Hold>,
}

/// A hold on a failure group or on one message: left out of the
/// overview's counts and alerts (a group also out of the default group
/// list) until `until`, while failures are still captured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// RFC 3339: when it ends at the latest.
    pub until: String,
    /// It also ends when a replay is confirmed by the broker (the fix
    /// shipped, and works): of one of the group's messages, or of the
    /// held message itself.
    #[serde(default)]
    pub until_replayed: bool,
    pub note: Option<String>,
    pub by: String,
    /// When it began (RFC 3339).
    pub at: String,
    /// A group's failures captured since it began (a message has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrived_since: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupQuery {
    pub vhost: Option<String>,
    pub queue: Option<String>,
    pub status: Option<String>,
    /// `true`: only groups on hold; `false`: only groups not on hold.
    /// Unset: groups not on hold, or with `owner`, all of that owner's.
    #[serde(default)]
    pub held: Option<bool>,
    /// Only the groups this user owns; `me` is whoever asks.
    #[serde(default)]
    pub owner: Option<String>,
}

/// `POST /api/v1/groups/{id}/owner` and `/api/v1/messages/{id}/owner`:
/// `null` clears it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerRequest {
    pub user: Option<String>,
}

/// `POST /api/v1/groups/{id}/hold` and `/api/v1/messages/{id}/hold`: until
/// a time, until a fix is replayed, or both (whichever comes first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldRequest {
    /// RFC 3339, in the future, within a year. Needed unless
    /// `until_replayed`, whose hold otherwise lasts at most 30 days.
    #[serde(default)]
    pub until: Option<String>,
    /// Ends the hold when a replay of one of the group's messages (or of
    /// the held message) is confirmed by the broker.
    #[serde(default)]
    pub until_replayed: bool,
    #[serde(default)]
    pub note: Option<String>,
}

/// Who owns a group and its hold, after a change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupClaim {
    pub group_id: String,
    pub owner: Option<String>,
    pub hold: Option<Hold>,
}

/// Who owns one message and its hold, after a change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageClaim {
    pub message_id: i64,
    pub owner: Option<String>,
    pub hold: Option<Hold>,
}

/// Where to replay to; defaults to the message's original route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayTarget {
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    /// Replay an edited copy; the stored original is kept as it was.
    #[serde(default)]
    pub edit: Option<MessageEdit>,
    /// Send the copy to this queue only, through the default exchange.
    #[serde(default)]
    pub to_queue: Option<String>,
    /// Send the copy to the queue it was dead-lettered from only.
    #[serde(default)]
    pub to_original_queue: bool,
}

/// Changes to apply to the replayed copy. Absent parts stay as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageEdit {
    /// New body as text; must be valid JSON when the content type is JSON.
    pub body: Option<String>,
    /// All headers, typed as in `MessageDetail::headers`.
    pub headers: Option<serde_json::Value>,
    /// All properties, as in `MessageDetail::properties`.
    pub properties: Option<serde_json::Value>,
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
    /// The signed-in user may not do this; says which permission is missing.
    #[error("{0}")]
    Forbidden(String),
    #[error("broker refused: {0}")]
    Broker(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Published, but the broker never confirmed it: it may or may not have
    /// been delivered. Never retried on its own; flagged to the operator.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    #[error("internal error (see server log)")]
    Internal,
}

impl ApiError {
    /// The HTTP status each kind is answered with, by the REST API and by
    /// server functions alike: what the caller got wrong is a 4xx, what the
    /// broker or the server could not do a 5xx.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::Broker(_) => 502,
            ApiError::Unavailable(_) => 503,
            ApiError::OutcomeUnknown(_) => 504,
            ApiError::Internal => 500,
        }
    }

    /// The operator-facing text without the kind's prefix (the UI shows the
    /// kind as a heading of its own).
    pub fn detail(&self) -> &str {
        match self {
            ApiError::BadRequest(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::Forbidden(m)
            | ApiError::Broker(m)
            | ApiError::Unavailable(m)
            | ApiError::OutcomeUnknown(m) => m,
            ApiError::Internal => "see the server log",
        }
    }
}

/// Server functions return `ApiError` itself, so the UI can tell forbidden
/// from not found from outcome unknown. A failure of the call itself (the
/// network, an answer that does not decode, such as a sign-in that expired)
/// is `Unavailable`; arguments the server cannot read are a bad request.
impl leptos::server_fn::error::FromServerFnError for ApiError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(e: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        use leptos::server_fn::error::ServerFnErrorErr as E;
        match e {
            E::Args(m) | E::MissingArg(m) => ApiError::BadRequest(m),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{engine::general_purpose::STANDARD as B64, Engine};

    #[test]
    fn a_stored_status_word_is_known_or_an_error() {
        for &status in MessageStatus::ALL {
            assert_eq!(MessageStatus::try_from(status.as_str().to_owned()), Ok(status));
        }
        assert!(MessageStatus::try_from("archived".to_owned()).is_err());
        assert!(MessageStatus::try_from("Failed".to_owned()).is_err());
    }

    #[test]
    fn broker_versions_and_what_their_policies_support() {
        let v = BrokerVersion::parse;
        assert_eq!(v("3.10.8"), BrokerVersion { major: 3, minor: 10 });
        assert_eq!(v("4.0.0-rc.1"), BrokerVersion { major: 4, minor: 0 });
        assert!(!v("").is_known() && v("").lazy_mode_matters());
        assert!(v("3.11.28").lazy_mode_matters() && !v("3.11.28").queue_type_apply_to());
        assert_eq!(v("3.11.28").apply_to_options(), ["queues", "exchanges", "all"]);
        assert!(!v("3.12.0").lazy_mode_matters() && v("3.12.0").queue_type_apply_to());
        assert!(!v("4.1.2").lazy_mode_matters());
        assert_eq!(v("4.1.2").apply_to_options(), APPLY_TO);
    }

    fn detail(body: &[u8]) -> MessageDetail {
        MessageDetail {
            summary: MessageSummary {
                id: 1,
                vhost: "/".into(),
                queue: "q".into(),
                status: MessageStatus::Failed,
                exchange: None,
                routing_key: None,
                reason: None,
                service: None,
                death_count: 0,
                received_at: String::new(),
                group_id: None,
            },
            properties: serde_json::json!({}),
            headers: serde_json::json!({}),
            stack_trace: None,
            delivery_exchange: String::new(),
            delivery_routing_key: String::new(),
            body_size: body.len(),
            body_base64: B64.encode(body),
            body_text: String::from_utf8(body.to_vec()).ok(),
            body_truncated: false,
            history: vec![],
            replayed_from: None,
            failed_again_after_replay: 0,
            came_back_as: vec![],
            annotations: Annotations::default(),
            uncertain_replay_id: None,
            possible_copy_of: None,
            tap: None,
            masked: false,
            owner: None,
            hold: None,
        }
    }

    #[test]
    fn truncation_keeps_the_head_and_char_boundaries() {
        let d = detail("ééé".as_bytes()).truncate_body(3);
        assert!(d.body_truncated);
        assert_eq!(d.body_text.as_deref(), Some("é"));
        assert_eq!(B64.decode(d.body_base64).unwrap(), &"ééé".as_bytes()[..3]);
        assert_eq!(d.body_size, 6);
        let small = detail(b"abc").truncate_body(3);
        assert!(!small.body_truncated);
        assert_eq!(small.body_text.as_deref(), Some("abc"));
    }
}
