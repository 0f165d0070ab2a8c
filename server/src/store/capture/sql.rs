//! Writing captured batches (see `store::capture` for what makes a
//! redelivered delivery a copy), compiled once per backend.

use crate::store::backend::SqlBackend;
use async_trait::async_trait;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::{Conn, Db, Engine};
use crate::domain::{NewMessage, Origin};
use app::model::TapOriginal;
use crate::store::*;
use crate::store::{id_runs, now_ms, AckState, CaptureBatch, Committed, StoreError};

/// A delivery to insert, and the row it may be a copy of.
type Fresh<'a> = (&'a NewMessage, Option<i64>);

/// Stored rows that may answer for redelivered copies, by content hash,
/// each used at most once.
type Candidates = HashMap<Vec<u8>, VecDeque<(i64, i64)>>;

#[async_trait]
impl CaptureStore for Engine {
    async fn insert_batch(&self, batch: &[NewMessage], window: Duration) -> Result<Committed, StoreError> {
        let mut tx = self.write_tx().await?;
        let oldest = now_ms() - window.as_millis() as i64;
        // Batches past the window can answer for no copy any more.
        sqlx::query("DELETE FROM ack_batches WHERE committed_at < $1")
            .bind(oldest)
            .execute(&mut *tx)
            .await?;
        let mut candidates: HashMap<(&str, &str), Candidates> = HashMap::new();
        let mut fresh: Vec<Fresh<'_>> = Vec::with_capacity(batch.len());
        let mut adopted = 0;
        let mut adoptions = adopt_all(&mut tx, batch).await?;
        for (i, m) in batch.iter().enumerate() {
            if let Some(adoption) = adoptions.remove(&i) {
                match adoption {
                    Adoption::Answered => adopted += 1,
                    Adoption::Store(twin) => fresh.push((m, twin)),
                }
                continue;
            }
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
            let twin = match queue.get_mut(&m.content_hash) {
                Some(twins) => claim_twin(&mut tx, twins).await?,
                None => None,
            };
            let Some((twin, state)) = twin else {
                fresh.push((m, None));
                continue;
            };
            if state != AckState::Unsent.code() {
                fresh.push((m, Some(twin)));
            }
        }
        let templates = template_ids(&mut tx, &fresh).await?;
        let ids = Engine::allocate_message_ids(&mut tx, fresh.len()).await?;
        for (chunk, ids) in fresh.chunks(ROWS_PER_INSERT).zip(ids.chunks(ROWS_PER_INSERT)) {
            insert_rows(&mut tx, chunk, ids, &templates).await?;
        }
        let batch = ids.first().map(|first| CaptureBatch(*first));
        if let Some(batch) = batch {
            let committed_at = now_ms();
            let mut b = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO ack_batches (first_id, last_id, batch, state, committed_at) ",
            );
            b.push_values(id_runs::runs(&ids), |mut row, (first, last)| {
                row.push_bind(first)
                    .push_bind(last)
                    .push_bind(batch.0)
                    .push_bind(AckState::Unsent.code())
                    .push_bind(committed_at);
            });
            b.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Committed {
            stored: fresh.len(),
            adopted,
            batch,
            ids,
            possible_copies: fresh.iter().filter(|(_, twin)| twin.is_some()).count(),
        })
    }

    async fn set_ack_state(&self, batch: CaptureBatch, state: AckState) -> Result<(), StoreError> {
        let query = match state {
            AckState::Settled => sqlx::query("DELETE FROM ack_batches WHERE batch = $1"),
            _ => sqlx::query("UPDATE ack_batches SET state = $2 WHERE batch = $1"),
        };
        self.mark(query.bind(batch.0).bind(state.code())).await?;
        Ok(())
    }

    async fn tap_originals_waiting(&self, vhost: &str, queue: &str) -> Result<bool, StoreError> {
        let any: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE vhost = $1 AND queue = $2 AND tap = 'in_queue' LIMIT 1",
        )
        .bind(vhost)
        .bind(queue)
        .fetch_optional(self.pool())
        .await?;
        Ok(any.is_some())
    }

    async fn leave_tap_originals(&self, vhost: &str, queue: &str) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let left = sqlx::query("UPDATE messages SET tap = 'left' WHERE vhost = $1 AND queue = $2 AND tap = 'in_queue'")
            .bind(vhost)
            .bind(queue)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // The switch back ends with its window, in the same commit: no
        // other instance consumes the queue while originals are paired.
        sqlx::query("DELETE FROM capture_switches WHERE vhost = $1 AND name = $2 AND direction = 'to_consume'")
            .bind(vhost)
            .bind(queue)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(left)
    }

    async fn possible_copy_of(&self, id: i64) -> Result<Option<i64>, StoreError> {
        let row: Option<Option<i64>> =
            sqlx::query_scalar("SELECT possible_copy_of FROM messages WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        row.ok_or(StoreError::NotFound(id))
    }
}

