//! SQL for `store::replays`, compiled once per backend (see `store`).

use crate::store::backend::SqlBackend;
use super::{history::insert_event, Conn, Db, Engine};
use crate::store::*;
use crate::store::{expected_label, now_ms, Event, StoreError};
use app::model::{HistoryAction, MessageStatus};
use async_trait::async_trait;

#[async_trait]
impl ReplayStore for Engine {
    async fn uncertain_replay_id(&self, id: i64) -> Result<Option<String>, StoreError> {
        let row: Option<Option<String>> = sqlx::query_scalar(
            "SELECT CASE WHEN replay_uncertain = 1 THEN pending_replay_id END FROM messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.ok_or(StoreError::NotFound(id))
    }

    async fn claim_replay(
        &self,
        id: i64,
        owner: &str,
        replay_id: &str,
        edit: Option<Event<'_>>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let claimed = sqlx::query(
            "UPDATE messages SET status = 'replaying', replay_owner = $1, replay_heartbeat = $2,
                pending_replay_id = $3
             WHERE id = $4 AND status = 'failed'",
        )
        .bind(owner)
        .bind(now_ms())
        .bind(replay_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            let status: Option<String> = sqlx::query_scalar("SELECT status FROM messages WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let status = status.ok_or(StoreError::NotFound(id))?;
            return Err(StoreError::WrongState {
                id,
                status: status.parse().unwrap_or(MessageStatus::Replaying),
                expected: expected_label(&[MessageStatus::Failed]),
            });
        }
        if let Some(edit) = edit {
            insert_event(&mut tx, id, &edit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn settle_replay(
        &self,
        id: i64,
        owner: &str,
        settlement: Settlement,
        event: &Event<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        apply_settlement(&mut tx, id, owner, settlement).await?;
        insert_event(&mut tx, id, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sweep_abandoned_replays(&self, stale_before: i64) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let ids: Vec<(i64, Option<String>)> = sqlx::query_as(
            "SELECT id, pending_replay_id FROM messages
             WHERE status = 'replaying' AND COALESCE(replay_heartbeat, 0) < $1",
        )
        .bind(stale_before)
        .fetch_all(&mut *tx)
        .await?;
        lock_job_items(&mut tx, ids.iter().map(|(id, _)| *id)).await?;
        let mut swept = 0;
        for (id, replay_id) in &ids {
            // Conditional: a replay settled (or a heartbeat renewed) since
            // the read above is not swept.
            let flagged = sqlx::query(
                "UPDATE messages SET status = 'failed', replay_uncertain = 1, replay_owner = NULL,
                    replay_heartbeat = NULL
                 WHERE id = $1 AND status = 'replaying' AND COALESCE(replay_heartbeat, 0) < $2",
            )
            .bind(id)
            .bind(stale_before)
            .execute(&mut *tx)
            .await?;
            if flagged.rows_affected() == 0 {
                continue;
            }
            swept += 1;
            let detail = format!(
                "Redrive stopped before the broker confirmed this replay (replay id {}); it may or may not \
                 have been delivered. A retry reuses that replay id.",
                replay_id.as_deref().unwrap_or("unknown")
            );
            let event = Event {
                action: HistoryAction::Replay,
                actor: "redrive",
                target: None,
                ok: false,
                detail: Some(detail),
                replay_id: None,
            };
            insert_event(&mut tx, *id, &event).await?;
            sqlx::query(
                "UPDATE job_items SET state = 'failed', error = $1 WHERE message_id = $2 AND state = 'pending'",
            )
            .bind("outcome unknown: Redrive stopped before the broker confirmed the replay; check, then retry by hand")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(swept)
    }
}

/// Locks the job items of `messages` before their messages are flagged, in
/// the order a job's claim locks them (see `job_batches`): a claim then
/// either runs first, or reads the flagged item as settled.
async fn lock_job_items(tx: &mut Conn, messages: impl Iterator<Item = i64>) -> Result<(), StoreError> {
    let ids: Vec<i64> = messages.collect();
    if Engine::LOCK_ROWS.is_empty() || ids.is_empty() {
        return Ok(());
    }
    // One statement, so the whole set is locked in one order.
    let mut b = sqlx::QueryBuilder::<Db>::new("SELECT job_id FROM job_items WHERE state = 'pending'");
    Engine::push_id_set(&mut b, "message_id", &ids);
    b.push(" ORDER BY job_id, message_id").push(Engine::LOCK_ROWS);
    b.build().execute(&mut *tx).await?;
    Ok(())
}

/// Writes a replay's verdict on the message `owner` claimed.
pub(super) async fn apply_settlement(
    tx: &mut Conn,
    id: i64,
    owner: &str,
    settlement: Settlement,
) -> Result<(), StoreError> {
    apply_settlements(tx, &[id], owner, settlement).await
}

/// Writes one verdict on many messages `owner` claimed, in two statements.
pub(super) async fn apply_settlements(
    tx: &mut Conn,
    ids: &[i64],
    owner: &str,
    settlement: Settlement,
) -> Result<(), StoreError> {
    let (status, uncertain) = match settlement {
        Settlement::Replayed => ("replayed", "0"),
        Settlement::Failed => ("failed", "replay_uncertain"),
        Settlement::Unknown => ("failed", "1"),
    };
    for chunk in ids.chunks(10_000) {
        let mut b = sqlx::QueryBuilder::<Db>::new("UPDATE messages SET status = ");
        b.push_bind(status).push(format!(
            ", replay_owner = NULL, replay_heartbeat = NULL, replay_uncertain = {uncertain},
               pending_replay_id = CASE WHEN {uncertain} = 1 THEN pending_replay_id END
             WHERE status = 'replaying' AND replay_owner = "
        ));
        b.push_bind(owner).push(" AND id IN (");
        let mut list = b.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        b.push(")");
        b.build().execute(&mut *tx).await?;
        if settlement == Settlement::Replayed {
            // A lease swept meanwhile (this instance looked dead) left the
            // message flagged unknown; the broker's confirm is the truth.
            // A refusal of this attempt says nothing of an earlier one with
            // the same replay id, so only a confirm overrides the flag.
            let mut b = sqlx::QueryBuilder::<Db>::new(
                "UPDATE messages SET status = 'replayed', replay_uncertain = 0, pending_replay_id = NULL
                 WHERE status = 'failed' AND id IN (",
            );
            let mut list = b.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            b.push(")");
            b.build().execute(&mut *tx).await?;
            let ended = super::group_claims::end_holds_on_replay(tx, chunk, now_ms()).await?;
            if ended > 0 {
                tracing::info!(ended, "a replay was delivered: holds until a fix is replayed ended");
            }
        }
    }
    Ok(())
}
