//! Failed messages as operators read and move them (see [`MessageStore`]).
//! Compiled once per backend (see `store`).

use crate::store::backend::{FullText, SqlBackend};
use super::{browse::Reading, history::insert_event, select::FilterSql, Conn, Db, Engine, Search};
use crate::store::*;
use crate::store::{
    expected_label, filter, rows, Event, Filter, StoreError, StoredMessage, DEFAULT_PAGE, SEARCH_CATCH_UP,
};
use app::model::{MessageDetail, MessagePage, MessageQuery, MessageStatus, MessageSummary, COUNT_CAP};
use async_trait::async_trait;
use sqlx::QueryBuilder;
use std::str::FromStr;

impl Engine {
    /// The rows of a page of `limit` messages below `cursor`, newest first.
    async fn page_rows(
        &self,
        reading: &Reading<'_>,
        cursor: Option<i64>,
        limit: usize,
    ) -> Result<Vec<rows::SummaryRow>, StoreError> {
        let mut select = QueryBuilder::<Db>::new("");
        match (reading.walked(), reading.text) {
            (true, Some(text)) => {
                let ids = self.walk_search(reading, text, cursor, limit, true).await?;
                select.push(format_args!("SELECT {} FROM messages WHERE 1 = 1", rows::SUMMARY_COLUMNS));
                Engine::push_id_set(&mut select, "messages.id", &ids);
                select.push(" ORDER BY messages.id DESC");
            }
            _ => reading.push_page(&mut select, rows::SUMMARY_COLUMNS, cursor, limit as i64),
        }
        Ok(select.build_query_as().fetch_all(self.pool()).await?)
    }

    /// Counts a reading's matches: `(total, capped)`, exactly from the kept
    /// counts when they decide it. Otherwise, with a cap, at most
    /// `cap + 1` rows are read; a search that read that many of its
    /// matches without finding them all says its total is a lower bound.
    async fn count_reading(&self, reading: &Reading<'_>, cap: Option<i64>) -> Result<(i64, bool), StoreError> {
        if let (true, Some(text)) = (reading.walked(), reading.text) {
            return Ok(match cap {
                Some(cap) => {
                    let want = usize::try_from(cap).unwrap_or(0) + 1;
                    let found = self.walk_search(reading, text, None, want, false).await?.len() as i64;
                    (found.min(cap), found > cap)
                }
                None => (self.count_matches(reading, text).await?, false),
            });
        }
        if reading.counted() {
            let mut b = QueryBuilder::<Db>::new("");
            reading.push_tagged_apart(&mut b);
            let apart: i64 = b.build_query_scalar().fetch_one(self.pool()).await?;
            return Ok((reading.plan.matching + apart, false));
        }
        let mut b = QueryBuilder::<Db>::new("");
        reading.push_count(&mut b, cap.map(|c| c + 1));
        let (read, matched): (i64, i64) = b.build_query_as().fetch_one(self.pool()).await?;
        Ok(match cap {
            Some(cap) if read > cap => (matched.min(cap), true),
            _ => (matched, false),
        })
    }
}

