//! SQL for `store::groups::GroupClaims`: owners and holds of failure
//! groups, compiled once per backend (see `store`).

use std::collections::HashMap;

use super::{Conn, Db, Engine};
use crate::store::backend::SqlBackend;
use crate::store::rows::rfc3339;
use crate::store::*;
use crate::store::{now_ms, StoreError};
use app::model::{GroupClaim, Hold};
use async_trait::async_trait;

/// A claim row: group, owner, then the hold's columns.
type ClaimRow = (
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    bool,
);

const CLAIM_COLUMNS: &str =
    "group_id, owner, hold_until, hold_note, held_by, held_at, held_after_id, hold_until_replayed";

/// What ends a hold: every column of it cleared.
const END_HOLD: &str = "UPDATE group_claims SET hold_until = NULL, hold_note = NULL,
    held_by = NULL, held_at = NULL, held_after_id = NULL, hold_until_replayed = FALSE";

impl Engine {
    /// The hold of a claim row while it lasts at `now`, with what arrived since.
    async fn hold_of(&self, row: &ClaimRow, now: i64) -> Result<Option<Hold>, StoreError> {
        let (group, _, until, note, by, at, after, until_replayed) = row;
        let Some(mut hold) = hold_at(now, (*until, note.clone(), by.clone(), *at, *until_replayed)) else {
            return Ok(None);
        };
        let arrived_since: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE group_id = $1 AND id > $2")
                .bind(group)
                .bind(after.unwrap_or(0))
                .fetch_one(self.pool())
                .await?;
        hold.arrived_since = Some(arrived_since);
        Ok(Some(hold))
    }
}

/// Sets (`$2`, by `$3` at `$4`) or clears the owner of the claim `$1` of
/// `table`, keyed by `key`: a group's or a message's.
pub(super) fn set_owner(table: &str, key: &str) -> String {
    format!(
        "INSERT INTO {table} ({key}, owner, owner_by, owner_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT ({key}) DO UPDATE SET owner = excluded.owner, owner_by = excluded.owner_by,
            owner_at = excluded.owner_at"
    )
}

/// A hold's columns as stored: until, note, by, at, until replayed.
pub(super) type HoldColumns = (Option<i64>, Option<String>, Option<String>, Option<i64>, bool);

/// The hold those columns describe while it lasts at `now` (a group's or a
/// message's; what arrived since is the group's to add).
pub(super) fn hold_at(now: i64, (until, note, by, at, until_replayed): HoldColumns) -> Option<Hold> {
    let (Some(until), Some(by), Some(at)) = (until, by, at) else {
        return None;
    };
    (until > now).then(|| Hold {
        until: rfc3339(until),
        until_replayed,
        note,
        by,
        at: rfc3339(at),
        arrived_since: None,
    })
}

