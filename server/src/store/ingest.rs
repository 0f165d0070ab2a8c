//! Writing captured batches.
//!
//! Never merge, never lose: a redelivered copy may be dropped only when it is
//! provably the copy of a row this store already holds, i.e. Redrive
//! committed the row and the ack was lost (a crash between commit and ack).
//!
//! The proof is the row's ack state. A batch is committed *unsettled*, then
//! *settled* the moment before its ack goes out (through a connection that
//! commits without fsync: the marker survives a crash of Redrive, and costs
//! no disk flush), and unsettled again when the ack or the round trip that
//! confirms the broker processed it fails. A row still unsettled after a
//! crash or a lost connection is one whose delivery the broker redelivers; a
//! settled row's delivery was acked, so a redelivered twin of it is another
//! failure (say, one another consumer took and gave back).
//!
//! What is left is the instant between the marker and the ack leaving the
//! process (a crash there stores the batch's copies again: duplicates, never
//! losses), and a connection that dies after the broker processed an ack but
//! before it answered (only a redelivered message identical to one of that
//! batch could then be taken for its copy).

use std::ops::RangeInclusive;
use std::time::Duration;

use super::{now_ms, Store, StoreError};
use crate::ingest::decode::NewMessage;

/// What a committed batch wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Rows inserted (deliveries not absorbed as redelivered copies).
    pub stored: usize,
    /// Their ids (one transaction writes a contiguous range), to settle.
    pub ids: Option<RangeInclusive<i64>>,
}

impl Store {
    /// Stores a batch in one transaction, unsettled, and says what it wrote.
    ///
    /// A redelivered delivery (`redelivered` set by the broker) is absorbed by
    /// an identical row of the same queue only when that row
    /// - is unsettled: committed, and its own ack never went out;
    /// - was committed by an earlier transaction (rows of this batch never match:
    ///   three identical messages in one batch are three failures),
    /// - has not absorbed another copy already (each row stands for exactly one
    ///   delivery, so N identical messages redelivered N times stay N rows),
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
        let mut fresh: Vec<&NewMessage> = Vec::with_capacity(batch.len());
        for m in batch {
            if m.redelivered {
                let twin: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM messages
                     WHERE ack_unsettled = 1 AND content_hash = ? AND vhost = ? AND queue = ? AND id <= ?
                       AND absorbed_redelivery = 0 AND received_at >= ?
                     ORDER BY id LIMIT 1",
                )
                .bind(&m.content_hash)
                .bind(&m.vhost)
                .bind(&m.queue)
                .bind(committed_before)
                .bind(oldest)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(twin) = twin {
                    sqlx::query("UPDATE messages SET absorbed_redelivery = 1 WHERE id = ?")
                        .bind(twin)
                        .execute(&mut *tx)
                        .await?;
                    continue;
                }
            }
            fresh.push(m);
        }
        let mut ids: Option<RangeInclusive<i64>> = None;
        for chunk in fresh.chunks(ROWS_PER_INSERT) {
            let first = insert_rows(&mut tx, chunk).await?;
            let last = first + chunk.len() as i64 - 1;
            ids = Some(ids.map_or(first..=last, |r| *r.start()..=last));
        }
        let inserted = fresh.len();
        tx.commit().await?;
        Ok(Committed {
            stored: inserted,
            ids,
        })
    }

    /// Marks rows as acked (`settled`) or not. Written through the no-fsync
    /// connection, so marking costs no disk flush and lands at once.
    pub async fn set_ack_unsettled(
        &self,
        ids: &RangeInclusive<i64>,
        unsettled: bool,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE messages SET ack_unsettled = ? WHERE id BETWEEN ? AND ?")
            .bind(unsettled)
            .bind(ids.start())
            .bind(ids.end())
            .execute(&self.acks)
            .await?;
        Ok(())
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
async fn insert_rows(tx: &mut sqlx::SqliteConnection, rows: &[&NewMessage]) -> Result<i64, StoreError> {
    let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO messages (vhost, queue, received_at, persistent,
            delivery_exchange, delivery_routing_key, original_exchange, original_routing_key,
            reason, death_count, service, message_id, replay_id, content_hash,
            exception_type, group_id, group_title, ack_unsettled) ",
    );
    b.push_values(rows, |mut row, m| {
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
            .push_bind(1);
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
    let numbered = || rows.iter().zip(first..);
    let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO message_contents (message_id, body, properties, headers, stack_trace) ",
    );
    b.push_values(numbered(), |mut row, (m, id)| {
        row.push_bind(id)
            .push_bind(&m.body)
            .push_bind(m.properties.to_string())
            .push_bind(m.headers.to_string())
            .push_bind(&m.stack_trace);
    });
    b.build().execute(&mut *tx).await?;
    Ok(first)
}