#[async_trait]
impl MessageStore for Engine {
    async fn list_within(
        &self,
        q: &MessageQuery,
        visible: Option<&[String]>,
    ) -> Result<MessagePage, StoreError> {
        let mut filter = Filter::try_from(q)?;
        filter.visible = visible.map(<[String]>::to_vec);
        let cursor = filter::cursor(q.cursor.as_deref())?;
        let limit = filter::page_limit(q.limit, DEFAULT_PAGE)?;
        // A page is served from what is indexed even when catching up fails
        // (a database that cannot write); it says what it cannot see.
        let unsearchable = match self.searchable(&filter, Some(SEARCH_CATCH_UP)).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not bring the search index up to date for a page");
                self.unindexed().await?
            }
        };
        let reading = self.reading(&filter, i64::from(limit) + 1).await?;
        let cap = (!q.exact.unwrap_or(false)).then_some(COUNT_CAP);
        // The count and the page read apart, on two connections at once: a
        // counted time window or search reads up to `cap` rows beside the page.
        let ((total, total_capped), mut items) = tokio::try_join!(
            self.count_reading(&reading, cap),
            self.page_rows(&reading, cursor, limit as usize + 1),
        )?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|r| r.id.to_string())
        } else {
            None
        };
        Ok(MessagePage {
            items: items.into_iter().map(Into::into).collect(),
            next_cursor,
            total,
            total_capped,
            unsearchable,
        })
    }

    async fn count_matching(&self, filter: &Filter, cap: Option<i64>) -> Result<i64, StoreError> {
        let reading = self.reading(filter, i64::from(DEFAULT_PAGE) + 1).await?;
        Ok(self.count_reading(&reading, cap).await?.0)
    }

    async fn export_batch(
        &self,
        filter: &Filter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut b = QueryBuilder::<Db>::new(rows::FULL_SELECT);
        filter.push_where(&mut b);
        if let Some(id) = before {
            b.push(" AND id < ").push_bind(id);
        }
        b.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        Ok(b.build_query_as().fetch_all(self.pool()).await?)
    }

    async fn get(&self, id: i64) -> Result<StoredMessage, StoreError> {
        sqlx::query_as::<_, StoredMessage>(&format!("{} WHERE id = $1", rows::FULL_SELECT))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound(id))
    }

    async fn with_message_id(
        &self,
        message_id: &str,
        visible: Option<&[String]>,
        limit: u32,
    ) -> Result<Vec<MessageSummary>, StoreError> {
        let mut b = QueryBuilder::<Db>::new(format!(
            "SELECT {} FROM messages WHERE message_id = ",
            rows::SUMMARY_COLUMNS
        ));
        b.push_bind(Engine::text(message_id).into_owned());
        if let Some(vhosts) = visible {
            super::select::push_vhosts(&mut b, vhosts);
        }
        b.push(" ORDER BY messages.id DESC LIMIT ").push_bind(i64::from(limit));
        let rows: Vec<rows::SummaryRow> = b.build_query_as().fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn detail(&self, id: i64) -> Result<MessageDetail, StoreError> {
        let message = self.get(id).await?;
        let history = sqlx::query_as::<_, rows::EventRow>(
            "SELECT at, action, actor, target, result, detail
             FROM message_events WHERE message_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let own_replay_id = message.replay_id.clone();
        let mut detail = message.into_detail(history.into_iter().map(Into::into).collect());
        super::history::link_replays(self, &mut detail, own_replay_id).await?;
        detail.uncertain_replay_id = self.uncertain_replay_id(id).await?;
        detail.possible_copy_of = self.possible_copy_of(id).await?;
        let tap: Option<String> = sqlx::query_scalar("SELECT tap FROM messages WHERE id = $1")
            .bind(id)
            .fetch_one(self.pool())
            .await?;
        detail.tap = tap
            .map(|t| app::model::TapOriginal::try_from(t).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()?;
        detail.annotations = self
            .annotations(&app::model::AnnotationTarget::Message(id))
            .await?;
        let claim = self.message_claim(id, now_ms()).await?;
        (detail.owner, detail.hold) = (claim.owner, claim.hold);
        Ok(detail)
    }

    async fn transition(
        &self,
        id: i64,
        from: &[MessageStatus],
        to: MessageStatus,
        event: Option<Event<'_>>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        // One conditional statement, so a concurrent writer (another
        // instance) can never slip between the check and the change.
        let mut b = QueryBuilder::<Db>::new("UPDATE messages SET status = ");
        b.push_bind(to.as_str())
            .push(" WHERE id = ")
            .push_bind(id)
            .push(" AND status IN (");
        let mut allowed = b.separated(", ");
        for status in from {
            allowed.push_bind(status.as_str());
        }
        b.push(")");
        if b.build().execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(not_in_state(&mut tx, id, expected_label(from)).await);
        }
        if let Some(event) = event {
            insert_event(&mut tx, id, &event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn purge_discarded(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let expired = "SELECT message_id FROM message_events WHERE action = 'discard'
                       GROUP BY message_id HAVING MAX(at) < $1";
        let mut tx = self.write_tx().await?;
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE {key} IN (SELECT id FROM messages WHERE status = 'discarded'
               AND id <= (SELECT indexed_through FROM search_progress)
               AND NOT EXISTS (SELECT 1 FROM search_gaps g WHERE id BETWEEN g.first_id AND g.last_id)
               AND id IN ({expired}))",
            table = Search::INDEX_TABLE,
            key = Search::INDEX_KEY,
        ))
        .bind(cutoff_ms)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(&format!(
            "DELETE FROM messages WHERE status = 'discarded' AND id IN ({expired})"
        ))
        .bind(cutoff_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            // Trace templates only the purged messages used (see `contents`).
            sqlx::query(
                "DELETE FROM stack_traces WHERE NOT EXISTS
                   (SELECT 1 FROM message_contents WHERE trace_id = stack_traces.id)",
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn count_by_status(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as(
                "SELECT status, CAST(SUM(messages) AS BIGINT) FROM message_counts
                 GROUP BY status HAVING SUM(messages) > 0 ORDER BY status",
            )
                .fetch_all(self.pool())
                .await?,
        )
    }

    async fn count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT CAST(COALESCE(SUM(messages), 0) AS BIGINT) FROM message_counts")
            .fetch_one(self.pool())
            .await?)
    }
}

/// Why a change that asked for message `id` in `expected` states changed
/// nothing: it is missing, or in another state (read in the same
/// transaction).
pub(super) async fn not_in_state(conn: &mut Conn, id: i64, expected: &'static str) -> StoreError {
    let current: Option<String> = match sqlx::query_scalar("SELECT status FROM messages WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
    {
        Ok(current) => current,
        Err(e) => return e.into(),
    };
    let Some(current) = current else {
        return StoreError::NotFound(id);
    };
    match MessageStatus::from_str(&current) {
        Ok(status) => StoreError::WrongState { id, status, expected },
        Err(_) => StoreError::Corrupt(format!("message {id} has status `{current}`")),
    }
}
