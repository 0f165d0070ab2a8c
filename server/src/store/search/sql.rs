//! The search indexer, compiled once per backend: capture commits a batch
//! without indexing it (tokenising a Spring failure's stack trace cost more
//! than storing it), and this covers new messages behind it, in id order,
//! moving the watermark `search_progress.indexed_through`.

use crate::store::backend::{FullText, SqlBackend};
use async_trait::async_trait;

use super::{Engine, Search};
use crate::store::*;
use crate::store::search::Pending;
use crate::store::{Filter, StoreError};

/// Messages indexed per transaction when a query catches the index up.
const CATCH_UP_CHUNK: u32 = 1000;

/// Rows per multi-row insert into the index.
const ROWS_PER_INSERT: usize = 400;

#[async_trait]
impl SearchIndex for Engine {
    async fn index_pending(&self, limit: u32) -> Result<usize, StoreError> {
        // The indexer's turn (see the backends' `index_tx`) keeps the
        // watermark exact: ids commit in order, and nothing moves the mark
        // between reading the pending rows and writing it.
        let mut tx = self.index_tx().await?;
        let rows: Vec<Pending> = sqlx::query_as(concat!(
            "SELECT m.id, m.reason, m.message_id, c.body, c.headers, ",
            crate::store::contents::stored_trace!(),
            " AS stack_trace
             FROM messages m JOIN message_contents c ON c.message_id = m.id
             WHERE m.id > (SELECT indexed_through FROM search_progress)
             ORDER BY m.id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(0);
        };
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            Search::insert_index_rows(&mut tx, chunk).await?;
        }
        sqlx::query("UPDATE search_progress SET indexed_through = $1")
            .bind(last)
            .execute(&mut *tx)
            .await?;
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

    async fn unindexed(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE id > (SELECT indexed_through FROM search_progress)",
        )
        .fetch_one(self.pool())
        .await?)
    }
}
