//! A bulk job's work in batches: many claims, verdicts or discards per
//! transaction, so a job runs at the broker's pace rather than at one
//! fsync per message. Each message still gets exactly what a single replay
//! or discard gives it: a claim under the replay lease, its history event,
//! its job item's outcome and an audit entry under the job owner's name.

use async_trait::async_trait;

use app::model::MessageStatus;

use super::rows::StoredMessage;
use super::{expected_label, Settlement, StoreError};

/// A message claimed for a job's replay, and the replay id its copy carries
/// (an earlier one when a previous replay's outcome is unknown, so consumers
/// can recognise a second copy).
pub struct Claimed {
    pub message: StoredMessage,
    pub replay_id: String,
}

/// What one claim found.
#[derive(Default)]
pub struct ClaimBatch {
    pub claimed: Vec<Claimed>,
    /// Items whose message was no longer `failed` (replayed or discarded
    /// meanwhile): marked skipped, never sent twice.
    pub skipped: usize,
    /// Items left pending because another replay holds their message (an
    /// operator's, or one of an instance that died, until the sweep settles
    /// it): looked at again later, never skipped nor sent twice.
    pub held: usize,
    /// The highest message id looked at: the next claim starts after it.
    pub last: Option<i64>,
}

/// One message of a replay job on its way: where it goes, under which
/// replay id.
#[derive(Debug)]
pub struct JobReplay {
    pub message_id: i64,
    pub vhost: String,
    pub replay_id: String,
    pub exchange: String,
    pub routing_key: String,
    /// `exchange / routing key` as history shows it.
    pub target: String,
}

/// The outcome of one job replay, to record.
#[derive(Debug)]
pub struct JobReplayOutcome {
    pub replay: JobReplay,
    pub settlement: Settlement,
    /// The broker's words when it did not confirm.
    pub error: Option<String>,
}

/// Rows per multi-row statement: well under SQLite's bound-parameter limit.
pub(super) const ROWS_PER_INSERT: usize = 500;

/// Why a job item was not done.
pub(super) fn skip_reason(status: Option<String>, id: i64) -> String {
    match status.and_then(|s| s.parse::<MessageStatus>().ok()) {
        Some(status) => StoreError::WrongState {
            id,
            status,
            expected: expected_label(&[MessageStatus::Failed]),
        }
        .to_string(),
        None => StoreError::NotFound(id).to_string(),
    }
}

/// What to claim in a [`Store::job_step`]: up to `limit` pending messages
/// after message id `after`.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest {
    pub after: i64,
    pub limit: usize,
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