#[async_trait]
impl GroupClaims for Engine {
    async fn set_group_owner(
        &self,
        group_id: &str,
        owner: Option<&str>,
        by: &str,
    ) -> Result<GroupClaim, StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(&set_owner("group_claims", "group_id"))
            .bind(group_id)
            .bind(owner)
            .bind(by)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.group_claim(group_id, now_ms()).await
    }

    async fn hold_group(&self, group_id: &str, hold: NewHold<'_>) -> Result<GroupClaim, StoreError> {
        let mut tx = self.write_tx().await?;
        let after: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM messages WHERE group_id = $1")
            .bind(group_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO group_claims (group_id, hold_until, hold_note, held_by, held_at, held_after_id,
                 hold_until_replayed)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (group_id) DO UPDATE SET hold_until = excluded.hold_until,
                hold_note = excluded.hold_note, held_by = excluded.held_by, held_at = excluded.held_at,
                held_after_id = excluded.held_after_id, hold_until_replayed = excluded.hold_until_replayed",
        )
        .bind(group_id)
        .bind(hold.until)
        .bind(hold.note)
        .bind(hold.by)
        .bind(now_ms())
        .bind(after)
        .bind(hold.until_replayed)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.group_claim(group_id, now_ms()).await
    }

    async fn release_group(&self, group_id: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let ended = sqlx::query(&format!("{END_HOLD} WHERE group_id = $1 AND hold_until > $2"))
            .bind(group_id)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(ended.rows_affected() == 1)
    }

    async fn group_claims(
        &self,
        now: i64,
    ) -> Result<HashMap<String, (Option<String>, Option<Hold>)>, StoreError> {
        let rows: Vec<ClaimRow> = sqlx::query_as(&format!(
            "SELECT {CLAIM_COLUMNS} FROM group_claims WHERE owner IS NOT NULL OR hold_until > $1"
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let hold = self.hold_of(&row, now).await?;
            out.insert(row.0.clone(), (row.1.clone(), hold));
        }
        Ok(out)
    }

    async fn held_groups(&self, now: i64, visible: Option<&[String]>) -> Result<i64, StoreError> {
        let mut b = sqlx::QueryBuilder::<Db>::new(
            "SELECT COUNT(*) FROM group_claims c WHERE c.hold_until > ",
        );
        b.push_bind(now).push(
            " AND EXISTS (SELECT 1 FROM message_counts m WHERE m.group_id = c.group_id AND m.messages > 0",
        );
        if let Some(vhosts) = visible {
            super::select::push_vhosts(&mut b, vhosts);
        }
        b.push(")");
        Ok(b.build_query_scalar().fetch_one(self.pool()).await?)
    }

    async fn group_claim(&self, group_id: &str, now: i64) -> Result<GroupClaim, StoreError> {
        let row: Option<ClaimRow> =
            sqlx::query_as(&format!("SELECT {CLAIM_COLUMNS} FROM group_claims WHERE group_id = $1"))
                .bind(group_id)
                .fetch_optional(self.pool())
                .await?;
        let Some(row) = row else {
            return Ok(GroupClaim {
                group_id: group_id.to_owned(),
                ..GroupClaim::default()
            });
        };
        Ok(GroupClaim {
            group_id: group_id.to_owned(),
            owner: row.1.clone(),
            hold: self.hold_of(&row, now).await?,
        })
    }
}

/// Ends the holds "until a fix is replayed" that a replay of `ids` has
/// just delivered (confirmed, in the transaction that says so): of their
/// groups, and of the messages themselves; single replays and jobs alike,
/// on whichever instance. Without such a hold (the usual case) it costs
/// one look at the few claims.
pub(super) async fn end_holds_on_replay(tx: &mut Conn, ids: &[i64], now: i64) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let (groups, messages): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM group_claims WHERE hold_until_replayed AND hold_until > $1),
                EXISTS (SELECT 1 FROM message_claims WHERE hold_until_replayed AND hold_until > $1)",
    )
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let mut ended = 0;
    let held = [
        (groups, END_HOLD, "group_id IN (SELECT group_id"),
        (messages, super::message_claims::END_HOLD, "message_id IN (SELECT id"),
    ];
    for (_, end, which) in held.into_iter().filter(|(waiting, ..)| *waiting) {
        let mut b = sqlx::QueryBuilder::<Db>::new(end);
        b.push(" WHERE hold_until_replayed AND hold_until > ")
            .push_bind(now)
            .push(format_args!(" AND {which} FROM messages WHERE status = 'replayed' AND id IN ("));
        let mut list = b.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        b.push("))");
        ended += b.build().execute(&mut *tx).await?.rows_affected();
    }
    Ok(ended)
}

/// ` AND` the row (of `messages`) is not on hold at `now`: neither its
/// group (rows without a group have none) nor the message itself. What
/// the overview's inflow and the alerts read.
pub(super) fn push_not_held(b: &mut sqlx::QueryBuilder<'_, Db>, now: i64) {
    push_group_not_held(b, "group_id", now);
    b.push(" AND id NOT IN (SELECT message_id FROM message_claims WHERE hold_until > ")
        .push_bind(now)
        .push(")");
}

/// ` AND` the group in `column` is not on hold at `now`.
pub(super) fn push_group_not_held(b: &mut sqlx::QueryBuilder<'_, Db>, column: &str, now: i64) {
    b.push(format_args!(
        " AND ({column} IS NULL OR {column} NOT IN (SELECT group_id FROM group_claims WHERE hold_until > "
    ))
    .push_bind(now)
    .push("))");
}
