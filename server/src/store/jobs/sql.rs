//! SQL for `store::jobs`, compiled once per backend (see `store`).

use crate::store::backend::SqlBackend;
use super::{select::FilterSql, Db, Engine};
use crate::store::*;
use crate::store::filter::Filter;
use crate::store::jobs::*;
use crate::store::{now_ms, StoreError};
use app::model::{Destination, Job, JobItem, JobState};
use async_trait::async_trait;
use sqlx::QueryBuilder;

#[async_trait]
impl JobStore for Engine {
    async fn destinations(&self, filter: &Filter) -> Result<Vec<Destination>, StoreError> {
        let mut b = QueryBuilder::<Db>::new(
            "SELECT vhost, original_exchange, original_routing_key, COUNT(*),
                    COALESCE(SUM(CASE WHEN tap = 'in_queue' THEN 1 ELSE 0 END), 0) FROM messages",
        );
        filter.push_where(&mut b);
        b.push(" GROUP BY vhost, original_exchange, original_routing_key ORDER BY COUNT(*) DESC, vhost");
        let rows: Vec<(String, Option<String>, Option<String>, i64, i64)> =
            b.build_query_as().fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|(vhost, exchange, routing_key, count, copies_in_queue)| Destination {
                vhost,
                exchange,
                routing_key,
                count,
                queues: Vec::new(),
                fans_out: false,
                route_note: None,
                copies_in_queue,
            })
            .collect())
    }

    async fn create_job(&self, job: NewJob<'_>, filter: &Filter) -> Result<Option<i64>, StoreError> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let state = match job.start_at {
            Some(_) => JobState::Scheduled,
            None => JobState::Running,
        };
        let plan = (!job.plan.is_plain()).then(|| serde_json::to_string(job.plan).expect("a plan serialises"));
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO jobs (action, state, actor, selection, target_exchange, target_routing_key,
                rate_per_sec, total, created_at, updated_at, plan, start_at, phase, phase_since)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(job.action.as_str())
        .bind(state.as_str())
        .bind(job.actor)
        .bind(job.selection.to_string())
        .bind(&job.exchange)
        .bind(&job.routing_key)
        .bind(job.rate_per_sec)
        .bind(now)
        .bind(now)
        .bind(plan)
        .bind(job.start_at)
        .bind(first_phase(job.action, job.plan).as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let mut b = QueryBuilder::<Db>::new("INSERT INTO job_items (job_id, message_id) SELECT ");
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
             SELECT DISTINCT $1, m.vhost FROM job_items i JOIN messages m ON m.id = i.message_id
             WHERE i.job_id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let awaits = job.approval.filter(|rule| total > rule.over);
        sqlx::query(
            "UPDATE jobs SET total = $1, state = COALESCE($2, state), approval_expires_at = $3 WHERE id = $4",
        )
        .bind(total as i64)
        .bind(awaits.map(|_| JobState::AwaitingApproval.as_str()))
        .bind(awaits.map(|rule| rule.expires_at))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    async fn job(&self, id: i64) -> Result<Job, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(&format!("{} WHERE j.id = $1", job_select()))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.ok_or_else(|| StoreError::Missing(format!("job {id}")))?
            .try_into()
    }

    async fn job_problems(&self, id: i64, limit: i64) -> Result<Vec<JobItem>, StoreError> {
        let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT message_id, state, error FROM job_items
             WHERE job_id = $1 AND state IN ('failed', 'skipped') ORDER BY message_id LIMIT $2",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(self.pool())
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
        let rows: Vec<JobRow> = sqlx::query_as(&format!("{} ORDER BY j.id DESC LIMIT $1", job_select()))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(Job::try_from).collect()
    }

    async fn job_spec(&self, id: i64) -> Result<JobSpec, StoreError> {
        let spec: Option<JobSpec> = sqlx::query_as(&format!("SELECT {SPEC_COLUMNS} FROM jobs j WHERE j.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        spec.ok_or_else(|| StoreError::Missing(format!("job {id}")))
    }

    async fn running_jobs(&self) -> Result<Vec<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM jobs WHERE state = $1 ORDER BY id")
                .bind(JobState::Running.as_str())
                .fetch_all(self.pool())
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
        let mut b = state_update(to, note);
        push_from(&mut b, id, from);
        Ok(b.build().execute(self.pool()).await?.rows_affected() == 1)
    }

    async fn approve_job(&self, id: i64, approver: &str, to: JobState, now: i64) -> Result<bool, StoreError> {
        let mut b = state_update(to, None);
        b.push(", approved_by = ")
            .push_bind(approver.to_owned())
            .push(", approved_at = ")
            .push_bind(now);
        push_from(&mut b, id, &[JobState::AwaitingApproval]);
        b.push(" AND approval_expires_at > ").push_bind(now);
        Ok(b.build().execute(self.pool()).await?.rows_affected() == 1)
    }

    async fn expire_approvals(&self, now: i64) -> Result<Vec<ExpiredApproval>, StoreError> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "UPDATE jobs SET state = $1, updated_at = $2, finished_at = $2,
                note = 'approval expired: no second user approved it in time'
             WHERE state = $3 AND approval_expires_at <= $2
             RETURNING id, actor, total",
        )
        .bind(JobState::Cancelled.as_str())
        .bind(now)
        .bind(JobState::AwaitingApproval.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, actor, total)| ExpiredApproval { id, actor, total })
            .collect())
    }

    async fn set_job_note(&self, id: i64, note: Option<&str>) -> Result<(), StoreError> {
        set_while_running(self, id, RunningText::Note, note).await
    }
}


