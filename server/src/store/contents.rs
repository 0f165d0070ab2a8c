//! How a message's headers are kept beside its stack trace.
//!
//! A Spring failure carries its stack trace in `x-exception-stacktrace`
//! (MassTransit and NServiceBus in headers of their own), and Redrive keeps
//! the trace in a column of its own for display, grouping and search. Stored
//! as received, the trace (a couple of kilobytes, half of a typical failure)
//! would be written twice per message. The headers are therefore stored with
//! that one value replaced by a marker naming the column, and put back on
//! every read, so the API, exports and replays see exactly what was received.
//!
//! The traces of one failure group repeat, but for the exception's message
//! (`x-exception-message`, the `reason` column), which Spring prints in the
//! trace. A trace is therefore stored once per distinct *template*: the
//! trace with its reason replaced by [`MARK`], kept in `stack_traces` and
//! put back together on every read by [`stored_trace!`] (SQLite's `replace`
//! is Rust's `str::replace`: every occurrence, left to right). About 1.4 KB
//! fewer per Spring failure; a trace whose template would not give it back
//! exactly is stored whole.

use serde_json::{Map, Value};

pub use crate::domain::TraceTemplate;

/// Stands for the message's `reason` in a trace template. Control
/// characters, so that real traces never contain it (one that does is
/// stored whole).
pub const MARK: &str = "\u{1}reason\u{1}";

/// The SQL expression that reads a message's stack trace as received, in a
/// query over `messages` joined with `message_contents` (unqualified
/// `stack_trace`, `trace_id` and `reason`, so the caller's aliases do not
/// matter). A correlated subquery, not a join: the list's filters and
/// `WHERE id = ?` stay unambiguous.
macro_rules! stored_trace {
    () => {
        "COALESCE(stack_trace, (SELECT replace(template, '\u{1}reason\u{1}', \
         COALESCE(reason, '\u{1}reason\u{1}')) \
         FROM stack_traces WHERE stack_traces.id = trace_id))"
    };
}
pub(super) use stored_trace;

/// Reasons shorter than this are not looked for in the trace: replacing a
/// word that short would not make two traces alike, only odd to read.
const MIN_REASON: usize = 8;

/// The template `trace` is stored as, `None` when it must be stored whole
/// (it contains [`MARK`], or its template would not read back exactly).
pub fn trace_template(trace: &str, reason: Option<&str>) -> Option<TraceTemplate> {
    if trace.contains(MARK) {
        return None;
    }
    let text = match reason {
        Some(r) if r.len() >= MIN_REASON && trace.contains(r) => {
            let text = trace.replace(r, MARK);
            (restore_template(&text, Some(r)) == trace).then_some(text)?
        }
        _ => trace.to_owned(),
    };
    Some(TraceTemplate {
        hash: blake3::hash(text.as_bytes()).as_bytes().to_vec(),
        text,
    })
}

/// The trace a template stands for (what [`stored_trace!`] computes in SQL).
pub fn restore_template(template: &str, reason: Option<&str>) -> String {
    template.replace(MARK, reason.unwrap_or(MARK))
}

/// Key of the marker that stands for a value kept in the `stack_trace`
/// column. Headers are stored as `{"name": {"type": …, "value": …}}`, the
/// wrapper being Redrive's own, so a publisher cannot forge this key there.
pub(super) const VALUE_IN: &str = "value_in";
const TRACE_COLUMN: &str = "stack_trace";

/// Takes the text out of one header of the headers JSON (a typed wrapper
/// `{"type": …, "value": "…"}`), leaving the marker that stands for the
/// `stack_trace` column: the headers as stored. `None`, and nothing
/// changed, unless the value is non-empty text. Moving the trace out instead
/// of copying and comparing it keeps capture's cost per message down.
pub fn take_trace(typed: &mut Value) -> Option<String> {
    let Value::Object(typed) = typed else {
        return None;
    };
    match typed.get_mut("value") {
        Some(Value::String(text)) if !text.is_empty() => {
            let text = std::mem::take(text);
            typed.remove("value");
            typed.insert(VALUE_IN.into(), TRACE_COLUMN.into());
            Some(text)
        }
        _ => None,
    }
}

