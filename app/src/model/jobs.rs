//! Bulk replay/discard jobs: what the API accepts and reports.

use serde::{Deserialize, Serialize};

use super::MessageQuery;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobAction {
    Replay,
    Discard,
}

impl JobAction {
    pub fn as_str(self) -> &'static str {
        match self {
            JobAction::Replay => "replay",
            JobAction::Discard => "discard",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [JobAction::Replay, JobAction::Discard]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// How a stored action or state is read back (`#[sqlx(try_from = "String")]`
/// in the server's store): an unknown word is an error, never a guess.
impl TryFrom<String> for JobAction {
    type Error = UnknownWord;
    fn try_from(s: String) -> Result<Self, UnknownWord> {
        Self::parse(&s).ok_or(UnknownWord {
            kind: "job action",
            word: s,
        })
    }
}

impl TryFrom<String> for JobState {
    type Error = UnknownWord;
    fn try_from(s: String) -> Result<Self, UnknownWord> {
        Self::parse(&s).ok_or(UnknownWord {
            kind: "job state",
            word: s,
        })
    }
}

/// A stored word that names no known variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    pub kind: &'static str,
    pub word: String,
}

impl std::fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {} {:?}", self.kind, self.word)
    }
}

impl std::error::Error for UnknownWord {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Paused,
    Completed,
    Cancelled,
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Running,
        JobState::Paused,
        JobState::Completed,
        JobState::Cancelled,
        JobState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

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
