//! SQL for `store::job_batches`, compiled once per backend (see `store`).

use crate::store::backend::SqlBackend;
use super::audit::insert_audit;
use super::replays::apply_settlements;
use super::{history::insert_event, Conn, Db, Engine};
use crate::store::*;
use crate::store::job_batches::*;
use crate::store::rows::{StoredMessage, REPLAY_SELECT};
use crate::store::{now_ms, Event, NewAudit, Settlement, StoreError};
use app::model::{AuditAction, AuditResult, HistoryAction, MessageStatus};
use async_trait::async_trait;
use sqlx::QueryBuilder;

/// The status of a message, `None` when it is gone.
async fn status_of(tx: &mut Conn, message_id: i64) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT status FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_optional(&mut *tx)
        .await?)
}

/// Marks an item skipped: its message (in `status`) was not `failed`.
/// Only a pending item: one the sweep settled as "outcome unknown" keeps
/// that verdict.
async fn skip_item(
    tx: &mut Conn,
    job_id: i64,
    message_id: i64,
    status: Option<String>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE job_items SET state = 'skipped', error = $1, settled_at = $2
         WHERE job_id = $3 AND message_id = $4 AND state = 'pending'",
    )
    .bind(crate::store::job_batches::skip_reason(status, message_id))
    .bind(now_ms())
    .bind(job_id)
    .bind(message_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The job's next pending items, locked until the transaction ends: the
/// sweep of abandoned replays locks an item before it flags the item's
/// message, so an item it settles as "outcome unknown" is never read here
/// as pending and its message, `failed` again, claimed and sent a second
/// time.
async fn pending_items(tx: &mut Conn, job_id: i64, after: i64, limit: usize) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT message_id FROM job_items WHERE job_id = $1 AND state = 'pending' AND message_id > $2
         ORDER BY message_id LIMIT $3{}",
        Engine::LOCK_ROWS
    ))
    .bind(job_id)
    .bind(after)
    .bind(limit as i64)
    .fetch_all(&mut *tx)
    .await?)
}

#[async_trait]
impl JobSteps for Engine {
    async fn job_step(
        &self,
        job_id: i64,
        owner: &str,
        user: &str,
        outcomes: &[JobReplayOutcome],
        claim: Option<ClaimRequest>,
        new_id: &mut (dyn FnMut() -> String + Send),
    ) -> Result<ClaimBatch, StoreError> {
        let mut tx = self.write_tx().await?;
        if !outcomes.is_empty() {
            settle_in(&mut tx, job_id, owner, user, outcomes).await?;
        }
        let batch = match claim {
            Some(c) => claim_in(&mut tx, job_id, owner, c, new_id).await?,
            None => ClaimBatch::default(),
        };
        tx.commit().await?;
        Ok(batch)
    }

    async fn release_claims(&self, owner: &str, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut b = QueryBuilder::<Db>::new(
            "UPDATE messages SET status = 'failed', replay_owner = NULL, replay_heartbeat = NULL,
                pending_replay_id = CASE WHEN replay_uncertain = 1 THEN pending_replay_id END
             WHERE status = 'replaying' AND replay_owner = ",
        );
        b.push_bind(owner).push(" AND id IN (");
        let mut list = b.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        b.push(")");
        b.build().execute(self.pool()).await?;
        Ok(())
    }