/// The rows of `queue` in unsettled batches (see the backend's `TWINS`), by content hash.
async fn twins(tx: &mut Conn, (vhost, queue): (&str, &str), oldest: i64) -> Result<Candidates, StoreError> {
    let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(Engine::TWINS)
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

/// What became of an original taken from a queue that was tapped.
enum Adoption {
    /// A stored copy answers for it: nothing to store.
    Answered,
    /// Store it, flagged as a possible copy of that row when set.
    Store(Option<i64>),
}

/// Binds per statement when pairing (well under both databases' limits).
const PAIR_BINDS: usize = 500;

/// Pairs the originals in `batch` (by index) taken from a formerly tapped
/// queue with stored copies of them: each takes the oldest row of its queue
/// with the same content whose original was still in the queue (the queue
/// hands its originals out oldest first). Identical messages are
/// interchangeable, so N originals meet N copies. One read and one
/// conditional update per batch (PostgreSQL's count trigger runs once per
/// statement); a copy another writer took first is not taken again, and
/// its original is stored.
///
/// A redelivered original with no copy left may be the twin of one paired
/// just before a crash (commit done, ack lost): it is stored, flagged as a
/// possible copy of that row, never dropped on a guess.
async fn adopt_all(tx: &mut Conn, batch: &[NewMessage]) -> Result<HashMap<usize, Adoption>, StoreError> {
    let mut by_queue: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, m) in batch.iter().enumerate().filter(|(_, m)| m.origin == Origin::Adopted) {
        by_queue.entry((m.vhost.as_str(), m.queue.as_str())).or_default().push(i);
    }
    let mut out = HashMap::new();
    for ((vhost, queue), originals) in by_queue {
        let hashes: std::collections::BTreeSet<&[u8]> =
            originals.iter().map(|i| batch[*i].content_hash.as_slice()).collect();
        let hashes: Vec<&[u8]> = hashes.into_iter().collect();
        let mut copies: HashMap<Vec<u8>, VecDeque<i64>> = HashMap::new();
        for chunk in hashes.chunks(PAIR_BINDS) {
            let mut b = sqlx::QueryBuilder::<Db>::new("SELECT id, content_hash FROM messages WHERE vhost = ");
            b.push_bind(Engine::text(vhost).into_owned())
                .push(" AND queue = ")
                .push_bind(Engine::text(queue).into_owned())
                .push(" AND tap = 'in_queue' AND content_hash IN (");
            let mut list = b.separated(", ");
            for h in chunk {
                list.push_bind(h.to_vec());
            }
            b.push(") ORDER BY id");
            let rows: Vec<(i64, Vec<u8>)> = b.build_query_as().fetch_all(&mut *tx).await?;
            for (id, hash) in rows {
                copies.entry(hash).or_default().push_back(id);
            }
        }
        let picks: Vec<(usize, Option<i64>)> = originals
            .iter()
            .map(|i| (*i, copies.get_mut(&batch[*i].content_hash).and_then(VecDeque::pop_front)))
            .collect();
        let wanted: Vec<i64> = picks.iter().filter_map(|(_, id)| *id).collect();
        let mut taken = std::collections::HashSet::new();
        for chunk in wanted.chunks(PAIR_BINDS) {
            let mut b =
                sqlx::QueryBuilder::<Db>::new("UPDATE messages SET tap = 'taken' WHERE tap = 'in_queue' AND id IN (");
            let mut list = b.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            b.push(") RETURNING id");
            taken.extend(b.build_query_scalar::<i64>().fetch_all(&mut *tx).await?);
        }
        for (i, pick) in picks {
            let adoption = match pick {
                Some(id) if taken.contains(&id) => Adoption::Answered,
                _ => Adoption::Store(unpaired_twin(tx, &batch[i]).await?),
            };
            out.insert(i, adoption);
        }
    }
    Ok(out)
}

/// The copy an unpaired, redelivered original may be the twin of.
async fn unpaired_twin(tx: &mut Conn, m: &NewMessage) -> Result<Option<i64>, StoreError> {
    if !m.redelivered {
        return Ok(None);
    }
    Ok(sqlx::query_scalar(
        "SELECT id FROM messages WHERE vhost = $1 AND queue = $2 AND tap = 'taken'
           AND content_hash = $3 ORDER BY id DESC LIMIT 1",
    )
    .bind(Engine::text(&m.vhost))
    .bind(Engine::text(&m.queue))
    .bind(&m.content_hash)
    .fetch_optional(&mut *tx)
    .await?)
}

/// Takes the first of `twins` no other delivery answered for yet: marks it
/// absorbed, conditionally, so that a concurrent writer which took the same
/// row first makes this one try the next (one stored row answers for one
/// redelivered copy at most).
async fn claim_twin(tx: &mut Conn, twins: &mut VecDeque<(i64, i64)>) -> Result<Option<(i64, i64)>, StoreError> {
    while let Some((id, state)) = twins.pop_front() {
        let taken = sqlx::query("UPDATE messages SET absorbed_redelivery = 1 WHERE id = $1 AND absorbed_redelivery = 0")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if taken.rows_affected() == 1 {
            return Ok(Some((id, state)));
        }
    }
    Ok(None)
}

