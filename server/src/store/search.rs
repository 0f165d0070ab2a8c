//! What full-text search indexes, whichever backend holds the index: a
//! message's reason, id, body (when text and not huge), stack trace and
//! header values.

use std::sync::{Arc, RwLock};

use crate::domain::Mask;
use crate::store::Filter;
use crate::store::StoreError;
use async_trait::async_trait;

use serde_json::Value;

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
pub(super) struct Pending {
    pub id: i64,
    pub reason: Option<String>,
    pub message_id: Option<String>,
    pub body: Vec<u8>,
    pub headers: String,
    /// The trace as [`FullText::PENDING_TRACE`] reads it.
    ///
    /// [`FullText::PENDING_TRACE`]: crate::store::backend::FullText::PENDING_TRACE
    pub stack_trace: Option<String>,
    /// The trace's template (`stack_traces.id`) when it is stored as one.
    pub trace_id: Option<i64>,
}

impl Pending {
    /// Masks what `mask` hides from readers, so a search cannot find it.
    /// The trace is then indexed from this row (never from its template's
    /// shared document, which is not masked).
    pub(super) fn mask(&mut self, mask: &Mask) {
        let reason = self.reason.clone();
        if let Some(trace) = self
            .stack_trace
            .as_deref()
            .and_then(|t| mask.trace(t, reason.as_deref()))
        {
            self.stack_trace = Some(trace);
        }
        self.trace_id = None;
        if let Ok(headers) = serde_json::from_str::<Value>(&self.headers) {
            if let Some(shown) = mask.headers(&headers, reason.as_deref()) {
                self.headers = shown.to_string();
            }
        }
        if let Some(r) = reason.as_deref().and_then(|r| mask.reason(r)) {
            self.reason = Some(r);
        }
        if let Some(body) = mask.body(&self.body) {
            self.body = body;
        }
    }

    /// The body as indexed text: `None` when it is not UTF-8 or too large.
    pub(super) fn indexed_body(&self) -> Option<&str> {
        (self.body.len() <= MAX_INDEXED_BODY)
            .then(|| std::str::from_utf8(&self.body).ok())
            .flatten()
    }

    /// The header values as indexed text.
    pub(super) fn header_text(&self) -> String {
        let mut headers = String::new();
        // Stored by capture from a `Value`; unparsable text is indexed as it is.
        match serde_json::from_str::<Value>(&self.headers) {
            Ok(v) => header_text(&v, self.stack_trace.as_deref(), &mut headers),
            Err(_) => headers.push_str(&self.headers),
        }
        headers
    }
}

/// The masking rules the index is built with, set once at start-up by
/// [`SearchIndex::mask_index`].
#[derive(Clone, Default)]
pub(crate) struct IndexMask(Arc<RwLock<Arc<Mask>>>);

impl IndexMask {
    pub(crate) fn get(&self) -> Arc<Mask> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set(&self, mask: Arc<Mask>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = mask;
    }
}

/// The full-text index, built behind capture, and how much of a
/// selection it covers yet.
#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// Indexes up to `limit` messages the index does not cover yet, oldest
    /// first, in one transaction; returns how many it indexed.
    ///
    /// Capture commits a batch without indexing it (tokenising a Spring
    /// failure's stack trace cost more than storing it), so this runs
    /// beside it. Ids may commit out of order (several instances on
    /// PostgreSQL): the ones the watermark passed before they committed
    /// are kept as gaps and indexed on a later pass.
    async fn index_pending(&self, limit: u32) -> Result<usize, StoreError>;

    /// Before a query with search text: indexes what capture stored since
    /// the indexer's last pass, at most `bound` messages (all with `None`),
    /// so the query sees every stored message. A page of results passes a
    /// bound (it stays quick in a burst and says what it cannot see yet);
    /// a job or an export selected by a search does not. Returns how many
    /// messages stay unsearchable.
    async fn searchable(&self, filter: &Filter, bound: Option<usize>) -> Result<i64, StoreError>;

    /// Messages stored but not searchable yet (the indexer's backlog).
    async fn unindexed(&self) -> Result<i64, StoreError>;

    /// Indexes from now on with `mask`'s values left out. When the index
    /// was built with other rules it is emptied, to be built again by the
    /// indexer (searches say meanwhile how much they cannot see): a value
    /// masked now must not be found through what was indexed before.
    /// Returns whether it was emptied. Every instance on one database must
    /// be given the same rules.
    async fn mask_index(&self, mask: Arc<Mask>) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_masked_row_is_indexed_without_its_masked_values() {
        let mask = Mask::parse(r"$.card.number,header:x-user-email,re:\b\d{13,19}\b").unwrap();
        let card = "4111111111111111";
        let mut row = Pending {
            id: 1,
            reason: Some(format!("Card {card} declined")),
            message_id: Some("ord-1".into()),
            body: format!(r#"{{"card": {{"number": "x"}}, "note": "cards {card} and 5500005555555559"}}"#)
                .into_bytes(),
            headers: serde_json::json!({
                "x-exception-message": {"type": "longstr", "value": format!("Card {card} declined")},
                "x-user-email": {"type": "longstr", "value": "ann@example.com"},
                "x-exception-stacktrace": {"type": "longstr", "value_in": "stack_trace"},
            })
            .to_string(),
            stack_trace: Some(format!("Boom: Card {card} declined\n\tat x")),
            trace_id: Some(3),
        };
        row.mask(&mask);
        let indexed = format!(
            "{:?} {:?} {:?} {}",
            row.reason,
            row.stack_trace,
            row.indexed_body(),
            row.header_text()
        );
        for hidden in [card, "5500005555555559", "ann@example.com", "\"x\""] {
            assert!(!indexed.contains(hidden), "{hidden}: {indexed}");
        }
        assert!(indexed.contains("declined"), "{indexed}");
        // Its trace is indexed from the row, not from the template's shared document.
        assert_eq!(row.trace_id, None);
    }
}
