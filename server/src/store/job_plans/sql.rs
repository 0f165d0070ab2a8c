//! SQL for `store::job_plans`, compiled once per backend (see `store`).

use crate::store::backend::SqlBackend;
use super::jobs::{set_while_running, RunningText};
use super::Engine;
use crate::store::job_plans::{JobPlanStore, PhaseRecord};
use crate::store::{now_ms, Scope, StoreError};
use app::model::JobState;
use async_trait::async_trait;

#[async_trait]
impl JobPlanStore for Engine {
    async fn due_jobs(&self, now_ms: i64) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs WHERE state = $1 AND start_at <= $2 ORDER BY start_at, id",
        )
        .bind(JobState::Scheduled.as_str())
        .bind(now_ms)
        .fetch_all(self.pool())
        .await?)
    }

    async fn reschedule(&self, id: i64, at_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE jobs SET start_at = $1, updated_at = $2 WHERE id = $3 AND state = $4")
            .bind(at_ms)
            .bind(now_ms())
            .bind(id)
            .bind(JobState::Scheduled.as_str())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn job_scopes(&self, id: i64) -> Result<Vec<Scope>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT DISTINCT m.vhost, m.queue, m.original_exchange AS exchange
             FROM job_items i JOIN messages m ON m.id = i.message_id
             WHERE i.job_id = $1 AND i.state = 'pending'",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }

    async fn set_phase(&self, id: i64, p: &PhaseRecord) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET phase = $1, phase_since = $2, phase_base = $3, current_rate = $4,
                phase_note = $5, updated_at = $6, canary_since = COALESCE($9, canary_since)
             WHERE id = $7 AND state = $8",
        )
        .bind(p.phase.as_str())
        .bind(p.since)
        .bind(p.base)
        .bind(p.rate)
        .bind(&p.note)
        .bind(now_ms())
        .bind(id)
        .bind(JobState::Running.as_str())
        .bind(p.canary_since)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn set_waiting(&self, id: i64, waiting: Option<&str>) -> Result<(), StoreError> {
        set_while_running(self, id, RunningText::Waiting, waiting).await
    }

    async fn pause_for(&self, id: i64, reason: &str, returned: &[i64]) -> Result<bool, StoreError> {
        let returned = serde_json::to_string(returned).expect("ids serialise");
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, pause_reason = $2, note = $2, canary_returned = $3,
                waiting = NULL, updated_at = $4
             WHERE id = $5 AND state = $6",
        )
        .bind(JobState::Paused.as_str())
        .bind(reason)
        .bind(returned)
        .bind(now_ms())
        .bind(id)
        .bind(JobState::Running.as_str())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn returned_copies(&self, id: i64, since_ms: i64, limit: i64) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT m.id FROM messages m
             WHERE m.replay_id IS NOT NULL AND m.received_at >= $1
               AND EXISTS (SELECT 1 FROM job_items i WHERE i.replay_id = m.replay_id AND i.job_id = $2)
             ORDER BY m.id LIMIT $3",
        )
        .bind(since_ms)
        .bind(id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
