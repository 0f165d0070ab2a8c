//! Failure groups: messages with one fingerprint, summarised. Their SQL
//! is in `store/groups/`, compiled once per backend.

use crate::store::StoreError;
use app::model::GroupQuery;
use app::model::GroupSummary;
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
