//! SQL for `store::findings`, compiled once per backend (see `store`).

use crate::store::backend::SqlBackend;
use super::Engine;
use crate::store::*;
use crate::store::findings::*;
use crate::store::StoreError;
use app::model::{Finding, Severity, SeverityCounts};
use async_trait::async_trait;
use std::collections::HashSet;

#[async_trait]
impl FindingStore for Engine {
    async fn sync_findings(
        &self,
        now: i64,
        vhosts: &[String],
        observed: &[Observed],
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let open: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT id, vhost, object_type, object, kind FROM findings WHERE resolved_at IS NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        let seen: HashSet<Key> = observed.iter().map(Observed::key).collect();
        for (id, vhost, object_type, object, kind) in open {
            if vhosts.contains(&vhost) && !seen.contains(&(vhost, object_type, object, kind)) {
                sqlx::query("UPDATE findings SET resolved_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for o in observed {
            let action = o
                .action
                .as_ref()
                .map(|a| serde_json::to_string(a).unwrap_or_default());
            sqlx::query(
                "INSERT INTO findings (vhost, object_type, object, kind, severity, message, fix, action,
                    first_seen, last_seen)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
                 ON CONFLICT (vhost, object_type, object, kind) WHERE resolved_at IS NULL DO UPDATE SET
                    severity = excluded.severity, message = excluded.message, fix = excluded.fix,
                    action = excluded.action, last_seen = excluded.last_seen",
            )
            .bind(&o.vhost)
            .bind(o.object_type)
            .bind(&o.object)
            .bind(o.kind)
            .bind(o.severity.as_str())
            .bind(&o.message)
            .bind(&o.fix)
            .bind(action)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn findings(&self, resolved_since: i64) -> Result<Vec<Finding>, StoreError> {
        let rows: Vec<FindingRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM findings WHERE resolved_at IS NULL OR resolved_at >= $1
             ORDER BY resolved_at IS NOT NULL,
                CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                vhost, object, kind, id DESC"
        ))
        .bind(resolved_since)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(to_finding).collect())
    }

    async fn open_finding_counts(&self) -> Result<SeverityCounts, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT severity, count(*) FROM findings WHERE resolved_at IS NULL GROUP BY severity",
        )
        .fetch_all(self.pool())
        .await?;
        let mut counts = SeverityCounts::default();
        for (severity, n) in rows {
            match Severity::parse(&severity) {
                Some(Severity::Critical) => counts.critical = n,
                Some(Severity::Warning) => counts.warning = n,
                _ => counts.info += n,
            }
        }
        Ok(counts)
    }
}
