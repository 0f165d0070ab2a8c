//! Capture against the real broker: Spring republished failures, broker
//! dead letters with `x-death`, and bodies/headers that must survive byte-exact.

use std::time::Duration;

use crate::common::*;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use lapin::options::BasicNackOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

#[tokio::test]
async fn spring_republished_failure_is_stored_with_every_field() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_queue("trade-service.error.queue", FieldTable::default())
        .await;
    vh.bind("trade-service.error.queue", "error.direct", "trade-service")
        .await;
    let app = TestApp::start(config(&vh, &db, &[])).await;

    let trace =
        "java.lang.IllegalStateException: Trade 42 rejected\n\tat com.acme.trade.Handler.on(Handler.java:17)";
    let props = BasicProperties::default()
        .with_message_id("trade-42".into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_correlation_id("corr-1".into())
        .with_timestamp(1_700_000_000)
        .with_headers(headers(&[
            ("x-exception-message", s("Trade 42 rejected")),
            ("x-exception-stacktrace", s(trace)),
            ("x-original-exchange", s("trade.exchange")),
            ("x-original-routingKey", s("trade.created")),
            ("x-retries", AMQPValue::ShortInt(3)),
            (
                "x-amount",
                AMQPValue::DecimalValue(lapin::types::DecimalValue {
                    scale: 2,
                    value: 1999,
                }),
            ),
        ]));
    vh.publish("error.direct", "trade-service", br#"{"tradeId":42}"#, props)
        .await;

    let items = app.wait_for_messages("trade-service.error.queue", 1).await;
    let m = &items[0];
    assert_eq!(m["status"], "failed");
    assert_eq!(m["vhost"], vh.name.as_str());
    assert_eq!(m["exchange"], "trade.exchange");
    assert_eq!(m["routing_key"], "trade.created");
    assert_eq!(m["reason"], "Trade 42 rejected");
    assert!(m["received_at"].as_str().unwrap().ends_with('Z'));

    let (status, d) = app.get(&format!("/api/v1/messages/{}", m["id"])).await;
    assert_eq!(status, 200);
    assert_eq!(d["service"], "trade-service");
    assert_eq!(d["stack_trace"], trace);
    assert_eq!(d["delivery_exchange"], "error.direct");
    assert_eq!(d["delivery_routing_key"], "trade-service");
    assert_eq!(d["body_text"], r#"{"tradeId":42}"#);
    assert_eq!(d["properties"]["message_id"], "trade-42");
    assert_eq!(d["properties"]["content_type"], "application/json");
    assert_eq!(d["properties"]["delivery_mode"], 2);
    assert_eq!(d["properties"]["correlation_id"], "corr-1");
    assert_eq!(d["properties"]["timestamp"], 1_700_000_000);
    assert_eq!(
        d["headers"]["x-retries"],
        serde_json::json!({"type": "i16", "value": 3})
    );
    // Stored once (in its column), read back in its header exactly.
    assert_eq!(
        d["headers"]["x-exception-stacktrace"],
        serde_json::json!({"type": "longstr", "value": trace})
    );
    assert_eq!(
        d["headers"]["x-amount"]["value"],
        serde_json::json!({"scale": 2, "value": 1999})
    );
    assert_eq!(d["history"], serde_json::json!([]));
    // Stored, then acked: the queue is empty.
    wait_until(Duration::from_secs(5), || async {
        vh.queue_info("trade-service.error.queue").await["messages"] == 0
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn broker_dead_letter_carries_x_death_fields() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("orders.x", ExchangeKind::Topic).await;
    vh.declare_exchange("orders.dlx", ExchangeKind::Fanout).await;
    vh.declare_queue(
        "orders.work",
        headers(&[("x-dead-letter-exchange", s("orders.dlx"))]),
    )
    .await;
    vh.bind("orders.work", "orders.x", "order.#").await;
    vh.declare_queue("orders.dlq", FieldTable::default()).await;
    vh.bind("orders.dlq", "orders.dlx", "").await;
    let app = TestApp::start(config(&vh, &db, &[])).await;

    vh.publish(
        "orders.x",
        "order.placed",
        b"order 7",
        BasicProperties::default().with_message_id("o-7".into()),
    )
    .await;
    // A consumer that gives up on the message: the broker dead-letters it and writes x-death.
    let delivery = vh.next_delivery("orders.work").await;
    delivery
        .nack(BasicNackOptions {
            requeue: false,
            ..Default::default()
        })
        .await
        .unwrap();

    let items = app.wait_for_messages("orders.dlq", 1).await;
    let m = &items[0];
    assert_eq!(m["exchange"], "orders.x");
    assert_eq!(m["routing_key"], "order.placed");
    assert_eq!(m["reason"], "rejected");
    assert_eq!(m["death_count"], 1);
    let (_, d) = app.get(&format!("/api/v1/messages/{}", m["id"])).await;
    let death = &d["headers"]["x-death"];
    assert_eq!(death["type"], "array");
    let first = &death["value"][0]["value"];
    assert_eq!(first["queue"]["value"], "orders.work");
    assert_eq!(first["reason"]["value"], "rejected");
    assert_eq!(first["time"]["type"], "timestamp");
    assert_eq!(d["headers"]["x-first-death-reason"]["value"], "rejected");
    assert_eq!(d["service"], serde_json::Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn odd_bodies_and_malformed_headers_are_stored_byte_exact() {
    let (mut vh, _db, app) = with_queues(&["odd.dlq"], &[]).await;

    let binary: Vec<u8> = vec![0xff, 0xfe, 0x00, 0x80, b'a', 0xc3];
    let huge: Vec<u8> = (0..5 * 1024 * 1024)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let bodies: [(&str, Vec<u8>); 3] = [("binary", binary), ("empty", Vec::new()), ("huge", huge)];
    for (id, body) in &bodies {
        vh.publish(
            "",
            "odd.dlq",
            body,
            BasicProperties::default().with_message_id((*id).into()),
        )
        .await;
    }
    let malformed = headers(&[
        ("x-death", s("this is not an array of tables")),
        ("x-original-exchange", AMQPValue::LongLongInt(5)),
        ("weird", AMQPValue::ByteArray(vec![1, 2, 3].into())),
    ]);
    vh.publish(
        "",
        "odd.dlq",
        b"m",
        BasicProperties::default()
            .with_message_id("malformed".into())
            .with_headers(malformed),
    )
    .await;

    let items = app.wait_for_messages("odd.dlq", 4).await;
    for (id, body) in &bodies {
        let (status, page) = app.get(&format!("/api/v1/messages?queue=odd.dlq&q={id}")).await;
        assert_eq!(status, 200);
        let found = page["items"].as_array().unwrap();
        let (_, d) = app.get(&format!("/api/v1/messages/{}", found[0]["id"])).await;
        assert_eq!(d["properties"]["message_id"], *id);
        let stored = B64.decode(d["body_base64"].as_str().unwrap()).unwrap();
        assert_eq!(stored.len(), body.len(), "{id}");
        assert!(stored == *body, "{id} body differs");
        assert_eq!(d["body_size"], body.len());
        let raw = app
            .http
            .get(format!("{}/api/v1/messages/{}/body", app.base, found[0]["id"]))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(raw.as_ref() == body.as_slice(), "{id} raw body differs");
        if *id == "binary" {
            assert!(d["body_text"].is_null());
        }
    }
    let malformed = items
        .iter()
        .find(|m| m["exchange"].is_null())
        .expect("malformed message stored");
    let (_, d) = app.get(&format!("/api/v1/messages/{}", malformed["id"])).await;
    assert_eq!(d["headers"]["x-death"]["value"], "this is not an array of tables");
    assert_eq!(
        d["headers"]["weird"],
        serde_json::json!({"type": "bytes", "base64": "AQID"})
    );
    assert_eq!(d["reason"], serde_json::Value::Null);
    assert_eq!(vh.depth("odd.dlq").await, 0);
    app.stop().await;
}
