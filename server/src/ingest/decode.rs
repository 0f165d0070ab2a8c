//! Turning one delivery into the row Redrive stores: a pure function, so every
//! framework's failure headers can be tested without a broker.

use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use serde_json::Value;
use time::OffsetDateTime;

use crate::domain::fingerprint::{exception_type_from_trace, fingerprint, FailureFacts};
use crate::domain::message::{REASON_HEADERS, TRACE_HEADERS};
use crate::domain::NewMessage;
use crate::fields::{properties_to_json, table_to_json};
use crate::store::{take_trace, trace_template};

/// What the broker handed us, without the channel-bound acker.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub vhost: String,
    pub queue: String,
    pub exchange: String,
    pub routing_key: String,
    pub redelivered: bool,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

/// Header names Redrive itself adds to replayed copies.
pub const REPLAY_ID_HEADER: &str = "x-redrive-replay-id";

fn text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn header(h: &FieldTable, name: &str) -> Option<String> {
    h.inner().get(name).and_then(text).filter(|s| !s.is_empty())
}

/// The replay id a copy Redrive published carries, if any.
pub fn replay_id_of(h: &FieldTable) -> Option<String> {
    header(h, REPLAY_ID_HEADER)
}

fn int(v: &AMQPValue) -> Option<i64> {
    match v {
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        _ => None,
    }
}

