//! A message's history: its events, and the chain of replays it belongs to.

use app::model::MessageDetail;

use super::{Conn, Engine};
use crate::store::{now_ms, Event, StoreError};

/// Later records of a message's replays (copies that failed again); reads
/// the partial index `messages_replay_id` (checked in SQLite's `plans`).
pub(super) const CAME_BACK_AS: &str =
    "SELECT m.id FROM message_events e JOIN messages m ON m.replay_id = e.replay_id
     WHERE e.message_id = $1 ORDER BY m.id";

/// The record a replayed copy came from (walking back the whole chain),
/// and the later records of this message's own replays that failed again.
pub(super) async fn link_replays(
    store: &Engine,
    detail: &mut MessageDetail,
    replay_id: Option<String>,
) -> Result<(), StoreError> {
    const MAX_CHAIN: usize = 100;
    let origin = "SELECT e.message_id, m.replay_id FROM message_events e
                  JOIN messages m ON m.id = e.message_id WHERE e.replay_id = $1";
    let mut next = replay_id;
    let mut depth = 0;
    while let Some(rid) = next.take() {
        let Some((from, earlier)) = sqlx::query_as::<_, (i64, Option<String>)>(origin)
            .bind(&rid)
            .fetch_optional(&store.pool)
            .await?
        else {
            break;
        };
        if depth == 0 {
            detail.replayed_from = Some(from);
        }
        depth += 1;
        if depth < MAX_CHAIN {
            next = earlier;
        }
    }
    detail.failed_again_after_replay = depth as i64;
    detail.came_back_as = sqlx::query_scalar(CAME_BACK_AS)
        .bind(detail.summary.id)
        .fetch_all(&store.pool)
        .await?;
    Ok(())
}

/// Appends one entry to a message's history, in the caller's transaction.
pub(super) async fn insert_event(tx: &mut Conn, id: i64, e: &Event<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO message_events (message_id, at, action, actor, target, result, detail, replay_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(now_ms())
    .bind(e.action.as_str())
    .bind(e.actor)
    .bind(&e.target)
    .bind(if e.ok { "ok" } else { "error" })
    .bind(&e.detail)
    .bind(&e.replay_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
