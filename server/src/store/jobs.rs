//! Persistence of bulk jobs. Progress is counted from `job_items`, never kept
//! as separate counters, so it cannot drift from what was actually done.

use crate::store::Filter;
use crate::store::StoreError;
use app::model::Destination;
use app::model::JobItem;
use async_trait::async_trait;

use app::model::{Job, JobAction, JobPhase, JobState, MessageStatus, ReplayPlan};

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
    /// How it sends (JSON of [`ReplayPlan`]); read with [`JobSpec::plan`].
    plan: Option<String>,
    pub total: i64,
    /// Items done, failed or skipped so far.
    pub settled: i64,
    #[sqlx(try_from = "String")]
    phase: PhaseWord,
    /// When the current phase began (ms).
    pub phase_since: Option<i64>,
    /// Items settled when it began (a canary counts from there).
    pub phase_base: i64,
    /// When the last canary began (ms): its copies that came back are
    /// counted from there.
    pub canary_since: Option<i64>,
}

impl JobSpec {
    /// The plan it was created with; a plan that no longer reads (written by
    /// a newer Redrive) is an error, never a guess.
    pub fn plan(&self) -> Result<ReplayPlan, StoreError> {
        match &self.plan {
            None => Ok(ReplayPlan::default()),
            Some(text) => serde_json::from_str(text)
                .map_err(|e| StoreError::Corrupt(format!("job {}'s plan: {e}", self.id))),
        }
    }

    pub fn phase(&self) -> Option<JobPhase> {
        self.phase.0
    }
}

/// A nullable phase column, read strictly.
#[derive(Debug, Clone, Copy, Default)]
struct PhaseWord(Option<JobPhase>);

impl TryFrom<String> for PhaseWord {
    type Error = app::model::UnknownWord;
    fn try_from(word: String) -> Result<Self, Self::Error> {
        if word.is_empty() {
            return Ok(Self(None));
        }
        JobPhase::try_from(word).map(|p| Self(Some(p)))
    }
}

/// The columns of [`JobSpec`], for every query that reads one.
pub(super) const SPEC_COLUMNS: &str = "j.id, j.action, j.state, j.actor, j.target_exchange,
    j.target_routing_key, j.rate_per_sec, j.plan, j.total, j.items_done + j.items_failed AS settled,
    COALESCE(j.phase, '') AS phase, j.phase_since, j.phase_base, j.canary_since";

#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    #[sqlx(flatten)]
    spec: JobSpec,
    selection: String,
    done: i64,
    failed: i64,
    pending: i64,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    note: Option<String>,
    start_at: Option<i64>,
    pause_reason: Option<String>,
    current_rate: Option<f64>,
    phase_note: Option<String>,
    waiting: Option<String>,
    canary_returned: Option<String>,
    approval_expires_at: Option<i64>,
    approved_by: Option<String>,
    approved_at: Option<i64>,
}

pub(super) fn job_select() -> String {
    format!(
        "SELECT {SPEC_COLUMNS}, j.selection, j.created_at, j.updated_at, j.finished_at, j.note,
         j.items_done AS done, j.items_failed AS failed, j.items_pending AS pending,
         j.start_at, j.pause_reason, j.current_rate, j.phase_note, j.waiting, j.canary_returned,
         j.approval_expires_at, j.approved_by, j.approved_at
         FROM jobs j"
    )
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        let plan = r.spec.plan()?;
        let running = r.spec.state == JobState::Running;
        Ok(Job {
            plan,
            start_at: r.start_at.map(rfc3339),
            pause_reason: r.pause_reason.filter(|_| r.spec.state == JobState::Paused),
            phase: r.spec.phase().filter(|_| running),
            current_rate: r.current_rate.filter(|_| running),
            phase_note: r.phase_note.filter(|_| running),
            waiting: r.waiting.filter(|_| running),
            canary_returned: r
                .canary_returned
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
            approval_expires_at: r
                .approval_expires_at
                .filter(|_| r.spec.state == JobState::AwaitingApproval)
                .map(rfc3339),
            approved_by: r.approved_by,
            approved_at: r.approved_at.map(rfc3339),
            id: r.spec.id,
            action: r.spec.action,
            state: r.spec.state,
            actor: r.spec.actor,
            selection: serde_json::from_str(&r.selection).unwrap_or_default(),
            exchange: r.spec.target_exchange,
            routing_key: r.spec.target_routing_key,
            rate_per_sec: r.spec.rate_per_sec,
            total: r.spec.total,
            done: r.done,
            failed: r.failed,
            remaining: r.pending,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            finished_at: r.finished_at.map(rfc3339),
            note: r.note,
        })
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
    pub plan: &'a ReplayPlan,
    /// Created `scheduled`, to start then (ms); otherwise `running`.
    pub start_at: Option<i64>,
    /// When it must wait for a second user's approval.
    pub approval: Option<ApprovalRule>,
}

