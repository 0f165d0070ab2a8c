//! The replay lease: a message being replayed is claimed by one instance,
//! which keeps a heartbeat on it until the broker's verdict is recorded.
//!
//! Never guess: a replay that was published but never confirmed leaves its
//! message `failed` and flagged "outcome unknown" with the replay id it
//! carried. Nothing retries it on its own; an operator's retry reuses that
//! id, so consumers can recognise a second copy.

use app::model::MessageStatus;
use async_trait::async_trait;
use sqlx::SqliteConnection;

use super::api::*;
use super::{expected_label, insert_event, now_ms, Event, SqliteStore, StoreError};

/// How a replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Confirmed by the broker.
    Replayed,
    /// Refused by the broker, or never published: back to `failed`, any
    /// earlier uncertainty kept.
    Failed,
    /// Published without a confirm: back to `failed`, flagged.
    Unknown,
}

#[async_trait]
impl ReplayStore for SqliteStore {
    async fn uncertain_replay_id(&self, id: i64) -> Result<Option<String>, StoreError> {
        let row: Option<Option<String>> = sqlx::query_scalar(
            "SELECT CASE WHEN replay_uncertain = 1 THEN pending_replay_id END FROM messages WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
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
            "UPDATE messages SET status = 'replaying', replay_owner = ?, replay_heartbeat = ?,
                pending_replay_id = ?
             WHERE id = ? AND status = 'failed'",
        )
        .bind(owner)
        .bind(now_ms())
        .bind(replay_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            let status: Option<String> = sqlx::query_scalar("SELECT status FROM messages WHERE id = ?")
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
             WHERE status = 'replaying' AND COALESCE(replay_heartbeat, 0) < ?",
        )
        .bind(stale_before)
        .fetch_all(&mut *tx)
        .await?;
        for (id, replay_id) in &ids {
            sqlx::query(
                "UPDATE messages SET status = 'failed', replay_uncertain = 1, replay_owner = NULL,
                    replay_heartbeat = NULL
                 WHERE id = ?",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let detail = format!(
                "Redrive stopped before the broker confirmed this replay (replay id {}); it may or may not \
                 have been delivered. A retry reuses that replay id.",
                replay_id.as_deref().unwrap_or("unknown")
            );
            let event = Event {
                action: "replay",
                actor: "redrive",
                target: None,
                ok: false,
                detail: Some(detail),
                replay_id: None,
            };
            insert_event(&mut tx, *id, &event).await?;
            sqlx::query(
                "UPDATE job_items SET state = 'failed', error = ? WHERE message_id = ? AND state = 'pending'",
            )
            .bind("outcome unknown: Redrive stopped before the broker confirmed the replay; check, then retry by hand")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}

/// Writes a replay's verdict on the message `owner` claimed.
pub(super) async fn apply_settlement(
    tx: &mut SqliteConnection,
    id: i64,
    owner: &str,
    settlement: Settlement,
) -> Result<(), StoreError> {
    apply_settlements(tx, &[id], owner, settlement).await
}

/// Writes one verdict on many messages `owner` claimed, in two statements.
pub(super) async fn apply_settlements(
    tx: &mut SqliteConnection,
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
        let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new("UPDATE messages SET status = ");
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
            let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "UPDATE messages SET status = 'replayed', replay_uncertain = 0, pending_replay_id = NULL
                 WHERE status = 'failed' AND id IN (",
            );
            let mut list = b.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            b.push(")");
            b.build().execute(&mut *tx).await?;
        }
    }
    Ok(())
}
