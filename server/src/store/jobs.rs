//! Persistence of bulk jobs. Progress is counted from `job_items`, never kept
//! as separate counters, so it cannot drift from what was actually done.

use app::model::{Destination, Job, JobAction, JobItem, JobState, MessageStatus};
use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::api::*;
use super::filter::Filter;
use super::rows::rfc3339;
use super::{now_ms, SqliteStore, StoreError};

/// What a job needs to run, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobSpec {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub action: JobAction,
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub actor: String,
    pub target_exchange: Option<String>,
    pub target_routing_key: Option<String>,
    pub rate_per_sec: Option<f64>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    #[sqlx(flatten)]
    spec: JobSpec,
    selection: String,
    total: i64,
    done: i64,
    failed: i64,
    pending: i64,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    note: Option<String>,
}

const JOB_SELECT: &str = "SELECT j.id, j.action, j.state, j.actor, j.target_exchange, j.target_routing_key,
    j.rate_per_sec, j.selection, j.total, j.created_at, j.updated_at, j.finished_at, j.note,
    j.items_done AS done, j.items_failed AS failed, j.items_pending AS pending
    FROM jobs j";

impl From<JobRow> for Job {
    fn from(r: JobRow) -> Self {
        Job {
            id: r.spec.id,
            action: r.spec.action,
            state: r.spec.state,
            actor: r.spec.actor,
            selection: serde_json::from_str(&r.selection).unwrap_or_default(),
            exchange: r.spec.target_exchange,
            routing_key: r.spec.target_routing_key,
            rate_per_sec: r.spec.rate_per_sec,
            total: r.total,
            done: r.done,
            failed: r.failed,
            remaining: r.pending,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            finished_at: r.finished_at.map(rfc3339),
            note: r.note,
        }
    }
}

/// The parts of a job request the store keeps.
pub struct NewJob<'a> {
    pub action: JobAction,
    pub actor: &'a str,
    pub selection: serde_json::Value,
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub rate_per_sec: Option<f64>,
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn destinations(&self, filter: &Filter) -> Result<Vec<Destination>, StoreError> {
        let mut b = QueryBuilder::<Sqlite>::new(
            "SELECT original_exchange, original_routing_key, COUNT(*) FROM messages",
        );
        filter.push_where(&mut b);
        b.push(" GROUP BY original_exchange, original_routing_key ORDER BY COUNT(*) DESC");
        let rows: Vec<(Option<String>, Option<String>, i64)> =
            b.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(exchange, routing_key, count)| Destination {
                exchange,
                routing_key,
                count,
            })
            .collect())
    }

    async fn create_job(&self, job: NewJob<'_>, filter: &Filter) -> Result<Option<i64>, StoreError> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO jobs (action, state, actor, selection, target_exchange, target_routing_key,
                rate_per_sec, total, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?) RETURNING id",
        )
        .bind(job.action.as_str())
        .bind(JobState::Running.as_str())
        .bind(job.actor)
        .bind(job.selection.to_string())
        .bind(&job.exchange)
        .bind(&job.routing_key)
        .bind(job.rate_per_sec)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let mut b = QueryBuilder::<Sqlite>::new("INSERT INTO job_items (job_id, message_id) SELECT ");
        b.push_bind(id).push(", id FROM messages");
        filter.push_where(&mut b);
        let total = b.build().execute(&mut *tx).await?.rows_affected();
        if total == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        // Read on every view of the job (who may see it), so kept apart
        // rather than joined from a hundred thousand items each time.
        sqlx::query(
            "INSERT INTO job_vhosts (job_id, vhost)
             SELECT DISTINCT ?1, m.vhost FROM job_items i JOIN messages m ON m.id = i.message_id
             WHERE i.job_id = ?1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE jobs SET total = ? WHERE id = ?")
            .bind(total as i64)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    async fn job(&self, id: i64) -> Result<Job, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(&format!("{JOB_SELECT} WHERE j.id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Job::from)
            .ok_or_else(|| StoreError::Missing(format!("job {id}")))
    }

    async fn job_problems(&self, id: i64, limit: i64) -> Result<Vec<JobItem>, StoreError> {
        let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT message_id, state, error FROM job_items
             WHERE job_id = ? AND state IN ('failed', 'skipped') ORDER BY message_id LIMIT ?",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(message_id, state, error)| JobItem {
                message_id,
                state,
                error,
            })
            .collect())
    }

    async fn jobs(&self, limit: i64) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<JobRow> = sqlx::query_as(&format!("{JOB_SELECT} ORDER BY j.id DESC LIMIT ?"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Job::from).collect())
    }

    async fn job_spec(&self, id: i64) -> Result<JobSpec, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, action, state, actor, target_exchange, target_routing_key, rate_per_sec
             FROM jobs WHERE id = ?",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn running_jobs(&self) -> Result<Vec<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM jobs WHERE state = ? ORDER BY id")
                .bind(JobState::Running.as_str())
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn set_job_state(
        &self,
        id: i64,
        from: &[JobState],
        to: JobState,
        note: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut b = QueryBuilder::<Sqlite>::new("UPDATE jobs SET state = ");
        b.push_bind(to.as_str())
            .push(", updated_at = ")
            .push_bind(now_ms());
        if to.is_final() {
            b.push(", finished_at = ").push_bind(now_ms());
        }
        if let Some(n) = note {
            b.push(", note = ").push_bind(n.to_owned());
        }
        if to == JobState::Running {
            // A resumed job starts its replay-loop check afresh.
            b.push(", note = NULL, loop_check_from = ").push_bind(now_ms());
        }
        b.push(" WHERE id = ").push_bind(id).push(" AND state IN (");
        let mut list = b.separated(", ");
        for s in from {
            list.push_bind(s.as_str());
        }
        b.push(")");
        Ok(b.build().execute(&self.pool).await?.rows_affected() == 1)
    }

    async fn set_job_note(&self, id: i64, note: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE jobs SET note = ?, updated_at = ? WHERE id = ? AND state = ?")
            .bind(note)
            .bind(now_ms())
            .bind(id)
            .bind(JobState::Running.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The status a message must have to be taken into a job.
pub const SELECTABLE: MessageStatus = MessageStatus::Failed;