/// `UPDATE jobs SET state = to, …` with what entering `to` resets.
fn state_update<'a>(to: JobState, note: Option<&str>) -> QueryBuilder<'a, Db> {
    let now = now_ms();
    let mut b = QueryBuilder::<Db>::new("UPDATE jobs SET state = ");
    b.push_bind(to.as_str()).push(", updated_at = ").push_bind(now);
    if to.is_final() {
        b.push(", finished_at = ").push_bind(now);
    }
    if let Some(n) = note {
        b.push(", note = ").push_bind(n.to_owned());
    }
    if to == JobState::Running {
        // A resumed (or started) job starts its replay-loop check and its
        // plan afresh: a canary again, a ramp from its start.
        b.push(", note = NULL, pause_reason = NULL, waiting = NULL, loop_check_from = ")
            .push_bind(now)
            .push(", phase_since = ")
            .push_bind(now)
            // No phase: the runner begins the plan (`first_phase`).
            .push(", phase_base = items_done + items_failed, phase = NULL, current_rate = NULL");
    }
    b
}

/// ` WHERE id = … AND state IN (from)`.
fn push_from(b: &mut QueryBuilder<'_, Db>, id: i64, from: &[JobState]) {
    b.push(" WHERE id = ").push_bind(id).push(" AND state IN (");
    let mut list = b.separated(", ");
    for s in from {
        list.push_bind(s.as_str());
    }
    b.push(")");
}

/// A text column a running job's runner keeps current.
pub(super) enum RunningText {
    Note,
    Waiting,
}

/// Sets it, only while the job runs (a paused or finished job keeps its own).
pub(super) async fn set_while_running(
    engine: &Engine,
    id: i64,
    column: RunningText,
    value: Option<&str>,
) -> Result<(), StoreError> {
    let column = match column {
        RunningText::Note => "note",
        RunningText::Waiting => "waiting",
    };
    sqlx::query(&format!(
        "UPDATE jobs SET {column} = $1, updated_at = $2 WHERE id = $3 AND state = $4"
    ))
    .bind(value)
    .bind(now_ms())
    .bind(id)
    .bind(JobState::Running.as_str())
    .execute(engine.pool())
    .await?;
    Ok(())
}