/// The `x-death` entries that are well-formed tables; anything else in a
/// malformed header is ignored rather than failing the ingest.
fn deaths(h: &FieldTable) -> Vec<&FieldTable> {
    match h.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .filter_map(|v| match v {
                AMQPValue::FieldTable(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn first_routing_key(death: &FieldTable) -> Option<String> {
    match death.inner().get("routing-keys") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().first().and_then(text),
        _ => None,
    }
}

/// `orders.error.queue` → `orders`; MassTransit's `orders_error` → `orders`.
pub fn service_of(queue: &str) -> Option<String> {
    queue
        .strip_suffix(".error.queue")
        .or_else(|| queue.strip_suffix("_error"))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// BLAKE3 over the parts, each preceded by its length. Hashed as one
/// buffer: BLAKE3 hashes the 1 KiB chunks of one input side by side, which
/// it cannot do across separate small updates.
fn content_hash<const N: usize>(parts: [&[u8]; N]) -> Vec<u8> {
    let mut all = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for part in parts {
        all.extend_from_slice(&(part.len() as u64).to_be_bytes());
        all.extend_from_slice(part);
    }
    blake3::hash(&all).as_bytes().to_vec()
}

/// The stack trace, moved out of the headers JSON (which keeps a marker in
/// its place, see `store::contents`). A trace that is not UTF-8 stays in the
/// headers as received (base64) and is shown with replacement characters.
fn stack_trace(h: &FieldTable, headers: &mut Value) -> Option<String> {
    TRACE_HEADERS.iter().find_map(|name| {
        headers
            .get_mut(*name)
            .and_then(take_trace)
            .or_else(|| header(h, name))
    })
}

pub fn decode(incoming: Incoming, received_at: OffsetDateTime) -> NewMessage {
    let empty = FieldTable::default();
    let h = incoming.properties.headers().as_ref().unwrap_or(&empty);
    let deaths = deaths(h);
    let first = deaths.first().copied();
    let from_first = |key: &str| first.and_then(|d| d.inner().get(key)).and_then(text);

    let original_exchange = h
        .inner()
        .get("x-original-exchange")
        .and_then(text)
        .or_else(|| from_first("exchange"))
        .or_else(|| header(h, "x-first-death-exchange"));
    let original_routing_key = h
        .inner()
        .get("x-original-routingKey")
        .and_then(text)
        .or_else(|| first.and_then(first_routing_key));
    let reason = REASON_HEADERS
        .iter()
        .find_map(|name| header(h, name))
        .or_else(|| from_first("reason"))
        .or_else(|| header(h, "x-first-death-reason"));
    let mut headers = table_to_json(h);
    let stack_trace = stack_trace(h, &mut headers);
    let exception_type = header(h, "MT-Fault-ExceptionType")
        .or_else(|| header(h, "NServiceBus.ExceptionInfo.ExceptionType"))
        .or_else(|| stack_trace.as_deref().and_then(exception_type_from_trace));
    let group = fingerprint(&FailureFacts {
        queue: &incoming.queue,
        reason: reason.as_deref(),
        stack_trace: stack_trace.as_deref(),
        exception_type: exception_type.as_deref(),
        original_exchange: original_exchange.as_deref(),
        original_routing_key: original_routing_key.as_deref(),
    });
    let death_count = deaths
        .iter()
        .filter_map(|d| d.inner().get("count").and_then(int))
        .sum();

    let persistent = incoming.properties.delivery_mode() == &Some(2);
    let properties = properties_to_json(&incoming.properties).to_string();
    let headers = headers.to_string();
    let content_hash = content_hash([
        incoming.vhost.as_bytes(),
        incoming.queue.as_bytes(),
        properties.as_bytes(),
        headers.as_bytes(),
        stack_trace.as_deref().unwrap_or_default().as_bytes(),
        &incoming.body,
    ]);

    let trace_template = stack_trace
        .as_deref()
        .and_then(|t| trace_template(t, reason.as_deref()));
    NewMessage {
        service: service_of(&incoming.queue),
        message_id: incoming.properties.message_id().as_ref().map(|s| s.to_string()),
        replay_id: header(h, REPLAY_ID_HEADER),
        exception_type,
        group_id: group.id,
        group_title: group.title,
        content_hash,
        vhost: incoming.vhost,
        queue: incoming.queue,
        received_at,
        body: incoming.body,
        persistent,
        properties,
        headers,
        delivery_exchange: incoming.exchange,
        delivery_routing_key: incoming.routing_key,
        original_exchange,
        original_routing_key,
        reason,
        trace_template,
        stack_trace,
        death_count,
        redelivered: incoming.redelivered,
        origin: crate::domain::Origin::Consumed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldArray, ShortString};

    fn incoming(queue: &str, headers: FieldTable) -> Incoming {
        Incoming {
            vhost: "/".into(),
            queue: queue.into(),
            exchange: "error.direct".into(),
            routing_key: "orders".into(),
            redelivered: false,
            properties: BasicProperties::default()
                .with_message_id("m-1".into())
                .with_headers(headers),
            body: b"{}".to_vec(),
        }
    }

    fn s(v: &str) -> AMQPValue {
        AMQPValue::LongString(v.into())
    }

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert(ShortString::from(*k), v.clone());
        }
        t
    }

    #[test]
    fn spring_republish_headers_win() {
        let h = table(&[
            ("x-exception-message", s("Order 42 not found")),
            (
                "x-exception-stacktrace",
                s("java.lang.IllegalStateException\n\tat ..."),
            ),
            ("x-original-exchange", s("orders.exchange")),
            ("x-original-routingKey", s("order.created")),
        ]);
        let m = decode(incoming("orders.error.queue", h), OffsetDateTime::now_utc());
        assert_eq!(m.original_exchange.as_deref(), Some("orders.exchange"));
        assert_eq!(m.original_routing_key.as_deref(), Some("order.created"));
        assert_eq!(m.reason.as_deref(), Some("Order 42 not found"));
        assert!(m.stack_trace.unwrap().starts_with("java.lang"));
        assert_eq!(m.service.as_deref(), Some("orders"));
        assert_eq!(m.death_count, 0);
        assert_eq!(m.message_id.as_deref(), Some("m-1"));
    }

    #[test]
    fn x_death_first_entry_gives_route_reason_and_count() {
        let death = |reason: &str, exchange: &str, rk: &str, count: i64| {
            AMQPValue::FieldTable(table(&[
                ("count", AMQPValue::LongLongInt(count)),
                ("reason", s(reason)),
                ("exchange", s(exchange)),
                ("queue", s("work")),
                (
                    "routing-keys",
                    AMQPValue::FieldArray(FieldArray::from(vec![s(rk)])),
                ),
            ]))
        };
        let h = table(&[
            (
                "x-death",
                AMQPValue::FieldArray(FieldArray::from(vec![
                    death("expired", "work.x", "late", 2),
                    death("rejected", "old.x", "old", 1),
                ])),
            ),
            ("x-first-death-exchange", s("old.x")),
        ]);
        let m = decode(incoming("work.dlq", h), OffsetDateTime::now_utc());
        assert_eq!(m.original_exchange.as_deref(), Some("work.x"));
        assert_eq!(m.original_routing_key.as_deref(), Some("late"));
        assert_eq!(m.reason.as_deref(), Some("expired"));
        assert_eq!(m.death_count, 3);
        assert_eq!(m.service, None);
    }

    #[test]
    fn malformed_x_death_falls_back_without_panicking() {
        let h = table(&[
            ("x-death", s("not an array")),
            ("x-first-death-exchange", s("fallback.x")),
            ("x-first-death-reason", s("maxlen")),
        ]);
        let m = decode(incoming("a.dlq", h), OffsetDateTime::now_utc());
        assert_eq!(m.original_exchange.as_deref(), Some("fallback.x"));
        assert_eq!(m.reason.as_deref(), Some("maxlen"));
        let h = table(&[(
            "x-death",
            AMQPValue::FieldArray(FieldArray::from(vec![s("junk"), AMQPValue::Void])),
        )]);
        let m = decode(incoming("a.dlq", h), OffsetDateTime::now_utc());
        assert_eq!(m.original_exchange, None);
        assert_eq!(m.death_count, 0);
    }

    #[test]
    fn masstransit_fault_headers_and_queue_naming() {
        let h = table(&[
            ("MT-Fault-Message", s("boom")),
            ("MT-Fault-StackTrace", s("at X")),
        ]);
        let m = decode(incoming("billing_error", h), OffsetDateTime::now_utc());
        assert_eq!(m.reason.as_deref(), Some("boom"));
        assert_eq!(m.service.as_deref(), Some("billing"));
        let h = table(&[
            ("MT-Fault-Message", s("boom")),
            ("MT-Fault-ExceptionType", s("System.InvalidOperationException")),
        ]);
        let m = decode(incoming("billing_error", h), OffsetDateTime::now_utc());
        assert_eq!(
            m.exception_type.as_deref(),
            Some("System.InvalidOperationException")
        );
        assert_eq!(m.group_title, "InvalidOperationException: boom");
        let h = table(&[
            (
                "NServiceBus.ExceptionInfo.ExceptionType",
                s("Shop.PricingException"),
            ),
            ("NServiceBus.ExceptionInfo.Message", s("No price for SKU 77")),
        ]);
        let m = decode(incoming("shop.error.queue", h), OffsetDateTime::now_utc());
        assert_eq!(m.reason.as_deref(), Some("No price for SKU 77"));
        assert_eq!(m.group_title, "PricingException: No price for SKU #");
    }

    #[test]
    fn content_hash_distinguishes_bodies_and_queues() {
        let a = decode(
            incoming("q.dlq", FieldTable::default()),
            OffsetDateTime::now_utc(),
        );
        let mut other = incoming("q.dlq", FieldTable::default());
        other.body = b"{ }".to_vec();
        let b = decode(other, OffsetDateTime::now_utc());
        let c = decode(
            incoming("r.dlq", FieldTable::default()),
            OffsetDateTime::now_utc(),
        );
        assert_ne!(a.content_hash, b.content_hash);
        assert_ne!(a.content_hash, c.content_hash);
        let again = decode(
            incoming("q.dlq", FieldTable::default()),
            OffsetDateTime::now_utc(),
        );
        assert_eq!(a.content_hash, again.content_hash);
    }
}
