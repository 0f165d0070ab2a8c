//! Bulk replay/discard jobs: what the API accepts and reports.

use serde::{Deserialize, Serialize};

use super::word::word;

use super::plan::{JobPhase, ReplayPlan};
use super::MessageQuery;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum JobAction {
    Replay,
    Discard,
}

word!(JobAction, "job action");

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum JobState {
    /// Over `REDRIVE_APPROVAL_THRESHOLD` messages: sends nothing until a
    /// second user approves it (or it expires).
    #[serde(rename = "awaiting_approval")]
    #[strum(serialize = "awaiting_approval")]
    AwaitingApproval,
    /// Waits for its `start_at`.
    Scheduled,
    Running,
    Paused,
    Completed,
    Cancelled,
    Failed,
}

word!(JobState, "job state");

impl JobState {
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Completed | JobState::Cancelled | JobState::Failed)
    }
}

/// `POST /api/v1/jobs`. Exactly one of `ids`, `group`, `filter` selects the
/// messages; only messages that are `failed` when the job is created are taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    pub action: JobAction,
    #[serde(default)]
    pub ids: Option<Vec<i64>>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub filter: Option<MessageQuery>,
    /// Messages per second; none means as fast as the broker confirms.
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub exchange: Option<String>,
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Canary, ramp, adaptive rate and single-queue targets.
    #[serde(flatten)]
    pub plan: ReplayPlan,
    /// RFC 3339: create the job `scheduled`, to start at that time.
    #[serde(default)]
    pub start_at: Option<String>,
}

impl JobRequest {
    /// A request for `action` that selects nothing yet: set one of `ids`,
    /// `group` or `filter`.
    pub fn new(action: JobAction) -> Self {
        Self {
            action,
            ids: None,
            group: None,
            filter: None,
            rate_per_sec: None,
            dry_run: false,
            exchange: None,
            routing_key: None,
            plan: ReplayPlan::default(),
            start_at: None,
        }
    }
}

/// Where a dry run's messages would go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub vhost: String,
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub count: i64,
    /// The queues the route delivers to, as the broker's bindings say now.
    #[serde(default)]
    pub queues: Vec<String>,
    /// More than one queue: services that already succeeded get a copy too.
    #[serde(default)]
    pub fans_out: bool,
    /// Why `queues` may be incomplete (headers exchange, management API
    /// unavailable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_note: Option<String>,
    /// Of `count`, the copies from a tap whose original is still in the
    /// service's queue: a replay sends a second copy beside the original,
    /// and a discard leaves the original where it is.
    #[serde(default)]
    pub copies_in_queue: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRun {
    pub dry_run: bool,
    pub action: JobAction,
    pub total: i64,
    /// Of `total`, the tapped copies whose original is still queued (see
    /// [`Destination::copies_in_queue`]).
    #[serde(default)]
    pub copies_in_queue: i64,
    /// More messages than `REDRIVE_APPROVAL_THRESHOLD`: the job will wait
    /// for a second user's approval.
    #[serde(default)]
    pub needs_approval: bool,
    pub destinations: Vec<Destination>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub action: JobAction,
    pub state: JobState,
    pub actor: String,
    /// The selection as given, for the job history.
    pub selection: serde_json::Value,
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub rate_per_sec: Option<f64>,
    pub total: i64,
    pub done: i64,
    pub failed: i64,
    pub remaining: i64,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    /// Why the job failed or paused itself.
    pub note: Option<String>,
    #[serde(flatten)]
    pub plan: ReplayPlan,
    /// When a scheduled job starts (RFC 3339).
    pub start_at: Option<String>,
    /// Why a paused job paused itself (its canary, loop detection).
    pub pause_reason: Option<String>,
    /// Where a replay job is in its plan.
    pub phase: Option<JobPhase>,
    /// Messages per second it sends at now; none means unlimited.
    pub current_rate: Option<f64>,
    /// Why it sends at that rate.
    pub phase_note: Option<String>,
    /// What an adaptive job waits for (`waiting: q has no consumers`).
    pub waiting: Option<String>,
    /// The copies that came back failed during the canary (message ids).
    #[serde(default)]
    pub canary_returned: Vec<i64>,
    /// Until when a job `awaiting_approval` may be approved (RFC 3339).
    #[serde(default)]
    pub approval_expires_at: Option<String>,
    /// Who approved it (the second person), and when.
    #[serde(default)]
    pub approved_by: Option<String>,
    #[serde(default)]
    pub approved_at: Option<String>,
}

/// Either a created job or a dry run's preview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobCreated {
    Job(Box<Job>),
    DryRun(DryRun),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobCommand {
    /// Starts a scheduled job now.
    Start,
    Pause,
    Resume,
    Cancel,
    /// A second user lets a job `awaiting_approval` run.
    Approve,
    /// A second user turns a job `awaiting_approval` down (it is cancelled).
    Refuse,
}

impl JobCommand {
    /// The word in `POST /api/v1/jobs/{id}/{command}`.
    pub fn parse(word: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(word.to_owned())).ok()
    }
}

/// One message of a job and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobItem {
    pub message_id: i64,
    /// `pending`, `done`, `failed` or `skipped` (no longer failed when its turn came).
    pub state: String,
    pub error: Option<String>,
}
