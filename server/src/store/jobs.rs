//! Persistence of bulk jobs. Progress is counted from `job_items`, never kept
//! as separate counters, so it cannot drift from what was actually done.

use crate::store::Filter;
use crate::store::StoreError;
use app::model::Destination;
use app::model::JobItem;
use async_trait::async_trait;

use app::model::{Job, JobAction, JobState, MessageStatus};

use super::rows::rfc3339;

/// What a job needs to run, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobSpec {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub action: JobAction,
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub actor: String,
    pub target_exchange: Option<String>,
    pub target_routing_key: Option<String>,
    pub rate_per_sec: Option<f64>,
}

#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    #[sqlx(flatten)]
    spec: JobSpec,
    selection: String,
    total: i64,
    done: i64,
    failed: i64,
    pending: i64,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    note: Option<String>,
}

pub(super) const JOB_SELECT: &str =
    "SELECT j.id, j.action, j.state, j.actor, j.target_exchange, j.target_routing_key,
    j.rate_per_sec, j.selection, j.total, j.created_at, j.updated_at, j.finished_at, j.note,
    j.items_done AS done, j.items_failed AS failed, j.items_pending AS pending
    FROM jobs j";

impl From<JobRow> for Job {
    fn from(r: JobRow) -> Self {
        Job {
            id: r.spec.id,
            action: r.spec.action,
            state: r.spec.state,
            actor: r.spec.actor,
            selection: serde_json::from_str(&r.selection).unwrap_or_default(),
            exchange: r.spec.target_exchange,
            routing_key: r.spec.target_routing_key,
            rate_per_sec: r.spec.rate_per_sec,
            total: r.total,
            done: r.done,
            failed: r.failed,
            remaining: r.pending,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            finished_at: r.finished_at.map(rfc3339),
            note: r.note,
        }
    }
}

/// The parts of a job request the store keeps.
pub struct NewJob<'a> {
    pub action: JobAction,
    pub actor: &'a str,
    pub selection: serde_json::Value,
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub rate_per_sec: Option<f64>,
}

/// The status a message must have to be taken into a job.
pub const SELECTABLE: MessageStatus = MessageStatus::Failed;

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
