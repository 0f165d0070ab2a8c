//! Full-text search on PostgreSQL: one `tsvector` per message in
//! `message_search` (GIN-indexed), with SQLite's semantics: every word the
//! operator types must match, each as a phrase of its tokens
//! (`phraseto_tsquery`, so `-`, `:` or `*` are never query syntax), case
//! folded, no stemming (the `simple` configuration).
//!
//! Tokens are cut here, as SQLite's `unicode61` tokenizer cuts them: runs
//! of letters and digits. PostgreSQL's own parser keeps `com.acme.Billing`
//! or `a@b.com` whole, so `Billing` would not find a stack trace's frame.
//!
//! A stack trace stored as a template (`store::contents`) is tokenised
//! once per template, into `stack_traces.document`, and each message's
//! document is its own text followed by its template's (`||`, which keeps
//! every phrase inside either). Tokenising a Spring trace for every
//! message was most of the indexer's time, and the indexer shares the CPU
//! with capture. The template leaves out the reason, which the message's
//! own text holds: only a phrase spanning the reason and the words around
//! it in the trace finds nothing here, where SQLite finds it.

use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::store::backend::FullText;
use crate::store::contents::MARK;
use crate::store::search::Pending;
use crate::store::StoreError;

/// Text indexed per message, at most: a `tsvector` is limited to 1 MB, and
/// the first quarter megabyte of a document holds what operators search for.
const MAX_DOCUMENT: usize = 256 * 1024;

/// `text` as its tokens, space-separated: what PostgreSQL then reads one
/// lexeme per token, in order (so phrases match as in SQLite).
fn tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for token in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(token);
    }
    out
}

/// The longest prefix of `s` that fits in `max` bytes, cut at a character.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The document of one message: its short fields first, the body last (a
/// large body is what the clip cuts), without NUL (which `TEXT` refuses), clipped to [`MAX_DOCUMENT`].
fn document(m: &Pending) -> String {
    let headers = m.header_text();
    let mut doc = String::new();
    for part in [
        m.reason.as_deref(),
        m.message_id.as_deref(),
        Some(headers.as_str()),
        m.stack_trace.as_deref(),
        m.indexed_body(),
    ]
    .into_iter()
    .flatten()
    {
        doc.push_str(part);
        doc.push('\n');
    }
    tokens(clip(&doc, MAX_DOCUMENT))
}

/// The document of a trace template: its tokens without the reason's mark.
fn template_document(template: &str) -> String {
    tokens(clip(&template.replace(MARK, " "), MAX_DOCUMENT))
}

