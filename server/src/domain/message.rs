//! A captured failure as Redrive stores it: what capture produces and the
//! store takes, so neither depends on the other.

use time::OffsetDateTime;

/// Where Spring, MassTransit and NServiceBus put the exception's message, in order.
pub const REASON_HEADERS: [&str; 3] = [
    "x-exception-message",
    "MT-Fault-Message",
    "NServiceBus.ExceptionInfo.Message",
];

/// Where they put the stack trace, in order.
pub const TRACE_HEADERS: [&str; 3] = [
    "x-exception-stacktrace",
    "MT-Fault-StackTrace",
    "NServiceBus.ExceptionInfo.StackTrace",
];

/// The reasons the broker gives a dead letter (`x-death`), which are
/// stored as a message's reason when no exception names one.
pub const DEATH_REASONS: [&str; 4] = ["rejected", "expired", "maxlen", "delivery_limit"];

/// A stack trace as stored: its template, and the template's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceTemplate {
    pub hash: Vec<u8>,
    pub text: String,
}

/// A failed message ready to be inserted.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub vhost: String,
    pub queue: String,
    pub received_at: OffsetDateTime,
    pub body: Vec<u8>,
    /// `delivery_mode` 2.
    pub persistent: bool,
    /// The properties as stored (JSON text, see [`properties_to_json`]).
    pub properties: String,
    /// The headers as stored: JSON text with the stack trace left to its
    /// own column (see `store::take_trace`). Serialised here, once, on the
    /// runtime's threads, not on the database's.
    pub headers: String,
    pub delivery_exchange: String,
    pub delivery_routing_key: String,
    pub original_exchange: Option<String>,
    pub original_routing_key: Option<String>,
    pub reason: Option<String>,
    pub stack_trace: Option<String>,
    /// How the trace is stored: once per template (see `store::contents`).
    pub trace_template: Option<TraceTemplate>,
    pub death_count: i64,
    pub service: Option<String>,
    pub message_id: Option<String>,
    pub exception_type: Option<String>,
    /// Failure group (see [`fingerprint`](super::fingerprint)).
    pub group_id: String,
    pub group_title: String,
    /// `x-redrive-replay-id` when this is a replayed copy that failed again.
    pub replay_id: Option<String>,
    /// Identity of the delivery's content, used to recognise a redelivery of a
    /// message stored just before a crash (commit done, ack lost): BLAKE3
    /// over what is stored of it, which determines everything received.
    /// (Rows stored before 0021 hashed the headers differently: a copy of
    /// one redelivered across that upgrade is kept as a row of its own.)
    pub content_hash: Vec<u8>,
    pub redelivered: bool,
    /// How capture came by it, which decides how it is stored.
    pub origin: Origin,
}

/// How capture came by a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// Consumed from the queue it is filed under.
    #[default]
    Consumed,
    /// A copy from the queue's tap: the original stays in the queue.
    Tapped,
    /// An original consumed from a queue that was tapped until now: when a
    /// copy of it is already stored (a row of the queue, still marked as
    /// having its original in the queue, with the same content) that row
    /// answers for it and nothing is stored; otherwise it is stored as
    /// consumed (an original that reached the queue before its tap).
    Adopted,
}
