//! Advisor findings: opened when a check first fails, kept current while it
//! keeps failing, resolved (not deleted) when it passes again.

use async_trait::async_trait;
use std::collections::HashSet;

use app::model::{Finding, FixAction, Severity, SeverityCounts};

use super::api::*;
use super::{SqliteStore, StoreError};

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

type Key = (String, String, String, String);

impl Observed {
    fn key(&self) -> Key {
        (
            self.vhost.clone(),
            self.object_type.to_owned(),
            self.object.clone(),
            self.kind.to_owned(),
        )
    }
}

type FindingRow = (
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

const COLUMNS: &str =
    "id, vhost, object_type, object, kind, severity, message, fix, action, first_seen, last_seen, resolved_at";

fn to_finding(r: FindingRow) -> Finding {
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

#[async_trait]
impl FindingStore for SqliteStore {
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
                sqlx::query("UPDATE findings SET resolved_at = ? WHERE id = ?")
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
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
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
            "SELECT {COLUMNS} FROM findings WHERE resolved_at IS NULL OR resolved_at >= ?
             ORDER BY resolved_at IS NOT NULL,
                CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                vhost, object, kind, id DESC"
        ))
        .bind(resolved_since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(to_finding).collect())
    }

    async fn open_finding_counts(&self) -> Result<SeverityCounts, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT severity, count(*) FROM findings WHERE resolved_at IS NULL GROUP BY severity",
        )
        .fetch_all(&self.pool)
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