/// Template ids by hash.
type Templates<'a> = HashMap<&'a [u8], i64>;

/// The id of every distinct trace template of `rows`, stored first when new
/// (a batch of one failure group has one: one lookup per batch).
async fn template_ids<'a>(tx: &mut Conn, rows: &[Fresh<'a>]) -> Result<Templates<'a>, StoreError> {
    let mut ids = Templates::new();
    for template in rows.iter().filter_map(|(m, _)| m.trace_template.as_ref()) {
        let Entry::Vacant(slot) = ids.entry(template.hash.as_slice()) else {
            continue;
        };
        let known: Option<i64> = sqlx::query_scalar("SELECT id FROM stack_traces WHERE hash = $1")
            .bind(&template.hash)
            .fetch_optional(&mut *tx)
            .await?;
        let id = match known {
            Some(id) => id,
            None => {
                // Another writer may store the same template meanwhile: its
                // row wins (`DO NOTHING`), and is read back.
                sqlx::query("INSERT INTO stack_traces (hash, template) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING")
                    .bind(&template.hash)
                    .bind(Engine::text(&template.text))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query_scalar("SELECT id FROM stack_traces WHERE hash = $1")
                    .bind(&template.hash)
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        slot.insert(id);
    }
    Ok(ids)
}

/// Rows per multi-row statement: one statement per table per chunk instead
/// of one per message (each is a round trip to the database), well under
/// either backend's limit of bound parameters.
const ROWS_PER_INSERT: usize = 400;

/// Inserts `rows` into `messages` and `message_contents` (the search index
/// follows: `Store::index_pending`) with the ids drawn for them, in order.
/// The ids are bound rather than left to the table's default so that the
/// contents and the ack markers name the rows without a `RETURNING` of
/// every id (on SQLite that cost a row object per message).
async fn insert_rows(
    tx: &mut Conn,
    rows: &[Fresh<'_>],
    ids: &[i64],
    templates: &Templates<'_>,
) -> Result<(), StoreError> {
    let numbered = || rows.iter().map(|(m, twin)| (*m, *twin)).zip(ids.iter().copied());
    let mut b = sqlx::QueryBuilder::<Db>::new(
        "INSERT INTO messages (id, vhost, queue, received_at, persistent,
            delivery_exchange, delivery_routing_key, original_exchange, original_routing_key,
            reason, death_count, service, message_id, replay_id, content_hash,
            exception_type, group_id, group_title, possible_copy_of, tap) ",
    );
    b.push_values(numbered(), |mut row, ((m, twin), id)| {
        row.push_bind(id)
            .push_bind(Engine::text(&m.vhost))
            .push_bind(Engine::text(&m.queue))
            .push_bind((m.received_at.unix_timestamp_nanos() / 1_000_000) as i64)
            .push_bind(i64::from(m.persistent))
            .push_bind(Engine::text(&m.delivery_exchange))
            .push_bind(Engine::text(&m.delivery_routing_key))
            .push_bind(m.original_exchange.as_deref().map(Engine::text))
            .push_bind(m.original_routing_key.as_deref().map(Engine::text))
            .push_bind(m.reason.as_deref().map(Engine::text))
            .push_bind(m.death_count)
            .push_bind(m.service.as_deref().map(Engine::text))
            .push_bind(m.message_id.as_deref().map(Engine::text))
            .push_bind(m.replay_id.as_deref().map(Engine::text))
            .push_bind(&m.content_hash)
            .push_bind(m.exception_type.as_deref().map(Engine::text))
            .push_bind(Engine::text(&m.group_id))
            .push_bind(Engine::text(&m.group_title))
            .push_bind(twin)
            .push_bind((m.origin == Origin::Tapped).then_some(TapOriginal::InQueue.as_str()));
    });
    let inserted = b.build().execute(&mut *tx).await?.rows_affected();
    if inserted != rows.len() as u64 {
        return Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "{inserted} of {} message rows inserted",
            rows.len()
        ))));
    }
    let mut b = sqlx::QueryBuilder::<Db>::new(
        "INSERT INTO message_contents (message_id, body, properties, headers, stack_trace, trace_id) ",
    );
    b.push_values(numbered(), |mut row, ((m, _), id)| {
        let template = m
            .trace_template
            .as_ref()
            .and_then(|t| templates.get(t.hash.as_slice()).copied());
        row.push_bind(id)
            .push_bind(&m.body)
            .push_bind(&m.properties)
            .push_bind(&m.headers)
            .push_bind(
                template
                    .is_none()
                    .then(|| m.stack_trace.as_deref().map(Engine::text))
                    .flatten(),
            )
            .push_bind(template);
    });
    b.build().execute(&mut *tx).await?;
    Ok(())
}
