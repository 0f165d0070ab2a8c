//! Writing captured batches.
//!
//! Never merge, never lose: a redelivered copy may be dropped only when it is
//! provably the copy of a row this store already holds, i.e. Redrive
//! committed the row and its ack never left (a crash between commit and ack).
//!
//! The proof is the [`AckState`] of the row's batch (one row of
//! `ack_batches` per committed batch). A batch is committed `Unsent`,
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

use async_trait::async_trait;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::ops::RangeInclusive;
use std::time::Duration;

use super::api::*;
use super::{now_ms, SqliteStore, StoreError};
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

/// Rows a redelivered delivery may stand for: those of batches whose ack
/// is not settled (see `insert_batch`), in the order they answer for a
/// copy (`Unsent` before `InFlight`, oldest first). Only a few batches are
/// ever unsettled, each read as a range of the primary key (checked in
/// `store::plans`): `CROSS JOIN` keeps the batches the outer loop, and the
/// unary `+` keeps the planner off other indexes (the queue's would read
/// every row of the queue) and from building one of its own.
pub(super) const TWINS: &str = "SELECT m.id, b.state, m.content_hash FROM ack_batches b
     CROSS JOIN messages m ON m.id BETWEEN b.first_id AND b.last_id
     WHERE b.committed_at >= ?1 AND +m.vhost = ?2 AND +m.queue = ?3
       AND +m.absorbed_redelivery = 0 AND +m.received_at >= ?1
     ORDER BY b.state, m.id";

/// A delivery to insert, and the row it may be a copy of.
type Fresh<'a> = (&'a NewMessage, Option<i64>);

/// Stored rows that may answer for redelivered copies, by content hash,
/// each used at most once.
type Candidates = HashMap<Vec<u8>, VecDeque<(i64, i64)>>;

#[async_trait]
impl CaptureStore for SqliteStore {
    async fn insert_batch(&self, batch: &[NewMessage], window: Duration) -> Result<Committed, StoreError> {
        let mut tx = self.write_tx().await?;
        let oldest = now_ms() - window.as_millis() as i64;
        // Batches past the window can answer for no copy any more.
        sqlx::query("DELETE FROM ack_batches WHERE committed_at < ?")
            .bind(oldest)
            .execute(&mut *tx)
            .await?;
        let mut candidates: HashMap<(&str, &str), Candidates> = HashMap::new();
        let mut fresh: Vec<Fresh<'_>> = Vec::with_capacity(batch.len());
        for m in batch {
            if !m.redelivered {
                fresh.push((m, None));
                continue;
            }
            let queue = match candidates.entry((m.vhost.as_str(), m.queue.as_str())) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(first) => {
                    let found = twins(&mut tx, *first.key(), oldest).await?;
                    first.insert(found)
                }
            };
            let twin = queue.get_mut(&m.content_hash).and_then(VecDeque::pop_front);
            let Some((twin, state)) = twin else {
                fresh.push((m, None));
                continue;
            };
            sqlx::query("UPDATE messages SET absorbed_redelivery = 1 WHERE id = ?")
                .bind(twin)
                .execute(&mut *tx)
                .await?;
            if state != AckState::Unsent.code() {
                fresh.push((m, Some(twin)));
            }
        }
        let templates = template_ids(&mut tx, &fresh).await?;
        let mut ids: Option<RangeInclusive<i64>> = None;
        let mut last = last_id(&mut tx).await?;
        for chunk in fresh.chunks(ROWS_PER_INSERT) {
            let range = insert_rows(&mut tx, chunk, last, &templates).await?;
            last = *range.end();
            ids = Some(ids.map_or(range.clone(), |r| *r.start()..=*range.end()));
        }
        if let Some(ids) = &ids {
            sqlx::query(
                "INSERT INTO ack_batches (first_id, last_id, state, committed_at) VALUES (?, ?, ?, ?)",
            )
            .bind(ids.start())
            .bind(ids.end())
            .bind(AckState::Unsent.code())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Committed {
            stored: fresh.len(),
            ids,
            possible_copies: fresh.iter().filter(|(_, twin)| twin.is_some()).count(),
        })
    }

    async fn set_ack_state(&self, ids: &RangeInclusive<i64>, state: AckState) -> Result<(), StoreError> {
        let _turn = self.turn.lock().await;
        let query = match state {
            AckState::Settled => sqlx::query("DELETE FROM ack_batches WHERE first_id = ? AND last_id = ?"),
            _ => sqlx::query("UPDATE ack_batches SET state = ? WHERE first_id = ? AND last_id = ?")
                .bind(state.code()),
        };
        query
            .bind(ids.start())
            .bind(ids.end())
            .execute(&self.acks)
            .await?;
        Ok(())
    }

    async fn possible_copy_of(&self, id: i64) -> Result<Option<i64>, StoreError> {
        let row: Option<Option<i64>> =
            sqlx::query_scalar("SELECT possible_copy_of FROM messages WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.ok_or(StoreError::NotFound(id))
    }
}

