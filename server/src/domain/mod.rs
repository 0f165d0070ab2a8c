//! Redrive's own vocabulary, below every other layer: a captured message and
//! its failure group, and who is asking with what the broker lets them do.
//! Capture, the store, the monitor and the service all speak it; it imports
//! none of them.

pub mod access;
pub mod fingerprint;
pub mod mask;
pub mod message;

pub use access::{Caller, Principal};
pub use mask::Mask;
pub use message::{NewMessage, Origin, TraceTemplate};

/// Milliseconds since the Unix epoch: how every stored time is written.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
