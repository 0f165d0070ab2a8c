//! SQL for `store::messages::MessageClaims`: the owner and the hold of one
//! message, compiled once per backend (see `store`). The hold's meaning is
//! a group's (`store/groups/claims.rs`); only what it covers differs.

use super::group_claims::{hold_at, set_owner, HoldColumns};
use super::{Db, Engine};
use crate::store::backend::SqlBackend;
use crate::store::*;
use crate::store::{now_ms, StoreError};
use app::model::MessageClaim;
use async_trait::async_trait;

/// What ends a message's hold: every column of it cleared.
pub(super) const END_HOLD: &str = "UPDATE message_claims SET hold_until = NULL, hold_note = NULL,
    held_by = NULL, held_at = NULL, hold_until_replayed = FALSE";

#[async_trait]
impl MessageClaims for Engine {
    async fn set_message_owner(
        &self,
        id: i64,
        owner: Option<&str>,
        by: &str,
    ) -> Result<MessageClaim, StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(&set_owner("message_claims", "message_id"))
            .bind(id)
            .bind(owner)
            .bind(by)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.message_claim(id, now_ms()).await
    }

    async fn hold_message(&self, id: i64, hold: NewHold<'_>) -> Result<MessageClaim, StoreError> {
        let mut tx = self.write_tx().await?;
        // Only a failed message waits for someone; one statement, so a
        // replay or discard on another instance cannot slip in between.
        let held = sqlx::query(
            "INSERT INTO message_claims (message_id, hold_until, hold_note, held_by, held_at, hold_until_replayed)
             SELECT id, $2, $3, $4, $5, $6 FROM messages WHERE id = $1 AND status = 'failed'
             ON CONFLICT (message_id) DO UPDATE SET hold_until = excluded.hold_until,
                hold_note = excluded.hold_note, held_by = excluded.held_by, held_at = excluded.held_at,
                hold_until_replayed = excluded.hold_until_replayed",
        )
        .bind(id)
        .bind(hold.until)
        .bind(hold.note)
        .bind(hold.by)
        .bind(now_ms())
        .bind(hold.until_replayed)
        .execute(&mut *tx)
        .await?;
        if held.rows_affected() == 0 {
            return Err(super::messages::not_in_state(&mut tx, id, "failed").await);
        }
        tx.commit().await?;
        self.message_claim(id, now_ms()).await
    }

    async fn release_message(&self, id: i64) -> Result<bool, StoreError> {
        let ended = sqlx::query(&format!("{END_HOLD} WHERE message_id = $1 AND hold_until > $2"))
            .bind(id)
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        Ok(ended.rows_affected() == 1)
    }

    async fn message_claim(&self, id: i64, now: i64) -> Result<MessageClaim, StoreError> {
        type Row = (Option<String>, Option<i64>, Option<String>, Option<String>, Option<i64>, bool);
        let row: Option<Row> = sqlx::query_as(
            "SELECT owner, hold_until, hold_note, held_by, held_at, hold_until_replayed
             FROM message_claims WHERE message_id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some((owner, until, note, by, at, until_replayed)) = row else {
            return Ok(MessageClaim {
                message_id: id,
                ..MessageClaim::default()
            });
        };
        let hold: HoldColumns = (until, note, by, at, until_replayed);
        Ok(MessageClaim {
            message_id: id,
            owner,
            hold: hold_at(now, hold),
        })
    }

    async fn held_messages(&self, now: i64, visible: Option<&[String]>) -> Result<i64, StoreError> {
        let mut b = sqlx::QueryBuilder::<Db>::new("SELECT ");
        push_held_count(&mut b, now, visible);
        Ok(b.build_query_scalar().fetch_one(self.pool()).await?)
    }
}

/// `(SELECT COUNT(*) …)` of the failed messages on hold at `now` by
/// themselves, in `visible` vhosts: a subquery, so the overview subtracts
/// it in the statement that sums the rest.
pub(super) fn push_held_count(b: &mut sqlx::QueryBuilder<'_, Db>, now: i64, visible: Option<&[String]>) {
    b.push(
        "(SELECT COUNT(*) FROM message_claims c JOIN messages ON messages.id = c.message_id
          WHERE messages.status = 'failed' AND c.hold_until > ",
    )
    .push_bind(now);
    // Those of a held group are left out with their group already.
    super::group_claims::push_group_not_held(b, "messages.group_id", now);
    if let Some(vhosts) = visible {
        super::select::push_vhosts(b, vhosts);
    }
    b.push(")");
}