    async fn discard_job_batch(&self, job_id: i64, user: &str, limit: usize) -> Result<usize, StoreError> {
        let actor = format!("{user} (job {job_id})");
        let mut tx = self.write_tx().await?;
        let ids = pending_items(&mut tx, job_id, 0, limit).await?;
        let now = now_ms();
        for &id in &ids {
            let vhost: Option<String> = sqlx::query_scalar(
                "UPDATE messages SET status = 'discarded' WHERE id = $1 AND status = 'failed' RETURNING vhost",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(vhost) = vhost else {
                let status = status_of(&mut tx, id).await?;
                skip_item(&mut tx, job_id, id, status).await?;
                continue;
            };
            let event = Event {
                action: HistoryAction::Discard,
                actor: &actor,
                target: None,
                ok: true,
                detail: None,
                replay_id: None,
            };
            insert_event(&mut tx, id, &event).await?;
            sqlx::query(
                "UPDATE job_items SET state = 'done', settled_at = $1 WHERE job_id = $2 AND message_id = $3",
            )
            .bind(now)
            .bind(job_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let entry = NewAudit {
                user: user.to_owned(),
                source: None,
                action: AuditAction::Discard,
                vhost: Some(vhost),
                object: Some(format!("message {id} (job {job_id})")),
                exchange: None,
                routing_key: None,
                result: AuditResult::Ok,
                detail: None,
            };
            insert_audit(&mut *tx, &entry).await?;
        }
        sqlx::query("UPDATE jobs SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ids.len())
    }

    async fn job_copies_back(&self, job_id: i64, since_ms: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages m
             WHERE m.replay_id IS NOT NULL AND m.received_at >= $1
               AND EXISTS (SELECT 1 FROM job_items i
                           WHERE i.replay_id = m.replay_id AND i.job_id = $2 AND i.settled_at >= $3)",
        )
        .bind(since_ms)
        .bind(job_id)
        .bind(since_ms)
        .fetch_one(self.pool())
        .await?)
    }
}

/// Claims up to `c.limit` of the job's pending messages after `c.after`.
async fn claim_in(
    tx: &mut Conn,
    job_id: i64,
    owner: &str,
    c: ClaimRequest,
    mut new_id: impl FnMut() -> String,
) -> Result<ClaimBatch, StoreError> {
    let ids = pending_items(tx, job_id, c.after, c.limit).await?;
    let mut batch = ClaimBatch {
        last: ids.last().copied(),
        ..Default::default()
    };
    // One statement claims the whole batch, each message with its own
    // replay id (or the one an unknown earlier outcome left).
    let mut claimed: Vec<(i64, String)> = Vec::with_capacity(ids.len());
    if !ids.is_empty() {
        let mut b = QueryBuilder::<Db>::new("UPDATE messages SET status = 'replaying', replay_owner = ");
        b.push_bind(owner)
            .push(", replay_heartbeat = ")
            .push_bind(now_ms())
            .push(
                ", pending_replay_id = CASE WHEN replay_uncertain = 1 AND pending_replay_id IS NOT NULL
                    THEN pending_replay_id ELSE v.column2 END FROM (",
            );
        b.push_values(&ids, |mut row, id| {
            row.push_bind(*id).push_bind(new_id());
        });
        b.push(
            ") AS v WHERE messages.id = v.column1 AND messages.status = 'failed'
             RETURNING messages.id, messages.pending_replay_id",
        );
        claimed = b.build_query_as().fetch_all(&mut *tx).await?;
        claimed.sort_unstable_by_key(|(id, _)| *id);
    }
    for &id in &ids {
        if claimed.binary_search_by_key(&id, |(c, _)| *c).is_err() {
            // A message another replay holds keeps its item pending: its
            // outcome is that replay's, or the sweep's ("outcome unknown").
            // One that replay has just given back (`failed`) is claimed on
            // the next pass.
            let status = status_of(tx, id).await?;
            let held = [MessageStatus::Replaying, MessageStatus::Failed].map(|s| Some(s.as_str()));
            if held.contains(&status.as_deref()) {
                batch.held += 1;
            } else {
                skip_item(tx, job_id, id, status).await?;
                batch.skipped += 1;
            }
        }
    }
    if !claimed.is_empty() {
        let mut b = QueryBuilder::<Db>::new(REPLAY_SELECT);
        b.push(" WHERE id IN (");
        let mut list = b.separated(", ");
        for (id, _) in &claimed {
            list.push_bind(*id);
        }
        b.push(") ORDER BY id");
        let rows: Vec<StoredMessage> = b.build_query_as().fetch_all(&mut *tx).await?;
        batch.claimed = rows
            .into_iter()
            .zip(claimed)
            .map(|(message, (id, replay_id))| {
                debug_assert_eq!(message.id(), id);
                Claimed { message, replay_id }
            })
            .collect();
    }
    Ok(batch)
}

/// Records the verdicts of a batch of job replays: each message's
/// status, history event, job item and audit entry.
async fn settle_in(
    tx: &mut Conn,
    job_id: i64,
    owner: &str,
    user: &str,
    outcomes: &[JobReplayOutcome],
) -> Result<(), StoreError> {
    let actor = format!("{user} (job {job_id})");
    let now = now_ms();
    for kind in [Settlement::Replayed, Settlement::Failed, Settlement::Unknown] {
        let ids: Vec<i64> = outcomes
            .iter()
            .filter(|o| o.settlement == kind)
            .map(|o| o.replay.message_id)
            .collect();
        apply_settlements(tx, &ids, owner, kind).await?;
    }
    let details: Vec<String> = outcomes
        .iter()
        .map(|o| match &o.error {
            None => format!("replay id {}", o.replay.replay_id),
            Some(e) => format!("{e} (replay id {})", o.replay.replay_id),
        })
        .collect();
    for (chunk, details) in outcomes
        .chunks(ROWS_PER_INSERT)
        .zip(details.chunks(ROWS_PER_INSERT))
    {
        let rows = || chunk.iter().zip(details);
        let mut b = QueryBuilder::<Db>::new(
            "INSERT INTO message_events (message_id, at, action, actor, target, result, detail, replay_id) ",
        );
        b.push_values(rows(), |mut row, (o, detail)| {
            let ok = o.settlement == Settlement::Replayed;
            row.push_bind(o.replay.message_id)
                .push_bind(now)
                .push_bind(HistoryAction::Replay.as_str())
                .push_bind(&actor)
                .push_bind(&o.replay.target)
                .push_bind(if ok { "ok" } else { "error" })
                .push_bind(detail)
                .push_bind(ok.then_some(&o.replay.replay_id));
        });
        b.build().execute(&mut *tx).await?;

        let mut b = QueryBuilder::<Db>::new(
            "INSERT INTO job_items (job_id, message_id, state, error, replay_id, settled_at) ",
        );
        b.push_values(chunk, |mut row, o| {
            let ok = o.settlement == Settlement::Replayed;
            row.push_bind(job_id)
                .push_bind(o.replay.message_id)
                .push_bind(if ok { "done" } else { "failed" })
                .push_bind(if ok { None } else { o.error.as_deref() })
                .push_bind(ok.then_some(&o.replay.replay_id))
                .push_bind(now);
        });
        b.push(
            " ON CONFLICT (job_id, message_id) DO UPDATE SET state = excluded.state, error = excluded.error,
                replay_id = excluded.replay_id, settled_at = excluded.settled_at",
        );
        b.build().execute(&mut *tx).await?;

        let mut b = QueryBuilder::<Db>::new(
            "INSERT INTO audit (at, \"user\", source, action, vhost, object, exchange, routing_key, result, detail) ",
        );
        b.push_values(rows(), |mut row, (o, detail)| {
            let result = if o.settlement == Settlement::Replayed {
                AuditResult::Ok
            } else {
                AuditResult::Failed
            };
            row.push_bind(now)
                .push_bind(user)
                .push_bind(None::<String>)
                .push_bind(AuditAction::JobReplay.as_str())
                .push_bind(&o.replay.vhost)
                .push_bind(format!("message {} (job {job_id})", o.replay.message_id))
                .push_bind(&o.replay.exchange)
                .push_bind(&o.replay.routing_key)
                .push_bind(result.as_str())
                .push_bind(detail);
        });
        b.build().execute(&mut *tx).await?;
    }
    sqlx::query("UPDATE jobs SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
