//! Full-text index (SQLite FTS5) and the translation of an operator's search
//! text into a safe FTS query.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::api::*;
use super::{Filter, SqliteStore, StoreError};

/// Bodies larger than this are not indexed (still searchable by their other fields).
const MAX_INDEXED_BODY: usize = 1 << 20;

/// Header values as plain text, for indexing. A value equal to `skip` (the
/// stack trace, which has a column of its own) is left out: Spring's
/// `x-exception-stacktrace` would otherwise be tokenised and stored twice.
fn header_text(headers: &Value, skip: Option<&str>, out: &mut String) {
    match headers {
        Value::Object(m) => {
            for (k, v) in m {
                // Typed values ({"type": "i8", "value": 3}): only the value is text.
                // A marker for a value kept in its own column (`store::contents`).
                if k == "type" || k == "base64" || k == super::contents::VALUE_IN {
                    continue;
                }
                if k == "value" {
                    header_text(v, skip, out);
                } else {
                    out.push_str(k);
                    out.push(' ');
                    header_text(v, skip, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| header_text(v, skip, out)),
        Value::String(s) if Some(s.as_str()) == skip => {}
        Value::String(s) => {
            out.push_str(s);
            out.push(' ');
        }
        Value::Number(n) => {
            out.push_str(&n.to_string());
            out.push(' ');
        }
        _ => {}
    }
}

/// A stored message's searchable text, read back for indexing.
#[derive(sqlx::FromRow)]
struct Pending {
    id: i64,
    reason: Option<String>,
    message_id: Option<String>,
    body: Vec<u8>,
    headers: String,
    stack_trace: Option<String>,
}

/// Messages indexed per transaction when a query catches the index up.
const CATCH_UP_CHUNK: u32 = 1000;

/// Rows per multi-row insert into the index (6 parameters each).
const ROWS_PER_INSERT: usize = 400;

#[async_trait]
impl SearchIndex for SqliteStore {
    async fn index_pending(&self, limit: u32) -> Result<usize, StoreError> {
        let mut tx = self.write_tx().await?;
        let rows: Vec<Pending> = sqlx::query_as(concat!(
            "SELECT m.id, m.reason, m.message_id, c.body, c.headers, ",
            super::contents::stored_trace!(),
            " AS stack_trace
             FROM messages m JOIN message_contents c ON c.message_id = m.id
             WHERE m.id > (SELECT indexed_through FROM search_progress)
             ORDER BY m.id LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(0);
        };
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            insert_index_rows(&mut tx, chunk).await?;
        }
        sqlx::query("UPDATE search_progress SET indexed_through = ?")
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
        .fetch_one(&self.pool)
        .await?)
    }
}

async fn insert_index_rows(tx: &mut SqliteConnection, rows: &[Pending]) -> Result<(), StoreError> {
    let mut b = sqlx::QueryBuilder::<Sqlite>::new(
        "INSERT INTO messages_fts (rowid, body, reason, stack_trace, message_id, headers) ",
    );
    b.push_values(rows, |mut row, m| {
        let body = (m.body.len() <= MAX_INDEXED_BODY)
            .then(|| std::str::from_utf8(&m.body).ok())
            .flatten();
        let mut headers = String::new();
        // Stored by capture from a `Value`; unparsable text is indexed as it is.
        match serde_json::from_str::<Value>(&m.headers) {
            Ok(v) => header_text(&v, m.stack_trace.as_deref(), &mut headers),
            Err(_) => headers.push_str(&m.headers),
        }
        row.push_bind(m.id)
            .push_bind(body)
            .push_bind(&m.reason)
            .push_bind(&m.stack_trace)
            .push_bind(&m.message_id)
            .push_bind(headers);
    });
    b.build().execute(&mut *tx).await?;
    Ok(())
}

/// The operator's words as an FTS5 query: each whitespace-separated word is a
/// quoted phrase (so `-`, `:` or `*` are never FTS syntax errors), all must match.
pub fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// ` AND id IN (matches)` for a search text.
pub fn push_match(b: &mut QueryBuilder<'_, Sqlite>, text: &str) {
    if let Some(q) = fts_query(text) {
        b.push(" AND messages.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ")
            .push_bind(q)
            .push(")");
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

    #[test]
    fn header_values_are_flattened() {
        let mut out = String::new();
        header_text(
            &serde_json::json!({
                "tenant": {"type": "longstr", "value": "acme"},
                "n": {"type": "i8", "value": 3},
                "x-exception-stacktrace": {"type": "longstr", "value": "at Foo.bar"},
            }),
            Some("at Foo.bar"),
            &mut out,
        );
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            ["n", "3", "tenant", "acme", "x-exception-stacktrace"]
        );
    }
}
