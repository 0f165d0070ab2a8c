//! The search indexer, compiled once per backend: capture commits a batch
//! without indexing it (tokenising a Spring failure's stack trace cost more
//! than storing it), and this covers new messages behind it, in id order,
//! moving the watermark `search_progress.indexed_through`. Ids need not
//! commit in order (several instances write side by side on PostgreSQL),
//! so the runs of ids the watermark passed before they were committed are
//! kept in `search_gaps` and looked at again on every pass.

use crate::store::backend::{FullText, SqlBackend};
use std::sync::Arc;

use async_trait::async_trait;

use super::{Conn, Db, Engine, Search};
use crate::store::*;
use crate::domain::Mask;
use crate::store::search::Pending;
use crate::store::{id_runs, now_ms, Filter, StoreError};

/// Messages indexed per transaction when a query catches the index up.
const CATCH_UP_CHUNK: u32 = 1000;

/// Rows per multi-row insert into the index.
const ROWS_PER_INSERT: usize = 400;

/// How long the indexer looks again at ids its watermark passed before
/// they were committed: an id drawn by a transaction that rolled back is
/// never committed, and no capture transaction stays open this long
/// (`lock_timeout` and the commit's retry end it well before).
const GAP_KEPT_MS: i64 = 3_600_000;

/// The stored messages `WHERE` … (a condition on `m.id`), oldest first,
/// at most `LIMIT` …. Under masking rules each trace is read whole, to be
/// masked before it is indexed (see `Pending::mask`).
fn pending(condition: &str, limit: &str, mask: &Mask) -> String {
    let trace = if mask.is_empty() {
        Search::PENDING_TRACE
    } else {
        crate::store::contents::stored_trace!()
    };
    format!(
        "SELECT m.id, m.reason, m.message_id, c.body, c.headers, {trace} AS stack_trace, c.trace_id
         FROM messages m JOIN message_contents c ON c.message_id = m.id
         WHERE {condition} ORDER BY m.id LIMIT {limit}"
    )
}

#[async_trait]
impl SearchIndex for Engine {
    async fn index_pending(&self, limit: u32) -> Result<usize, StoreError> {
        // The indexers' turn (see the backends' `index_tx`): nothing else
        // moves the watermark or the gaps between reading and writing them.
        let mut tx = self.index_tx().await?;
        for fold in Engine::FOLD {
            sqlx::query(fold).execute(&mut *tx).await?;
        }
        let now = now_ms();
        let mask = self.index_mask().get();
        let mut rows = late_commits(&mut tx, limit, now, &mask).await?;
        let watermark: i64 = sqlx::query_scalar("SELECT indexed_through FROM search_progress")
            .fetch_one(&mut *tx)
            .await?;
        let left = limit.saturating_sub(rows.len() as u32);
        let new: Vec<Pending> = sqlx::query_as(&pending("m.id > $1", "$2", &mask))
            .bind(watermark)
            .bind(i64::from(left))
            .fetch_all(&mut *tx)
            .await?;
        if let Some(last) = new.last().map(|r| r.id) {
            // Ids below the newest one seen that were not there are open
            // transactions' (or rolled back): looked at again next pass.
            let ids: Vec<i64> = new.iter().map(|r| r.id).collect();
            insert_gaps(&mut tx, &id_runs::holes(watermark + 1, last, &ids), now).await?;
            sqlx::query("UPDATE search_progress SET indexed_through = $1")
                .bind(last)
                .execute(&mut *tx)
                .await?;
        }
        rows.extend(new);
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        if !mask.is_empty() {
            rows.iter_mut().for_each(|r| r.mask(&mask));
        }
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            Search::insert_index_rows(&mut tx, chunk).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    async fn searchable(&self, filter: &Filter, bound: Option<usize>) -> Result<i64, StoreError> {
        if filter.text.is_none() {
            return Ok(0);
        }
        let mut indexed = 0;
        while bound.is_none_or(|b| indexed < b) {
            let n = self.index_pending(CATCH_UP_CHUNK).await?;
            indexed += n;
            if n < CATCH_UP_CHUNK as usize {
                return Ok(0);
            }
        }
        self.unindexed().await
    }

    async fn mask_index(&self, mask: Arc<Mask>) -> Result<bool, StoreError> {
        let mut tx = self.index_tx().await?;
        let built_with: String = sqlx::query_scalar("SELECT mask FROM search_progress")
            .fetch_one(&mut *tx)
            .await?;
        let rebuild = built_with != mask.fingerprint();
        if rebuild {
            sqlx::query(Search::CLEAR_INDEX).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM search_gaps").execute(&mut *tx).await?;
            sqlx::query("UPDATE search_progress SET indexed_through = 0, mask = $1")
                .bind(mask.fingerprint())
                .execute(&mut *tx)
                .await?;
        }
        // Set before the commit: no pass of this instance indexes with the
        // old rules after the index records the new ones.
        self.index_mask().set(mask);
        tx.commit().await?;
        Ok(rebuild)
    }

    async fn unindexed(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM messages WHERE id > (SELECT indexed_through FROM search_progress))
                  + (SELECT COUNT(*) FROM search_gaps g JOIN messages m ON m.id BETWEEN g.first_id AND g.last_id)",
        )
        .fetch_one(self.pool())
        .await?)
    }
}

/// Messages committed in a gap since it was recorded (up to `limit`): the
/// gap is replaced by what is still missing of it, or dropped once it is
/// older than [`GAP_KEPT_MS`].
async fn late_commits(tx: &mut Conn, limit: u32, now: i64, mask: &Mask) -> Result<Vec<Pending>, StoreError> {
    let gaps: Vec<(i64, i64, i64)> =
        sqlx::query_as("SELECT first_id, last_id, seen_at FROM search_gaps ORDER BY first_id")
            .fetch_all(&mut *tx)
            .await?;
    let mut found = Vec::new();
    for (first, last, seen_at) in gaps {
        let left = limit.saturating_sub(found.len() as u32);
        if left == 0 {
            break;
        }
        let rows: Vec<Pending> = sqlx::query_as(&pending("m.id BETWEEN $1 AND $2", "$3", mask))
            .bind(first)
            .bind(last)
            .bind(i64::from(left))
            .fetch_all(&mut *tx)
            .await?;
        let expired = seen_at < now - GAP_KEPT_MS;
        if rows.is_empty() && !expired {
            continue;
        }
        // Only the part read is known; a full read leaves the rest as it was.
        let read_to = if rows.len() as u32 == left { rows.last().map_or(last, |r| r.id) } else { last };
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut still = if expired { Vec::new() } else { id_runs::holes(first, read_to, &ids) };
        if read_to < last {
            still.push((read_to + 1, last));
        }
        sqlx::query("DELETE FROM search_gaps WHERE first_id = $1")
            .bind(first)
            .execute(&mut *tx)
            .await?;
        insert_gaps(tx, &still, seen_at).await?;
        found.extend(rows);
    }
    Ok(found)
}

/// Records runs of ids not committed yet, as seen at `seen_at`.
async fn insert_gaps(tx: &mut Conn, gaps: &[(i64, i64)], seen_at: i64) -> Result<(), StoreError> {
    if gaps.is_empty() {
        return Ok(());
    }
    let mut b = sqlx::QueryBuilder::<Db>::new("INSERT INTO search_gaps (first_id, last_id, seen_at) ");
    b.push_values(gaps, |mut row, (first, last)| {
        row.push_bind(*first).push_bind(*last).push_bind(seen_at);
    });
    b.build().execute(&mut *tx).await?;
    Ok(())
}