/// Tokenises, once each, the templates of `rows` that have no document yet.
async fn template_documents(tx: &mut PgConnection, rows: &[Pending]) -> Result<(), StoreError> {
    let mut ids: Vec<i64> = rows.iter().filter_map(|m| m.trace_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let missing: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, template FROM stack_traces WHERE id = ANY($1) AND document IS NULL")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
    for (id, template) in missing {
        sqlx::query("UPDATE stack_traces SET document = to_tsvector('simple', $2) WHERE id = $1")
            .bind(id)
            .bind(template_document(&template))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// `tsquery && tsquery …`, one phrase per word of `text` (which has words).
/// A word without letters or digits (`*`) asks for nothing; text of such
/// words alone matches nothing.
fn push_query(b: &mut QueryBuilder<'_, Postgres>, text: &str) {
    let phrases: Vec<String> = text
        .split_whitespace()
        .map(tokens)
        .filter(|t| !t.is_empty())
        .collect();
    if phrases.is_empty() {
        b.push("NULL::tsquery");
        return;
    }
    b.push("(");
    for (i, phrase) in phrases.into_iter().enumerate() {
        if i > 0 {
            b.push(" && ");
        }
        b.push("phraseto_tsquery('simple', ").push_bind(phrase).push(")");
    }
    b.push(")");
}

/// The index: one `tsvector` per message in `message_search`, GIN-indexed.
pub(crate) struct TsVector;

impl FullText for TsVector {
    type Db = Postgres;

    /// The index's table and key, for retention's purge.
    const INDEX_TABLE: &'static str = "message_search";

    const INDEX_KEY: &'static str = "message_id";

    /// The column a search page is ordered by.
    const MATCH_ID: &'static str = "message_search.message_id";

    /// Whether the full-text index yields its matches newest first. GIN
    /// returns an unordered set (all of a common word's matches, each
    /// document read to check a phrase), so a page walks the filter's newest
    /// messages instead (see `browse/walk.rs`).
    const IN_ID_ORDER: bool = false;

    /// Run before a statement that reads the index's match set (in its
    /// transaction): the set is read through the GIN index, never by scanning
    /// the documents. The planner prices a scan by the table's pages, but the
    /// documents are stored apart (TOAST) and each is read to test it: a scan
    /// of 100,000 took half a second where the index answers a rare word in one
    /// millisecond.
    const MATCH_SET_SETUP: Option<&'static str> = Some("SET LOCAL enable_seqscan = off");

    /// Only a trace stored whole; a template's is tokenised once (see above).
    const PENDING_TRACE: &'static str = "c.stack_trace";

    const CLEAR_INDEX: &'static str = "DELETE FROM message_search";

    async fn insert_index_rows<'a>(tx: &'a mut PgConnection, rows: &'a [Pending]) -> Result<(), StoreError> {
        template_documents(tx, rows).await?;
        let mut b = QueryBuilder::<Postgres>::new("INSERT INTO message_search (message_id, document) ");
        b.push_values(rows, |mut row, m| {
            row.push_bind(m.id)
                .push("to_tsvector('simple', ")
                .push_bind_unseparated(document(m))
                .push_unseparated(") || COALESCE((SELECT document FROM stack_traces WHERE id = ")
                .push_bind_unseparated(m.trace_id)
                .push_unseparated("), ''::tsvector)");
        });
        b.push(" ON CONFLICT (message_id) DO NOTHING");
        b.build().execute(&mut *tx).await?;
        Ok(())
    }

    /// `messages` joined to the documents matching `text`, then ` WHERE` the
    /// match; `false` (nothing pushed) when the text has no words.
    fn push_search_from(b: &mut QueryBuilder<'_, Postgres>, text: &str) -> bool {
        if text.split_whitespace().next().is_none() {
            return false;
        }
        b.push(
            "message_search JOIN messages ON messages.id = message_search.message_id \
         WHERE message_search.document @@ ",
        );
        push_query(b, text);
        true
    }

    /// ` AND` the row matches `text`: one lookup of its document, for the few
    /// rows a selective filter reads (see `browse/sql.rs`).
    fn push_probe(b: &mut QueryBuilder<'_, Postgres>, text: &str) {
        if text.split_whitespace().next().is_none() {
            return;
        }
        b.push(" AND ");
        Self::push_hit(b, text);
    }

    /// Whether the row `messages.id` matches `text` (which has words), by one
    /// lookup of its document. A scalar subquery, not `EXISTS`: the planner
    /// may turn an `EXISTS` into one hash of every matching document (half a
    /// second for a common word at 100,000), where a window needs a few
    /// hundred lookups.
    fn push_hit(b: &mut QueryBuilder<'_, Postgres>, text: &str) {
        b.push("COALESCE((SELECT message_search.document @@ ");
        push_query(b, text);
        b.push(" FROM message_search WHERE message_search.message_id = messages.id), FALSE)");
    }

    /// `SELECT id FROM` the index `WHERE` the document matches `text` (which
    /// has words): the match set, for conditions on [`MATCH_ID`] to follow.
    fn push_matched_ids(b: &mut QueryBuilder<'_, Postgres>, text: &str) {
        b.push(
            "SELECT message_search.message_id AS id FROM message_search WHERE message_search.document @@ ",
        );
        push_query(b, text);
    }

    /// ` AND id IN (matches)` for a search text.
    fn push_match(b: &mut QueryBuilder<'_, Postgres>, text: &str) {
        if text.split_whitespace().next().is_none() {
            return;
        }
        b.push(" AND messages.id IN (SELECT message_id FROM message_search WHERE document @@ ");
        push_query(b, text);
        b.push(")");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_clipped_at_a_character_and_loses_nul() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("héllo", 3), "hé");
        let m = Pending {
            id: 1,
            reason: Some("bad\0thing".into()),
            message_id: None,
            body: "x".repeat(MAX_DOCUMENT * 2).into_bytes(),
            headers: "{}".into(),
            stack_trace: None,
            trace_id: None,
        };
        let doc = document(&m);
        assert!(doc.len() <= MAX_DOCUMENT);
        assert!(!doc.contains('\0'));
    }

    #[test]
    fn tokens_are_runs_of_letters_and_digits() {
        assert_eq!(
            tokens("at com.acme.Billing.charge(B.java:9)"),
            "at com acme Billing charge B java 9"
        );
        assert_eq!(tokens("ord-1001 Über\0x"), "ord 1001 Über x");
        assert_eq!(tokens("* -"), "");
    }

    #[test]
    fn a_template_is_indexed_without_its_reason_mark() {
        let template =
            format!("java.lang.IllegalStateException: {MARK}\n\tat com.acme.Pay.charge(Pay.java:9)");
        assert_eq!(
            template_document(&template),
            "java lang IllegalStateException at com acme Pay charge Pay java 9"
        );
    }
}
