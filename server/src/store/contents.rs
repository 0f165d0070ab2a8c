//! How a message's headers are kept beside its stack trace.
//!
//! A Spring failure carries its stack trace in `x-exception-stacktrace`
//! (MassTransit and NServiceBus in headers of their own), and Redrive keeps
//! the trace in a column of its own for display, grouping and search. Stored
//! as received, the trace (a couple of kilobytes, half of a typical failure)
//! would be written twice per message. The headers are therefore stored with
//! that one value replaced by a marker naming the column, and put back on
//! every read, so the API, exports and replays see exactly what was received.

use serde_json::{Map, Value};

/// Key of the marker that stands for a value kept in the `stack_trace`
/// column. Headers are stored as `{"name": {"type": …, "value": …}}`, the
/// wrapper being Redrive's own, so a publisher cannot forge this key there.
pub(super) const VALUE_IN: &str = "value_in";
const TRACE_COLUMN: &str = "stack_trace";

/// The headers as stored: the first top-level string value equal to
/// `trace` is replaced by the marker.
pub(super) fn elide_trace(headers: &Value, trace: Option<&str>) -> String {
    let (Some(trace), Value::Object(map)) = (trace, headers) else {
        return headers.to_string();
    };
    let Some(name) = map.iter().find_map(|(name, typed)| {
        (typed.get("value").and_then(Value::as_str) == Some(trace)).then_some(name)
    }) else {
        return headers.to_string();
    };
    let mut stored = map.clone();
    if let Some(Value::Object(typed)) = stored.get_mut(name) {
        typed.remove("value");
        typed.insert(VALUE_IN.into(), TRACE_COLUMN.into());
    }
    Value::Object(stored).to_string()
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

    #[test]
    fn the_trace_is_stored_once_and_read_back_exactly() {
        let trace = "java.lang.IllegalStateException: boom\n\tat Orders.handle(Orders.java:42)";
        let headers = spring(trace);
        let stored = elide_trace(&headers, Some(trace));
        assert!(!stored.contains("Orders.java"), "{stored}");
        assert!(stored.len() < headers.to_string().len() - trace.len() + 40);
        assert_eq!(restore_trace(&stored, Some(trace)), headers);
    }

    #[test]
    fn headers_without_the_trace_are_stored_as_they_are() {
        let headers = spring("other text");
        let stored = elide_trace(&headers, Some("a trace from elsewhere"));
        assert_eq!(stored, headers.to_string());
        assert_eq!(restore_trace(&stored, Some("a trace from elsewhere")), headers);
        assert_eq!(elide_trace(&headers, None), headers.to_string());
    }

    #[test]
    fn a_publisher_value_that_looks_like_the_marker_stays_a_value() {
        // Nested tables carry wrappers of their own; only Redrive's top-level
        // wrapper is ever read as a marker.
        let headers = json!({"x": {"type": "table", "value": {"value_in": "stack_trace"}}});
        let stored = elide_trace(&headers, Some("t"));
        assert_eq!(restore_trace(&stored, Some("t")), headers);
    }

    #[test]
    fn text_that_is_not_json_reads_as_no_headers() {
        assert_eq!(restore_trace("not json", None), Value::Null);
    }
}
