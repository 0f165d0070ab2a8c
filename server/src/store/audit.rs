//! The audit log: append-only, filtered by user, action and time, newest first.

use app::model::AuditEntry;
use async_trait::async_trait;

use app::model::{AuditAction, AuditResult};

use super::StoreError;

/// One attempt to record.
#[derive(Debug, Clone)]
pub struct NewAudit {
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

impl NewAudit {
    /// An entry with no target (sign-in and the like).
    pub fn attempt(
        user: &str,
        source: Option<String>,
        action: AuditAction,
        result: AuditResult,
        detail: Option<String>,
    ) -> Self {
        Self {
            user: user.to_owned(),
            source,
            action,
            vhost: None,
            object: None,
            exchange: None,
            routing_key: None,
            result,
            detail,
        }
    }
}

/// A validated audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user: Option<String>,
    pub action: Option<AuditAction>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Entries older than this id (the previous page's last).
    pub before_id: Option<i64>,
    pub limit: u32,
}

pub(super) type Row = (
    i64,
    i64,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

impl TryFrom<&app::model::AuditQuery> for AuditFilter {
    type Error = StoreError;

    fn try_from(q: &app::model::AuditQuery) -> Result<Self, Self::Error> {
        use super::filter::{cursor, non_empty, page_limit, parse_time};
        let action = match non_empty(&q.action) {
            None => None,
            Some(a) => Some(AuditAction::parse(&a).ok_or_else(|| {
                let known: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                StoreError::Invalid(format!("unknown action `{a}` (one of {})", known.join(", ")))
            })?),
        };
        Ok(Self {
            user: non_empty(&q.user),
            action,
            from_ms: parse_time("from", q.from.as_deref())?,
            to_ms: parse_time("to", q.to.as_deref())?,
            before_id: cursor(q.cursor.as_deref())?,
            limit: page_limit(q.limit, 100)?,
        })
    }
}

/// The append-only audit log.
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn append_audit(&self, entry: &NewAudit) -> Result<(), StoreError>;

    /// A page of entries, newest first, and whether more follow.
    async fn audit(&self, f: &AuditFilter) -> Result<(Vec<AuditEntry>, bool), StoreError>;

    /// Deletes entries older than `before_ms` (the retention setting); returns how many.
    async fn purge_audit(&self, before_ms: i64) -> Result<u64, StoreError>;
}