/// `REDRIVE_APPROVAL_THRESHOLD` as the store applies it: a job over more
/// than `over` messages is created `awaiting_approval`, and may be approved
/// until `expires_at` (ms). Counted where the items are chosen, so the
/// count is the job's own, not a dry run's from a moment before.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalRule {
    pub over: u64,
    pub expires_at: i64,
}

/// A job whose approval expired, cancelled by [`JobStore::expire_approvals`].
#[derive(Debug, Clone)]
pub struct ExpiredApproval {
    pub id: i64,
    pub actor: String,
    pub total: i64,
}

/// Where a new job's plan begins.
pub fn first_phase(action: JobAction, plan: &ReplayPlan) -> JobPhase {
    match (action, &plan.canary, &plan.ramp) {
        (JobAction::Replay, Some(_), _) => JobPhase::Canary,
        (JobAction::Replay, None, Some(_)) => JobPhase::Ramping,
        _ => JobPhase::FullSpeed,
    }
}

/// The status a message must have to be taken into a job.
pub const SELECTABLE: MessageStatus = MessageStatus::Failed;

/// Bulk jobs: creation over a selection, state, and progress counted
/// from their items.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Where the `failed` messages matching `filter` would be replayed.
    async fn destinations(&self, filter: &Filter) -> Result<Vec<Destination>, StoreError>;

    /// Creates a job over the messages matching `filter` right now (its
    /// selection is fixed: later captures are never part of it), running or,
    /// with a `start_at`, scheduled.
    /// Returns `None` (and writes nothing) when nothing matches.
    async fn create_job(&self, job: NewJob<'_>, filter: &Filter) -> Result<Option<i64>, StoreError>;

    async fn job(&self, id: i64) -> Result<Job, StoreError>;

    /// Items that failed or were skipped, oldest message first (at most `limit`).
    async fn job_problems(&self, id: i64, limit: i64) -> Result<Vec<JobItem>, StoreError>;

    async fn jobs(&self, limit: i64) -> Result<Vec<Job>, StoreError>;

    async fn job_spec(&self, id: i64) -> Result<JobSpec, StoreError>;

    async fn running_jobs(&self) -> Result<Vec<i64>, StoreError>;

    /// Moves a job between states; `Ok(false)` when it was not in `from`.
    /// A job that runs again starts its plan afresh (see `JobPlanStore`).
    async fn set_job_state(
        &self,
        id: i64,
        from: &[JobState],
        to: JobState,
        note: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// A second user's approval: the job leaves `awaiting_approval` for
    /// `to` (`running`, or `scheduled` when it has a start time), unless it
    /// expired by `now`. `Ok(false)` when it was not waiting (or expired).
    async fn approve_job(&self, id: i64, approver: &str, to: JobState, now: i64) -> Result<bool, StoreError>;

    /// Cancels every job still awaiting approval at `now` past its expiry.
    async fn expire_approvals(&self, now: i64) -> Result<Vec<ExpiredApproval>, StoreError>;

    /// Sets or clears the note of a running job without changing its state,
    /// e.g. why it is waiting for the broker.
    async fn set_job_note(&self, id: i64, note: Option<&str>) -> Result<(), StoreError>;
}
