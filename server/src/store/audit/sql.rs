//! SQL for `store::audit`, compiled once per backend (see `store`).

use crate::store::backend::SqlBackend;
use super::{Db, Engine};
use crate::store::*;
use crate::store::audit::*;
use crate::store::rows::rfc3339;
use crate::store::{now_ms, StoreError};
use app::model::{AuditAction, AuditEntry, AuditResult};
use async_trait::async_trait;
use sqlx::QueryBuilder;

#[async_trait]
impl AuditLog for Engine {
    async fn append_audit(&self, entry: &NewAudit) -> Result<(), StoreError> {
        insert_audit(self.pool(), entry).await
    }

    async fn audit(&self, f: &AuditFilter) -> Result<(Vec<AuditEntry>, bool), StoreError> {
        let mut b: QueryBuilder<'_, Db> = QueryBuilder::new(
            "SELECT id, at, \"user\", source, action, vhost, object, exchange, routing_key, result, detail
             FROM audit WHERE 1 = 1",
        );
        if let Some(u) = &f.user {
            b.push(" AND \"user\" = ").push_bind(u.clone());
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
        let rows: Vec<Row> = b.build_query_as().fetch_all(self.pool()).await?;
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
        let done = sqlx::query("DELETE FROM audit WHERE at < $1")
            .bind(before_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

/// Appends an entry on `ex`: the pool, or a transaction that records the
/// audited change itself (a bulk job's replays).
pub(crate) async fn insert_audit<'e, E>(ex: E, entry: &NewAudit) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    sqlx::query(
        "INSERT INTO audit (at, \"user\", source, action, vhost, object, exchange, routing_key, result, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
