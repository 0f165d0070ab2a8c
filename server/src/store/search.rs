//! Full-text index (SQLite FTS5) and the translation of an operator's search
//! text into a safe FTS query.

use serde_json::Value;
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::StoreError;
use crate::ingest::decode::NewMessage;

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
                if k == "type" || k == "base64" {
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

/// Indexes newly stored messages (`(message, id)` pairs) in one statement.
pub(super) async fn index_rows<'m>(
    tx: &mut Transaction<'_, Sqlite>,
    rows: impl Iterator<Item = (&'m &'m NewMessage, i64)>,
) -> Result<(), StoreError> {
    let mut b = sqlx::QueryBuilder::<Sqlite>::new(
        "INSERT INTO messages_fts (rowid, body, reason, stack_trace, message_id, headers) ",
    );
    b.push_values(rows, |mut row, (m, id)| {
        let body = (m.body.len() <= MAX_INDEXED_BODY)
            .then(|| std::str::from_utf8(&m.body).ok())
            .flatten();
        let mut headers = String::new();
        header_text(&m.headers, m.stack_trace.as_deref(), &mut headers);
        row.push_bind(id)
            .push_bind(body)
            .push_bind(&m.reason)
            .push_bind(&m.stack_trace)
            .push_bind(&m.message_id)
            .push_bind(headers);
    });
    b.build().execute(&mut **tx).await?;
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
