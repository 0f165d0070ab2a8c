//! What operators organise failures into: bulk jobs, failure groups,
//! notes and tags.

use std::collections::HashMap;

use app::model::{
    AnnotationChange, AnnotationTarget, Annotations, Destination, GroupQuery, GroupSummary, Job, JobItem,
    JobState,
};
use async_trait::async_trait;

use crate::store::{ClaimBatch, ClaimRequest, Filter, JobReplayOutcome, JobSpec, NewJob, StoreError};

/// Bulk jobs: creation over a selection, state, and progress counted
/// from their items.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Where the `failed` messages matching `filter` would be replayed.
    async fn destinations(&self, filter: &Filter) -> Result<Vec<Destination>, StoreError>;

    /// Creates a running job over the messages matching `filter` right now.
    /// Returns `None` (and writes nothing) when nothing matches.
    async fn create_job(&self, job: NewJob<'_>, filter: &Filter) -> Result<Option<i64>, StoreError>;

    async fn job(&self, id: i64) -> Result<Job, StoreError>;

    /// Items that failed or were skipped, oldest message first (at most `limit`).
    async fn job_problems(&self, id: i64, limit: i64) -> Result<Vec<JobItem>, StoreError>;

    async fn jobs(&self, limit: i64) -> Result<Vec<Job>, StoreError>;

    async fn job_spec(&self, id: i64) -> Result<JobSpec, StoreError>;

    async fn running_jobs(&self) -> Result<Vec<i64>, StoreError>;

    /// Moves a job between states; `Ok(false)` when it was not in `from`.
    async fn set_job_state(
        &self,
        id: i64,
        from: &[JobState],
        to: JobState,
        note: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Sets or clears the note of a running job without changing its state,
    /// e.g. why it is waiting for the broker.
    async fn set_job_note(&self, id: i64, note: Option<&str>) -> Result<(), StoreError>;
}

/// The steps a job runner takes: settle the last batch and claim the next
/// in one transaction, release claims, watch for copies coming back.
#[async_trait]
pub trait JobSteps: Send + Sync {
    /// One step of a replay job, in one transaction (one fsync): records
    /// `outcomes`, then claims the next messages for `owner` when asked.
    /// `new_id` supplies fresh replay ids.
    async fn job_step(
        &self,
        job_id: i64,
        owner: &str,
        user: &str,
        outcomes: &[JobReplayOutcome],
        claim: Option<ClaimRequest>,
        new_id: &mut (dyn FnMut() -> String + Send),
    ) -> Result<ClaimBatch, StoreError>;

    /// Gives back messages claimed but never published (the job paused or
    /// Redrive stopped first): `failed` again, any earlier uncertainty kept.
    async fn release_claims(&self, owner: &str, ids: &[i64]) -> Result<(), StoreError>;

    /// Discards up to `limit` of a discard job's pending messages in one
    /// transaction; returns how many items were looked at (0: none left).
    async fn discard_job_batch(&self, job_id: i64, user: &str, limit: usize) -> Result<usize, StoreError>;

    /// How many copies of the job's replays settled since `since_ms` have
    /// come back to an error queue (loop detection). Looks only at copies
    /// received since then, through a partial index of returned copies.
    async fn job_copies_back(&self, job_id: i64, since_ms: i64) -> Result<i64, StoreError>;
}

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

/// Notes and tags on messages and groups.
#[async_trait]
pub trait AnnotationStore: Send + Sync {
    async fn annotations(&self, target: &AnnotationTarget) -> Result<Annotations, StoreError>;

    /// Tags of many groups at once (for the groups list).
    async fn group_tags(&self) -> Result<HashMap<String, Vec<String>>, StoreError>;

    async fn annotate(
        &self,
        target: &AnnotationTarget,
        change: &AnnotationChange,
        actor: &str,
    ) -> Result<(), StoreError>;
}
