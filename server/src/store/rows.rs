//! Row types and their conversion to the shared API model.

use app::model::{HistoryAction, HistoryEntry, MessageDetail, MessageStatus, MessageSummary};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The list's columns, qualified where the full-text table has one of the
/// same name (a search joins it).
pub(super) const SUMMARY_COLUMNS: &str = "messages.id AS id, vhost, queue, status, original_exchange, \
    original_routing_key, messages.reason AS reason, service, death_count, received_at, group_id";
pub(super) const FULL_SELECT: &str = concat!(
    "SELECT id, vhost, queue, status, original_exchange, \
     original_routing_key, reason, service, death_count, received_at, group_id, body, properties, headers, ",
    super::contents::stored_trace!(),
    " AS stack_trace, delivery_exchange, delivery_routing_key, replay_id \
     FROM messages JOIN message_contents ON message_contents.message_id = messages.id"
);

/// [`FULL_SELECT`] without the stack trace, for a bulk replay's claims: a
/// replay never sends the `x-exception-*` headers (`replay::prepare` drops
/// them), and putting each trace back together cost a fifth of a claim.
pub(super) const REPLAY_SELECT: &str = "SELECT id, vhost, queue, status, original_exchange, \
     original_routing_key, reason, service, death_count, received_at, group_id, body, properties, headers, \
     NULL AS stack_trace, delivery_exchange, delivery_routing_key, replay_id \
     FROM messages JOIN message_contents ON message_contents.message_id = messages.id";

/// Unix milliseconds to RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(sqlx::FromRow)]
pub(super) struct SummaryRow {
    pub id: i64,
    vhost: String,
    queue: String,
    /// A word the model does not know fails the read (a newer schema, or a
    /// hand edit), rather than showing the message as failed.
    #[sqlx(try_from = "String")]
    status: MessageStatus,
    original_exchange: Option<String>,
    original_routing_key: Option<String>,
    reason: Option<String>,
    service: Option<String>,
    death_count: i64,
    received_at: i64,
    group_id: Option<String>,
}

impl From<SummaryRow> for MessageSummary {
    fn from(r: SummaryRow) -> Self {
        MessageSummary {
            id: r.id,
            vhost: r.vhost,
            queue: r.queue,
            status: r.status,
            exchange: r.original_exchange,
            routing_key: r.original_routing_key,
            reason: r.reason,
            service: r.service,
            death_count: r.death_count,
            received_at: rfc3339(r.received_at),
            group_id: r.group_id,
        }
    }
}

/// A stored message with everything needed to replay it.
#[derive(sqlx::FromRow)]
pub struct StoredMessage {
    #[sqlx(flatten)]
    summary: SummaryRow,
    pub body: Vec<u8>,
    properties: String,
    headers: String,
    pub stack_trace: Option<String>,
    pub delivery_exchange: String,
    pub delivery_routing_key: String,
    /// `x-redrive-replay-id` this delivery carried (a replayed copy that failed again).
    pub replay_id: Option<String>,
    /// The headers as a reader is shown them, once [`Self::mask`] masked them.
    #[sqlx(skip)]
    shown_headers: Option<serde_json::Value>,
}

impl StoredMessage {
    pub fn id(&self) -> i64 {
        self.summary.id
    }
    pub fn vhost(&self) -> &str {
        &self.summary.vhost
    }
    /// The queue it was captured from.
    pub fn queue(&self) -> &str {
        &self.summary.queue
    }
    /// The exception's message (or the broker's dead-letter reason).
    pub fn reason(&self) -> Option<&str> {
        self.summary.reason.as_deref()
    }
    pub fn original_exchange(&self) -> Option<&str> {
        self.summary.original_exchange.as_deref()
    }
    pub fn original_routing_key(&self) -> Option<&str> {
        self.summary.original_routing_key.as_deref()
    }
    pub fn properties(&self) -> serde_json::Value {
        serde_json::from_str(&self.properties).unwrap_or_default()
    }
    /// The queue it was dead-lettered from: the `queue` of its first
    /// `x-death` entry (the broker keeps the latest death first, so after a
    /// retry loop through a delay queue this is where it last died).
    pub fn original_queue(&self) -> Option<String> {
        let headers: serde_json::Value = serde_json::from_str(&self.headers).ok()?;
        let first = headers.get("x-death")?.get("value")?.get(0)?;
        let queue = first.get("value")?.get("queue")?.get("value")?.as_str()?;
        (!queue.is_empty()).then(|| queue.to_owned())
    }
    /// The headers as received (the stored text keeps the stack trace in
    /// its own column; see `store::contents`).
    pub fn headers(&self) -> serde_json::Value {
        match &self.shown_headers {
            Some(shown) => shown.clone(),
            None => super::contents::restore_trace(&self.headers, self.stack_trace.as_deref()),
        }
    }

