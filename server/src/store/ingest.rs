//! Writing captured batches.
//!
//! Never merge, never lose: a redelivered copy may be dropped only when it is
//! provably the copy of a row this store already holds, i.e. Redrive
//! committed the row and its ack never left (a crash between commit and ack).
//!
//! The proof is the row's [`AckState`]. A batch is committed `Unsent`,
//! marked `InFlight` the moment before its ack goes out, and `Settled` once a
//! round trip on the channel shows the broker processed the ack (markers go
//! through a connection that commits without fsync: they survive a crash of
//! Redrive and cost no disk flush). An ack that could not be sent at all puts
//! the batch back to `Unsent`.
//!
//! A redelivered twin of an `Unsent` row is its copy: absorbed. A twin of a
//! `Settled` row is another failure (say, one another consumer took and gave
//! back): a row of its own. A twin of an `InFlight` row is undecidable (the
//! process died, or the connection dropped, between sending the ack and
//! learning its fate); it is stored, and flagged as a possible copy of that
//! row, so an operator sees the doubt instead of a silent duplicate or a
//! silent merge.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::{now_ms, Store, StoreError};
use crate::ingest::decode::NewMessage;

/// How far a stored row's delivery got in being acked; decides what a
/// redelivered twin of it is (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckState {
    /// The broker processed the ack, or the row came from no delivery.
    Settled,
    /// Committed; the ack was never sent.
    Unsent,
    /// The ack was sent; whether the broker processed it is not known yet.
    InFlight,
}

impl AckState {
    fn code(self) -> i64 {
        match self {
            Self::Settled => 0,
            Self::Unsent => 1,
            Self::InFlight => 2,
        }
    }
}

/// What a committed batch wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Rows inserted (deliveries not absorbed as redelivered copies).
    pub stored: usize,
    /// Their ids (one transaction writes a contiguous range), to settle.
    pub ids: Option<RangeInclusive<i64>>,
    /// Rows stored with a doubt: redelivered twins of a row whose ack was in
    /// flight.
    pub possible_copies: usize,
}

/// The row a redelivered delivery may stand for (see `insert_batch`). Its
/// plan reads the partial index `messages_ack_pending` (checked in
/// `store::plans`): the few rows whose ack is not settled.
pub(super) const TWIN: &str = "SELECT id, ack_state FROM messages
     WHERE ack_state > 0 AND content_hash = ? AND vhost = ? AND queue = ? AND id <= ?
       AND absorbed_redelivery = 0 AND received_at >= ?
     ORDER BY ack_state, id LIMIT 1";

/// A delivery to insert, and the row it may be a copy of.
type Fresh<'a> = (&'a NewMessage, Option<i64>);

impl Store {
    /// Stores a batch in one transaction, `Unsent`, and says what it wrote.
    ///
    /// A redelivered delivery (`redelivered` set by the broker) is matched
    /// with an identical row of the same queue, preferring an `Unsent` one,
    /// that
    /// - is `Unsent` (absorbs the delivery) or `InFlight` (the delivery is
    ///   stored, flagged as its possible copy);
    /// - was committed by an earlier transaction (rows of this batch never match:
    ///   three identical messages in one batch are three failures),
    /// - has not answered for another copy already (each row stands for exactly
    ///   one delivery, so N identical messages redelivered N times stay N rows),
    /// - was received within `window` (the broker redelivers an unacked message
    ///   within its consumer timeout of the crash; an older twin is a new failure).
    ///
    /// When Redrive stays down longer than `window`, a lost ack shows up as a
    /// duplicate row: a duplicate an operator can discard beats a lost failure.
    pub async fn insert_batch(
        &self,
        batch: &[NewMessage],
        window: Duration,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write_tx().await?;
        // Rows above this id were written by this very transaction.
        let committed_before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM messages")
            .fetch_one(&mut *tx)
            .await?;
        let oldest = now_ms() - window.as_millis() as i64;
        let mut fresh: Vec<Fresh<'_>> = Vec::with_capacity(batch.len());
        for m in batch {
            if m.redelivered {
                let twin: Option<(i64, i64)> = sqlx::query_as(TWIN)
                    .bind(&m.content_hash)
                    .bind(&m.vhost)
                    .bind(&m.queue)
                    .bind(committed_before)
                    .bind(oldest)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some((twin, state)) = twin {
                    sqlx::query("UPDATE messages SET absorbed_redelivery = 1 WHERE id = ?")
                        .bind(twin)
                        .execute(&mut *tx)
                        .await?;
                    if state == AckState::Unsent.code() {
                        continue;
                    }
                    fresh.push((m, Some(twin)));
                    continue;
                }
            }
            fresh.push((m, None));
        }
        let mut ids: Option<RangeInclusive<i64>> = None;
        for chunk in fresh.chunks(ROWS_PER_INSERT) {
            let first = insert_rows(&mut tx, chunk).await?;
            let last = first + chunk.len() as i64 - 1;
            ids = Some(ids.map_or(first..=last, |r| *r.start()..=last));
        }
        tx.commit().await?;
        Ok(Committed {
            stored: fresh.len(),
            ids,
            possible_copies: fresh.iter().filter(|(_, twin)| twin.is_some()).count(),
        })
    }

