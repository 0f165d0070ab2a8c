//! Full-text search on SQLite: an FTS5 table without content (searches
//! only need rowids), and the operator's words as a safe FTS query.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::store::backend::FullText;
use crate::store::search::Pending;
use crate::store::StoreError;

/// The operator's words as an FTS5 query: each whitespace-separated word is a
/// quoted phrase (so `-`, `:` or `*` are never FTS syntax errors), all must match.
fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// The index: FTS5: a contentless table keyed by the message id.
pub(crate) struct Fts5;

impl FullText for Fts5 {
    type Db = Sqlite;

    /// The index's table and key, for retention's purge.
    const INDEX_TABLE: &'static str = "messages_fts";

    const INDEX_KEY: &'static str = "rowid";

    /// The column a search page is ordered by: the index's own rowid, so a page
    /// stops after `limit` hits in index order.
    const MATCH_ID: &'static str = "messages_fts.rowid";

    /// Whether the full-text index yields its matches newest first: FTS5
    /// walks a term's matches in rowid order, so a search page is read from it
    /// directly (see `browse/sql.rs`).
    const IN_ID_ORDER: bool = true;

    /// Run before a statement that reads the index's match set: nothing (FTS5
    /// has one way to read it).
    const MATCH_SET_SETUP: Option<&'static str> = None;

    /// FTS5 indexes each message's trace as received, the reason in place.
    const PENDING_TRACE: &'static str = crate::store::contents::stored_trace!();

    /// FTS5's own command: quicker than deleting row by row.
    const CLEAR_INDEX: &'static str = "INSERT INTO messages_fts (messages_fts) VALUES ('delete-all')";

    async fn insert_index_rows<'a>(
        tx: &'a mut SqliteConnection,
        rows: &'a [Pending],
    ) -> Result<(), StoreError> {
        let mut b = QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages_fts (rowid, body, reason, stack_trace, message_id, headers) ",
        );
        b.push_values(rows, |mut row, m| {
            row.push_bind(m.id)
                .push_bind(m.indexed_body())
                .push_bind(&m.reason)
                .push_bind(&m.stack_trace)
                .push_bind(&m.message_id)
                .push_bind(m.header_text());
        });
        b.build().execute(&mut *tx).await?;
        Ok(())
    }

    /// `messages` joined to the matches of `text`, driven by the index (newest
    /// match first), then ` WHERE` the match; `false` (nothing pushed) when the
    /// text has no words.
    fn push_search_from(b: &mut QueryBuilder<'_, Sqlite>, text: &str) -> bool {
        let Some(q) = fts_query(text) else {
            return false;
        };
        // CROSS JOIN: the index drives, whatever other index could serve the
        // filter (testing the match row by row cost a minute at a million).
        b.push(
            "messages_fts CROSS JOIN messages ON messages.id = messages_fts.rowid WHERE messages_fts MATCH ",
        )
        .push_bind(q);
        true
    }

    /// ` AND` the row matches `text`: one lookup of the row's id in the index,
    /// for the few rows a selective filter reads (see `browse/sql.rs`).
    fn push_probe(b: &mut QueryBuilder<'_, Sqlite>, text: &str) {
        if fts_query(text).is_some() {
            b.push(" AND ");
            Self::push_hit(b, text);
        }
    }

    /// Whether the row `messages.id` matches `text`, by one lookup of its id
    /// in the index; text without words matches nothing.
    fn push_hit(b: &mut QueryBuilder<'_, Sqlite>, text: &str) {
        let Some(q) = fts_query(text) else {
            b.push("1 = 0");
            return;
        };
        b.push("EXISTS (SELECT 1 FROM messages_fts WHERE messages_fts MATCH ")
            .push_bind(q)
            .push(" AND messages_fts.rowid = messages.id)");
    }

    /// `SELECT id FROM` the index `WHERE` it matches `text`: the match set,
    /// for conditions on [`MATCH_ID`] to follow.
    fn push_matched_ids(b: &mut QueryBuilder<'_, Sqlite>, text: &str) {
        b.push("SELECT messages_fts.rowid AS id FROM messages_fts WHERE ");
        match fts_query(text) {
            Some(q) => b.push("messages_fts MATCH ").push_bind(q),
            None => b.push("1 = 0"),
        };
    }

    /// ` AND id IN (matches)` for a search text.
    fn push_match(b: &mut QueryBuilder<'_, Sqlite>, text: &str) {
        if let Some(q) = fts_query(text) {
            b.push(" AND messages.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ")
                .push_bind(q)
                .push(")");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_becomes_quoted_phrases() {
        assert_eq!(fts_query("Trade 22").as_deref(), Some(r#""Trade" "22""#));
        assert_eq!(fts_query(r#"ord-1 a"b"#).as_deref(), Some(r#""ord-1" "a""b""#));
        assert_eq!(fts_query("   "), None);
    }
}
