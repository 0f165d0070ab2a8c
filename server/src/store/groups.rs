//! Failure groups: messages with one fingerprint, summarised. Their SQL
//! is in `store/groups/`, compiled once per backend.

use std::collections::HashMap;

use crate::store::StoreError;
use app::model::GroupQuery;
use app::model::GroupSummary;
use app::model::{GroupClaim, Hold};
use async_trait::async_trait;

/// Failure groups: messages with one fingerprint, summarised.
#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Failure groups over the messages in `visible` vhosts (all when `None`).
    async fn groups_within(
        &self,
        q: &GroupQuery,
        visible: Option<&[String]>,
    ) -> Result<Vec<GroupSummary>, StoreError>;

    /// Fingerprints rows stored before failure groups existed. Runs at
    /// start-up in chunks, so a large database does not hold one long write.
    async fn backfill_groups(&self) -> Result<u64, StoreError>;
}

/// A hold to put on a group: until `until` (ms), by `by`, with a note.
#[derive(Debug, Clone)]
pub struct NewHold<'a> {
    pub until: i64,
    /// Ends it sooner, when a replay of one of the group's messages is
    /// confirmed (see `store::replays`' settlement).
    pub until_replayed: bool,
    pub note: Option<&'a str>,
    pub by: &'a str,
}

/// Who is on a failure group, and its hold: kept beside the groups (which
/// are aggregated from the messages), one row per group that has either.
#[async_trait]
pub trait GroupClaims: Send + Sync {
    /// Sets (or with `None` clears) the group's owner.
    async fn set_group_owner(
        &self,
        group_id: &str,
        owner: Option<&str>,
        by: &str,
    ) -> Result<GroupClaim, StoreError>;

    /// Puts the group on hold until `hold.until`, replacing a hold it had;
    /// what arrives from now on is counted as arrived since.
    async fn hold_group(&self, group_id: &str, hold: NewHold<'_>) -> Result<GroupClaim, StoreError>;

    /// Ends its hold now; `Ok(false)` when it had none.
    async fn release_group(&self, group_id: &str) -> Result<bool, StoreError>;

    /// The owner and the hold (while it lasts at `now`) of every group that
    /// has either, by group id.
    async fn group_claims(
        &self,
        now: i64,
    ) -> Result<HashMap<String, (Option<String>, Option<Hold>)>, StoreError>;

    async fn group_claim(&self, group_id: &str, now: i64) -> Result<GroupClaim, StoreError>;

    /// Groups on hold at `now` with messages in `visible` vhosts (all when `None`).
    async fn held_groups(&self, now: i64, visible: Option<&[String]>) -> Result<i64, StoreError>;
}