/// The rows of `queue` in unsettled batches (see [`TWINS`]), by content hash.
async fn twins(
    tx: &mut sqlx::SqliteConnection,
    (vhost, queue): (&str, &str),
    oldest: i64,
) -> Result<Candidates, StoreError> {
    let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(TWINS)
        .bind(oldest)
        .bind(vhost)
        .bind(queue)
        .fetch_all(&mut *tx)
        .await?;
    let mut found = Candidates::new();
    for (id, state, hash) in rows {
        found.entry(hash).or_default().push_back((id, state));
    }
    Ok(found)
}

/// Template ids by hash.
type Templates<'a> = HashMap<&'a [u8], i64>;

/// The id of every distinct trace template of `rows`, stored first when new
/// (a batch of one failure group has one: one lookup per batch).
async fn template_ids<'a>(
    tx: &mut sqlx::SqliteConnection,
    rows: &[Fresh<'a>],
) -> Result<Templates<'a>, StoreError> {
    let mut ids = Templates::new();
    for template in rows.iter().filter_map(|(m, _)| m.trace_template.as_ref()) {
        let Entry::Vacant(slot) = ids.entry(template.hash.as_slice()) else {
            continue;
        };
        let known: Option<i64> = sqlx::query_scalar("SELECT id FROM stack_traces WHERE hash = ?")
            .bind(&template.hash)
            .fetch_optional(&mut *tx)
            .await?;
        let id = match known {
            Some(id) => id,
            None => sqlx::query("INSERT INTO stack_traces (hash, template) VALUES (?, ?)")
                .bind(&template.hash)
                .bind(&template.text)
                .execute(&mut *tx)
                .await?
                .last_insert_rowid(),
        };
        slot.insert(id);
    }
    Ok(ids)
}

/// The highest id `messages` ever handed out (`AUTOINCREMENT` keeps it in
/// `sqlite_sequence`): the next row gets the one after it.
async fn last_id(tx: &mut sqlx::SqliteConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0)")
            .fetch_one(&mut *tx)
            .await?,
    )
}

/// Rows per multi-row statement: one statement per table per chunk instead
/// of one per message (each is a round trip to the database thread), well
/// under SQLite's limit of bound parameters.
const ROWS_PER_INSERT: usize = 400;

/// Inserts `rows` into `messages` and `message_contents` (the search index
/// follows: `Store::index_pending`) and returns their ids. `AUTOINCREMENT`
/// hands one statement's rows the ids after `last` in their order, and this
/// transaction is the only writer; the statement's last id proves it (a
/// `RETURNING` of every id cost a row object per message).
async fn insert_rows(
    tx: &mut sqlx::SqliteConnection,
    rows: &[Fresh<'_>],
    last: i64,
    templates: &Templates<'_>,
) -> Result<RangeInclusive<i64>, StoreError> {
    let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO messages (vhost, queue, received_at, persistent,
            delivery_exchange, delivery_routing_key, original_exchange, original_routing_key,
            reason, death_count, service, message_id, replay_id, content_hash,
            exception_type, group_id, group_title, possible_copy_of) ",
    );
    b.push_values(rows, |mut row, (m, twin)| {
        row.push_bind(&m.vhost)
            .push_bind(&m.queue)
            .push_bind((m.received_at.unix_timestamp_nanos() / 1_000_000) as i64)
            .push_bind(m.persistent)
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
            .push_bind(*twin);
    });
    let done = b.build().execute(&mut *tx).await?;
    let first = last + 1;
    let ids = first..=done.last_insert_rowid();
    if done.rows_affected() != rows.len() as u64 || ids.end() - last != rows.len() as i64 {
        // Cannot happen with one writer; refuse rather than mismatch rows.
        return Err(StoreError::Database(sqlx::Error::Protocol(
            "inserted message ids are not consecutive".into(),
        )));
    }
    let numbered = || rows.iter().map(|(m, _)| *m).zip(first..);
    let mut b = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO message_contents (message_id, body, properties, headers, stack_trace, trace_id) ",
    );
    b.push_values(numbered(), |mut row, (m, id)| {
        let template = m
            .trace_template
            .as_ref()
            .and_then(|t| templates.get(t.hash.as_slice()).copied());
        row.push_bind(id)
            .push_bind(&m.body)
            .push_bind(&m.properties)
            .push_bind(&m.headers)
            .push_bind(template.is_none().then_some(&m.stack_trace))
            .push_bind(template);
    });
    b.build().execute(&mut *tx).await?;
    Ok(ids)
}
