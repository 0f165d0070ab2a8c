//! A search read where the full-text index cannot yield its matches newest
//! first (PostgreSQL's GIN index answers with an unordered set: a common
//! word's set is the whole store, each document read to check a phrase).
//!
//! The filter's newest messages are read through the planned index in
//! windows, each message tested by one lookup of its document, the next
//! window sized from the hit rate so far. A word that is common within the
//! filter fills the page in a window or two. Once the windows have tested
//! `browse::PROBE_BUDGET` messages, or found none, the rest comes from the
//! index's match set below the last window: cheap for exactly the words
//! the windows found rare. Both halves read only what a page needs, so
//! neither depends on the planner's estimate of how many documents a
//! phrase matches (it has none).
//!
//! Compiled once per backend (see `store`); SQLite's index walks its
//! matches in order and never needs this.

use crate::store::backend::{FullText, SqlBackend};
use sqlx::QueryBuilder;

use super::{browse::Reading, Db, Engine, Search};
use crate::store::browse::{next_window, FIRST_WINDOW};
use crate::store::StoreError;

impl Engine {
    /// The ids of the newest `want` messages below `before` that pass the
    /// reading's filter and match its text, newest first; any `want` of
    /// them when not `ordered` (enough to count up to a cap).
    pub(super) async fn walk_search(
        &self,
        reading: &Reading<'_>,
        text: &str,
        before: Option<i64>,
        want: usize,
        ordered: bool,
    ) -> Result<Vec<i64>, StoreError> {
        let mut hits = Vec::new();
        let mut probed = 0;
        let mut below = before;
        let mut window = (want * 4).clamp(1, FIRST_WINDOW);
        loop {
            let mut b = QueryBuilder::<Db>::new("");
            reading.push_window(&mut b, text, below, window as i64);
            let rows: Vec<(i64, bool)> = b.build_query_as().fetch_all(self.pool()).await?;
            probed += rows.len();
            hits.extend(rows.iter().filter(|(_, hit)| *hit).map(|(id, _)| *id));
            if hits.len() >= want || rows.len() < window {
                // Filled, or every message of the filter below `before` tested.
                hits.truncate(want);
                return Ok(hits);
            }
            below = rows.last().map(|(id, _)| *id);
            match next_window(probed, hits.len(), want - hits.len()) {
                Some(next) => window = next,
                None => break,
            }
        }
        let mut b = QueryBuilder::<Db>::new("");
        reading.push_matches(&mut b, text, below, Some((want - hits.len()) as i64), ordered);
        hits.extend(self.read_match_set::<i64>(b).await?);
        Ok(hits)
    }

    /// How many messages pass the reading's filter and match `text`, read
    /// from the index's match set: every one of them.
    pub(super) async fn count_matches(&self, reading: &Reading<'_>, text: &str) -> Result<i64, StoreError> {
        let mut b = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM (");
        reading.push_matches(&mut b, text, None, None, false);
        b.push(") AS counted");
        let counted = self.read_match_set::<i64>(b).await?;
        Ok(counted.first().copied().unwrap_or(0))
    }

    /// Runs a statement over the index's match set, after the backend's
    /// setup for it (see `Search::MATCH_SET_SETUP`).
    async fn read_match_set<T>(&self, mut b: QueryBuilder<'_, Db>) -> Result<Vec<T>, StoreError>
    where
        T: Send + Unpin + for<'r> sqlx::Decode<'r, Db> + sqlx::Type<Db>,
    {
        let mut tx = self.pool().begin().await?;
        if let Some(setup) = Search::MATCH_SET_SETUP {
            sqlx::query(setup).execute(&mut *tx).await?;
        }
        let rows: Vec<T> = b.build_query_scalar().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    }
}
