//! Bulk replay/discard jobs: what the API accepts and reports.

use serde::{Deserialize, Serialize};

use super::word::word;

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
}

/// Where a dry run's messages would go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRun {
    pub dry_run: bool,
    pub action: JobAction,
    pub total: i64,
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
    Pause,
    Resume,
    Cancel,
}

/// One message of a job and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobItem {
    pub message_id: i64,
    /// `pending`, `done`, `failed` or `skipped` (no longer failed when its turn came).
    pub state: String,
    pub error: Option<String>,
}
