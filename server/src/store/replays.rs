//! The replay lease: a message being replayed is claimed by one instance,
//! which keeps a heartbeat on it until the broker's verdict is recorded.
//!
//! Never guess: a replay that was published but never confirmed leaves its
//! message `failed` and flagged "outcome unknown" with the replay id it
//! carried. Nothing retries it on its own; an operator's retry reuses that
//! id, so consumers can recognise a second copy.

/// How a replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Confirmed by the broker.
    Replayed,
    /// Refused by the broker, or never published: back to `failed`, any
    /// earlier uncertainty kept.
    Failed,
    /// Published without a confirm: back to `failed`, flagged.
    Unknown,
}
