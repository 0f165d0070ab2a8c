//! The audit log: append-only, filtered by user, action and time, newest first.

use app::model::{AuditAction, AuditEntry, AuditResult};
use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::api::*;
use super::rows::rfc3339;
use super::{now_ms, SqliteStore, StoreError};

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

type Row = (
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

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append_audit(&self, entry: &NewAudit) -> Result<(), StoreError> {
        insert_audit(&self.pool, entry).await
    }

    async fn audit(&self, f: &AuditFilter) -> Result<(Vec<AuditEntry>, bool), StoreError> {
        let mut b: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "SELECT id, at, user, source, action, vhost, object, exchange, routing_key, result, detail
             FROM audit WHERE 1 = 1",
        );
        if let Some(u) = &f.user {
            b.push(" AND user = ").push_bind(u.clone());
        }
        if let Some(a) = f.action {
            b.push(" AND action = ").push_bind(a.as_str());
        }
        if let Some(t) = f.from_ms {
            b.push(" AND at >= ").push_bind(t);
        }
        if let Some(t) = f.to_ms {
            b.push(" AND at < ").push_bind(t);
        }
        if let Some(id) = f.before_id {
            b.push(" AND id < ").push_bind(id);
        }
        b.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(f.limit) + 1);
        let rows: Vec<Row> = b.build_query_as().fetch_all(&self.pool).await?;
        let more = rows.len() > f.limit as usize;
        let decode = |what: &str, v: &str| sqlx::Error::Decode(format!("unknown audit {what} `{v}`").into());
        let items = rows
            .into_iter()
            .take(f.limit as usize)
            .map(|r| {
                Ok(AuditEntry {
                    id: r.0,
                    at: rfc3339(r.1),
                    user: r.2,
                    source: r.3,
                    action: AuditAction::parse(&r.4).ok_or_else(|| decode("action", &r.4))?,
                    vhost: r.5,
                    object: r.6,
                    exchange: r.7,
                    routing_key: r.8,
                    result: AuditResult::parse(&r.9).ok_or_else(|| decode("result", &r.9))?,
                    detail: r.10,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok((items, more))
    }

    async fn purge_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit WHERE at < ?")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

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

/// Appends an entry on `ex`: the pool, or a transaction that records the
/// audited change itself (a bulk job's replays).
pub(crate) async fn insert_audit<'e, E>(ex: E, entry: &NewAudit) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    sqlx::query(
        "INSERT INTO audit (at, user, source, action, vhost, object, exchange, routing_key, result, detail)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(now_ms())
    .bind(&entry.user)
    .bind(&entry.source)
    .bind(entry.action.as_str())
    .bind(&entry.vhost)
    .bind(&entry.object)
    .bind(&entry.exchange)
    .bind(&entry.routing_key)
    .bind(entry.result.as_str())
    .bind(&entry.detail)
    .execute(ex)
    .await?;
    Ok(())
}