    /// Records how far the ack of rows `ids` got. Written through the
    /// no-fsync connection, so marking costs no disk flush and lands at once.
    /// It takes the process's write turn like every writer: without it, a
    /// marker meeting the indexer's open transaction would sleep in SQLite's
    /// busy handler (1, 2, 5, 10… ms) while capture waits on it.
    pub async fn set_ack_state(&self, ids: &RangeInclusive<i64>, state: AckState) -> Result<(), StoreError> {
        let _turn = self.turn.lock().await;
        sqlx::query("UPDATE messages SET ack_state = ? WHERE id BETWEEN ? AND ?")
            .bind(state.code())
            .bind(ids.start())
            .bind(ids.end())
            .execute(&self.acks)
            .await?;
        Ok(())
    }

    /// The row a message may be a redelivered copy of (see [`AckState::InFlight`]).
    pub async fn possible_copy_of(&self, id: i64) -> Result<Option<i64>, StoreError> {
        let row: Option<Option<i64>> =
            sqlx::query_scalar("SELECT possible_copy_of FROM messages WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.ok_or(StoreError::NotFound(id))
    }
}

/// Rows per multi-row statement: one statement per table per chunk instead
/// of one per message (each is a round trip to the database thread), well
/// under SQLite's limit of bound parameters.
const ROWS_PER_INSERT: usize = 400;

/// Inserts `rows` into `messages` and `message_contents` (the search index
/// follows: `Store::index_pending`);
/// returns the first id. One statement assigns ids in the order of its
/// rows, consecutively: this transaction is the only writer.
async fn insert_rows(tx: &mut sqlx::SqliteConnection, rows: &[Fresh<'_>]) -> Result<i64, StoreError> {
    let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO messages (vhost, queue, received_at, persistent,
            delivery_exchange, delivery_routing_key, original_exchange, original_routing_key,
            reason, death_count, service, message_id, replay_id, content_hash,
            exception_type, group_id, group_title, ack_state, possible_copy_of) ",
    );
    b.push_values(rows, |mut row, (m, twin)| {
        row.push_bind(&m.vhost)
            .push_bind(&m.queue)
            .push_bind((m.received_at.unix_timestamp_nanos() / 1_000_000) as i64)
            .push_bind(m.properties["delivery_mode"].as_i64() == Some(2))
            .push_bind(&m.delivery_exchange)
            .push_bind(&m.delivery_routing_key)
            .push_bind(&m.original_exchange)
            .push_bind(&m.original_routing_key)
            .push_bind(&m.reason)
            .push_bind(m.death_count)
            .push_bind(&m.service)
            .push_bind(&m.message_id)
            .push_bind(&m.replay_id)
            .push_bind(&m.content_hash)
            .push_bind(&m.exception_type)
            .push_bind(&m.group_id)
            .push_bind(&m.group_title)
            .push_bind(AckState::Unsent.code())
            .push_bind(*twin);
    });
    b.push(" RETURNING id");
    let mut ids: Vec<i64> = b.build_query_scalar().fetch_all(&mut *tx).await?;
    ids.sort_unstable();
    let first = ids.first().copied().unwrap_or_default();
    let consecutive = ids.len() == rows.len() && ids.windows(2).all(|w| w[1] == w[0] + 1);
    if !consecutive {
        // Cannot happen with one writer; refuse rather than mismatch rows.
        return Err(StoreError::Database(sqlx::Error::Protocol(
            "inserted message ids are not consecutive".into(),
        )));
    }
    let numbered = || rows.iter().map(|(m, _)| *m).zip(first..);
    let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO message_contents (message_id, body, properties, headers, stack_trace) ",
    );
    b.push_values(numbered(), |mut row, (m, id)| {
        row.push_bind(id)
            .push_bind(&m.body)
            .push_bind(m.properties.to_string())
            .push_bind(super::contents::elide_trace(&m.headers, m.stack_trace.as_deref()))
            .push_bind(&m.stack_trace);
    });
    b.build().execute(&mut *tx).await?;
    Ok(first)
}
