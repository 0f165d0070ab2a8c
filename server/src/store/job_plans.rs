//! How a job goes out over time: scheduled starts, the phase of its plan
//! (canary, watching, ramping, full speed) with its rate and why, what an
//! adaptive job waits for, and a canary's verdict. Each change is one
//! statement that checks the job's state, so two instances never start or
//! pause one job twice.

use app::model::{JobPhase, JobState};
use async_trait::async_trait;

use crate::store::{Scope, StoreError};

/// A phase as the runner records it.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseRecord {
    pub phase: JobPhase,
    /// When it began (ms).
    pub since: i64,
    /// Items settled when it began.
    pub base: i64,
    /// Messages per second now; `None` is unlimited.
    pub rate: Option<f64>,
    pub note: Option<String>,
    /// Set when a canary begins (ms); kept otherwise.
    pub canary_since: Option<i64>,
}

#[async_trait]
pub trait JobPlanStore: Send + Sync {
    /// Scheduled jobs whose time has come (`start_at <= now_ms`), oldest first.
    async fn due_jobs(&self, now_ms: i64) -> Result<Vec<i64>, StoreError>;

    /// Moves a scheduled job's start to `at_ms` (start now, for instance);
    /// `Ok(false)` when it is not scheduled.
    async fn reschedule(&self, id: i64, at_ms: i64) -> Result<bool, StoreError>;

    /// Every (vhost, queue, original exchange) of the job's pending items:
    /// what a scheduled start checks the creator's permissions against.
    async fn job_scopes(&self, id: i64) -> Result<Vec<Scope>, StoreError>;

    /// Records the phase of a running job (nothing when it is not running).
    async fn set_phase(&self, id: i64, phase: &PhaseRecord) -> Result<(), StoreError>;

    /// What a running job waits for, or `None` once it goes on.
    async fn set_waiting(&self, id: i64, waiting: Option<&str>) -> Result<(), StoreError>;

    /// Pauses a running job on its own, saying why and (for a canary) which
    /// copies came back; `Ok(false)` when it was no longer running.
    async fn pause_for(&self, id: i64, reason: &str, returned: &[i64]) -> Result<bool, StoreError>;

    /// The messages captured since `since_ms` that are copies this job
    /// replayed and that failed again, oldest first (at most `limit`).
    async fn returned_copies(&self, id: i64, since_ms: i64, limit: i64) -> Result<Vec<i64>, StoreError>;
}

/// The states a job may be cancelled from.
pub const CANCELLABLE: [JobState; 4] = [
    JobState::AwaitingApproval,
    JobState::Scheduled,
    JobState::Running,
    JobState::Paused,
];
