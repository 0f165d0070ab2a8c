//! The replay lease: a message being replayed is claimed by one instance,
//! which keeps a heartbeat on it until the broker's verdict is recorded.
//!
//! Never guess: a replay that was published but never confirmed leaves its
//! message `failed` and flagged "outcome unknown" with the replay id it
//! carried. Nothing retries it on its own; an operator's retry reuses that
//! id, so consumers can recognise a second copy.

use crate::store::Event;
use crate::store::StoreError;
use async_trait::async_trait;

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

/// A single replay: claimed before the publish, settled on the broker's
/// verdict; a claim whose holder stopped is swept to "outcome unknown",
/// never retried.
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// The replay id a retry must reuse: that of an earlier replay whose
    /// outcome is unknown.
    async fn uncertain_replay_id(&self, id: i64) -> Result<Option<String>, StoreError>;

    /// `failed` → `replaying`, leased to `owner`, carrying `replay_id`; the
    /// edit (if any) is recorded in the same transaction.
    async fn claim_replay(
        &self,
        id: i64,
        owner: &str,
        replay_id: &str,
        edit: Option<Event<'_>>,
    ) -> Result<(), StoreError>;

    /// Records the broker's verdict on a replay `owner` claimed.
    async fn settle_replay(
        &self,
        id: i64,
        owner: &str,
        settlement: Settlement,
        event: &Event<'_>,
    ) -> Result<(), StoreError>;

    /// Settles replays whose owner stopped renewing them before `stale_before`
    /// (a crash, a kill): they may or may not have been published, so they go
    /// back to `failed`, flagged, and any job item waiting on them is failed
    /// rather than retried. Returns how many were settled.
    async fn sweep_abandoned_replays(&self, stale_before: i64) -> Result<u64, StoreError>;
}