/// The headers as received, from their stored text and the trace column.
/// Text that is not JSON (never written by Redrive) reads as no headers.
pub(super) fn restore_trace(stored: &str, trace: Option<&str>) -> Value {
    let mut headers: Value = serde_json::from_str(stored).unwrap_or_default();
    if let Value::Object(map) = &mut headers {
        for typed in map.values_mut() {
            if let Value::Object(typed) = typed {
                restore_one(typed, trace);
            }
        }
    }
    headers
}

fn restore_one(typed: &mut Map<String, Value>, trace: Option<&str>) {
    if typed.get(VALUE_IN).and_then(Value::as_str) != Some(TRACE_COLUMN) {
        return;
    }
    typed.remove(VALUE_IN);
    typed.insert("value".into(), trace.map_or(Value::Null, Into::into));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spring(trace: &str) -> Value {
        json!({
            "x-exception-message": {"type": "longstr", "value": "boom"},
            "x-exception-stacktrace": {"type": "longstr", "value": trace},
            "x-original-exchange": {"type": "longstr", "value": "orders"},
        })
    }

    /// The headers as stored, and the trace taken out of `name`.
    fn stored(mut headers: Value, name: &str) -> (String, Option<String>) {
        let trace = headers.get_mut(name).and_then(take_trace);
        (headers.to_string(), trace)
    }

    #[test]
    fn the_trace_is_stored_once_and_read_back_exactly() {
        let trace = "java.lang.IllegalStateException: boom\n\tat Orders.handle(Orders.java:42)";
        let headers = spring(trace);
        let (text, taken) = stored(headers.clone(), "x-exception-stacktrace");
        assert_eq!(taken.as_deref(), Some(trace));
        assert!(!text.contains("Orders.java"), "{text}");
        assert!(text.len() < headers.to_string().len() - trace.len() + 40);
        assert_eq!(restore_trace(&text, Some(trace)), headers);
    }

    #[test]
    fn headers_without_a_text_trace_are_stored_as_they_are() {
        let headers = spring("");
        assert_eq!(
            stored(headers.clone(), "x-exception-stacktrace"),
            (headers.to_string(), None)
        );
        assert_eq!(stored(headers.clone(), "absent"), (headers.to_string(), None));
        let binary = json!({"x-exception-stacktrace": {"type": "longstr", "base64": "/w=="}});
        assert_eq!(
            stored(binary.clone(), "x-exception-stacktrace"),
            (binary.to_string(), None)
        );
        assert_eq!(restore_trace(&binary.to_string(), Some("\u{fffd}")), binary);
    }

    #[test]
    fn a_publisher_value_that_looks_like_the_marker_stays_a_value() {
        // Nested tables carry wrappers of their own; only Redrive's top-level
        // wrapper is ever read as a marker.
        let headers = json!({"x": {"type": "table", "value": {"value_in": "stack_trace"}}});
        let (text, taken) = stored(headers.clone(), "x");
        assert_eq!(taken, None);
        assert_eq!(restore_trace(&text, Some("t")), headers);
    }

    #[test]
    fn a_trace_template_reads_back_exactly_or_the_trace_is_kept_whole() {
        let reason = "Order 42 rejected by the ledger";
        let trace =
            format!("x.LedgerException: {reason}\n\tat x.Ledger.book(Ledger.java:9)\nCaused by: {reason}");
        let t = trace_template(&trace, Some(reason)).unwrap();
        assert_eq!(t.text.matches(MARK).count(), 2);
        assert_eq!(restore_template(&t.text, Some(reason)), trace);
        // Another order of the same group shares the template.
        let other = trace.replace("42", "43");
        assert_eq!(trace_template(&other, Some(&reason.replace("42", "43"))), Some(t));
        // A short reason, or one the trace does not print: the trace itself.
        let whole = trace_template(&trace, Some("x")).unwrap();
        assert_eq!(whole.text, trace);
        assert_eq!(restore_template(&whole.text, None), trace);
        // A trace holding the marker cannot be told apart from a template.
        assert_eq!(trace_template(&format!("{trace}{MARK}"), Some(reason)), None);
        // Replacing could make a marker out of text around it: kept whole.
        let tricky = format!("\u{1}reason{reason}reason\u{1}");
        let kept = trace_template(&tricky, Some(reason));
        assert!(kept.is_none_or(|t| restore_template(&t.text, Some(reason)) == tricky));
    }

    #[test]
    fn text_that_is_not_json_reads_as_no_headers() {
        assert_eq!(restore_trace("not json", None), Value::Null);
    }
}