    /// Masks this copy for a reader who may not see `mask`'s values (an
    /// export): body, headers, reason and trace. Whether anything was.
    /// Never replay a masked copy: it is for reading only.
    pub fn mask(&mut self, mask: &crate::domain::Mask) -> bool {
        let mut headers = self.headers();
        let masked = mask.apply(crate::domain::mask::Shown {
            body: &mut self.body,
            headers: &mut headers,
            reason: &mut self.summary.reason,
            stack_trace: &mut self.stack_trace,
        });
        self.shown_headers = Some(headers);
        masked
    }

    /// The lossless export record: enough to republish the message exactly.
    pub fn export_record(&self) -> serde_json::Value {
        let s = &self.summary;
        serde_json::json!({
            "id": s.id,
            "vhost": s.vhost,
            "queue": s.queue,
            "status": s.status.as_str(),
            "received_at": rfc3339(s.received_at),
            "exchange": s.original_exchange,
            "routing_key": s.original_routing_key,
            "reason": s.reason,
            "service": s.service,
            "group_id": s.group_id,
            "stack_trace": self.stack_trace,
            "delivery_exchange": self.delivery_exchange,
            "delivery_routing_key": self.delivery_routing_key,
            "properties": self.properties(),
            "headers": self.headers(),
            "body_base64": B64.encode(&self.body),
        })
    }

    /// Summary columns for spreadsheets.
    pub fn csv_fields(&self) -> [String; 9] {
        let s = &self.summary;
        [
            s.id.to_string(),
            s.status.as_str().to_owned(),
            rfc3339(s.received_at),
            s.vhost.clone(),
            s.queue.clone(),
            s.service.clone().unwrap_or_default(),
            s.original_exchange.clone().unwrap_or_default(),
            s.original_routing_key.clone().unwrap_or_default(),
            s.reason.clone().unwrap_or_default(),
        ]
    }

    pub(super) fn into_detail(self, history: Vec<HistoryEntry>) -> MessageDetail {
        let properties = self.properties();
        let headers = self.headers();
        MessageDetail {
            summary: self.summary.into(),
            properties,
            headers,
            stack_trace: self.stack_trace,
            delivery_exchange: self.delivery_exchange,
            delivery_routing_key: self.delivery_routing_key,
            body_size: self.body.len(),
            body_base64: B64.encode(&self.body),
            body_text: String::from_utf8(self.body).ok(),
            body_truncated: false,
            history,
            replayed_from: None,
            failed_again_after_replay: 0,
            came_back_as: Vec::new(),
            annotations: Default::default(),
            uncertain_replay_id: None,
            possible_copy_of: None,
            tap: None,
            masked: false,
            owner: None,
            hold: None,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    at: i64,
    #[sqlx(try_from = "String")]
    action: HistoryAction,
    actor: String,
    target: Option<String>,
    result: String,
    detail: Option<String>,
}

impl From<EventRow> for HistoryEntry {
    fn from(r: EventRow) -> Self {
        HistoryEntry {
            at: rfc3339(r.at),
            action: r.action,
            actor: r.actor,
            target: r.target,
            result: r.result,
            detail: r.detail,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct GroupRow {
    pub id: String,
    service: Option<String>,
    title: Option<String>,
    exception_type: Option<String>,
    count: i64,
    failed: i64,
    replayed: i64,
    discarded: i64,
    came_back: i64,
    first_seen: i64,
    last_seen: i64,
    example_id: i64,
}

impl GroupRow {
    pub(super) fn into_summary(self, arrivals_24h: Vec<i64>) -> app::model::GroupSummary {
        app::model::GroupSummary {
            id: self.id,
            services: self.service.iter().cloned().collect(),
            service: self.service,
            reason: self.title.unwrap_or_default(),
            exception_type: self.exception_type,
            count: self.count,
            failed: self.failed,
            replayed: self.replayed,
            discarded: self.discarded,
            came_back: self.came_back,
            first_seen: rfc3339(self.first_seen),
            last_seen: rfc3339(self.last_seen),
            example_id: self.example_id,
            arrivals_24h,
            tags: Vec::new(),
            owner: None,
            hold: None,
        }
    }
}
