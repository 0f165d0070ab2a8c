//! Who is signed in, what they may do, and the audit log.

use serde::{Deserialize, Serialize};

use super::word::word;

/// `GET /api/v1/me`: the signed-in user as the broker describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Me {
    pub user: String,
    /// The broker tags Redrive acts on (administrator, policymaker, monitoring, management).
    pub tags: Vec<String>,
    pub vhosts: Vec<VhostAccess>,
    /// Policies and advisor fixes (policymaker or administrator).
    pub can_edit_policies: bool,
    /// Alert rules (management or above).
    pub can_edit_alerts: bool,
    /// Sees every user's audit entries (administrator).
    pub can_audit_all: bool,
    /// Redrive runs with `REDRIVE_READ_ONLY`, or the user is monitoring-only.
    pub read_only: bool,
}

impl Me {
    pub fn vhost(&self, name: &str) -> Option<&VhostAccess> {
        self.vhosts.iter().find(|v| v.vhost == name)
    }
}

/// The user's broker permissions in one vhost (regexes, as the broker keeps them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VhostAccess {
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// What an audit entry records.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AuditAction {
    SignIn,
    SignInFailed,
    SignOut,
    Replay,
    EditReplay,
    Discard,
    Restore,
    Purge,
    JobStart,
    /// A scheduled job started now, by hand.
    JobStartNow,
    /// A scheduled job reached its time and started (or was refused).
    JobScheduledStart,
    JobPause,
    JobResume,
    JobCancel,
    /// A second user approved a job that waited for approval.
    JobApprove,
    /// A second user refused it.
    JobRefuse,
    /// Nobody approved it in time (`REDRIVE_APPROVAL_TTL`).
    JobApprovalExpired,
    JobReplay,
    PolicyPut,
    PolicyDelete,
    AdvisorFix,
    AlertRuleCreate,
    AlertRuleDelete,
    AlertRuleTest,
    WatchChange,
    Annotate,
    /// A failure group's owner set or cleared.
    GroupOwner,
    /// A failure group put on hold, or its hold ended early.
    GroupHold,
    GroupRelease,
    /// One message's owner set or cleared.
    MessageOwner,
    /// One message put on hold, or its hold ended early.
    MessageHold,
    MessageRelease,
    /// A user holding the unmask tag read a message whose values
    /// `REDRIVE_MASK` hides from others (its page, the API, its body).
    UnmaskedView,
    /// Such a user exported messages with those values as they are.
    UnmaskedExport,
    /// A signed-in browser sent a state change without the session's CSRF
    /// token: another site tried to act as this user.
    ForgedRequest,
}

word!(AuditAction, "audit action");

/// How an audited attempt ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum AuditResult {
    Ok,
    Failed,
    /// Refused by authorisation (403).
    Refused,
}

word!(AuditResult, "audit result");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    pub user: String,
    pub source: Option<String>,
    pub action: AuditAction,
    pub vhost: Option<String>,
    pub object: Option<String>,
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub result: AuditResult,
    pub detail: Option<String>,
}

/// `GET /api/v1/audit?user=&action=&from=&to=&limit=&cursor=`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}
