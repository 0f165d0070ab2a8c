//! Advisor findings: opened when a check first fails, kept current while it
//! keeps failing, resolved (not deleted) when it passes again.

use crate::store::StoreError;
use app::model::SeverityCounts;
use async_trait::async_trait;

use app::model::{Finding, FixAction, Severity};

/// A finding as the advisor computes it from one look at the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub vhost: String,
    pub object_type: &'static str,
    pub object: String,
    pub kind: &'static str,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
    pub action: Option<FixAction>,
}

pub(super) type Key = (String, String, String, String);

impl Observed {
    pub(super) fn key(&self) -> Key {
        (
            self.vhost.clone(),
            self.object_type.to_owned(),
            self.object.clone(),
            self.kind.to_owned(),
        )
    }
}

pub(super) type FindingRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<i64>,
);

pub(super) const COLUMNS: &str =
    "id, vhost, object_type, object, kind, severity, message, fix, action, first_seen, last_seen, resolved_at";

pub(super) fn to_finding(r: FindingRow) -> Finding {
    let (
        id,
        vhost,
        object_type,
        object,
        kind,
        severity,
        message,
        fix,
        action,
        first_seen,
        last_seen,
        resolved_at,
    ) = r;
    Finding {
        id,
        vhost,
        object_type,
        object,
        kind,
        severity: Severity::parse(&severity).unwrap_or(Severity::Warning),
        message,
        fix,
        action: action.and_then(|a| serde_json::from_str(&a).ok()),
        first_seen,
        last_seen,
        resolved_at,
    }
}

/// The advisor's findings, opened and resolved as conditions come and go.
#[async_trait]
pub trait FindingStore: Send + Sync {
    /// Records what the advisor sees now in `vhosts`: new findings open,
    /// present ones are refreshed, open ones no longer seen are resolved.
    /// Findings in other vhosts are left alone (another Redrive may own them).
    async fn sync_findings(
        &self,
        now: i64,
        vhosts: &[String],
        observed: &[Observed],
    ) -> Result<(), StoreError>;

    /// Open findings, most severe first, then those resolved since `resolved_since`.
    async fn findings(&self, resolved_since: i64) -> Result<Vec<Finding>, StoreError>;

    async fn open_finding_counts(&self) -> Result<SeverityCounts, StoreError>;
}
