//! A RabbitMQ cluster as Redrive sees it: several node URLs with failover,
//! quorum queues to capture from and replay to, streams listed but never
//! consumed. Against the real broker; the "dead node" is a port nothing
//! listens on, which is what a stopped node looks like to a client.

use std::time::Duration;

use crate::common::*;
use lapin::options::BasicAckOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

/// A port on this machine that refuses connections.
const DEAD_NODE: &str = "127.0.0.1:1";

fn quorum(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut entries = vec![("x-queue-type", s("quorum"))];
    entries.extend(extra.iter().cloned());
    headers(&entries)
}

#[tokio::test]
async fn a_dead_first_node_fails_over_and_quorum_queues_capture_and_take_replays() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_exchange("orders.x", ExchangeKind::Direct).await;
    // A delivery-limit on the error queue: every requeue Redrive caused
    // would bring a failure closer to being dropped.
    vh.declare_queue(
        "orders.error.queue",
        quorum(&[("x-delivery-limit", AMQPValue::LongInt(2))]),
    )
    .await;
    vh.bind("orders.error.queue", "error.direct", "orders").await;
    vh.declare_queue("orders.placed", quorum(&[])).await;
    vh.bind("orders.placed", "orders.x", "placed").await;

    // The first node of each list is down; the second is the real broker.
    let amqp = format!(
        "--amqp-url=amqp://guest:guest@{DEAD_NODE}/{v}, {real}",
        v = enc(&vh.name),
        real = vh.amqp_url()
    );
    let management = format!("--management-url=http://{DEAD_NODE},{MGMT}");
    let app = TestApp::start(config(&vh, &db, &[&amqp, &management])).await;

    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers(&[
            ("x-exception-message", s("Order 7 failed")),
            (
                "x-exception-stacktrace",
                s("java.lang.IllegalStateException: Order 7 failed\n\tat Orders"),
            ),
            ("x-original-exchange", s("orders.x")),
            ("x-original-routingKey", s("placed")),
            // As a quorum queue stamps a message it redelivered.
            ("x-delivery-count", AMQPValue::LongInt(1)),
        ]));
    for _ in 0..2 {
        vh.publish("error.direct", "orders", br#"{"order":7}"#, props.clone())
            .await;
    }
    let stored = app.wait_for_messages("orders.error.queue", 2).await;
    assert_ne!(
        stored[0]["id"], stored[1]["id"],
        "two identical failures are two rows"
    );
    let q = app.queue_row(&vh.name, "orders.error.queue").await;
    assert_eq!(q["type"], "quorum");
    // Both failovers are counted for Prometheus.
    let text = app.html("/metrics").await;
    for client in ["amqp", "management"] {
        let series = format!("redrive_failovers_total{{client=\"{client}\"}} ");
        let n: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series}in {text}"))
            .parse()
            .unwrap();
        assert!(n >= 1.0, "{series}{n}");
    }
    // A work queue's row offers the capture switch (streams' rows do not).
    app.queue_row(&vh.name, "orders.placed").await;
    let html = app.html("/queues").await;
    let row = html
        .split("<tr")
        .find(|r| r.contains("data-queue=\"orders.placed\""))
        .unwrap_or_else(|| panic!("no row for orders.placed: {html}"));
    assert!(row.contains(">Capture<"), "{row}");
    // The nodes, each with its alarms, through the node that answers.
    let (status, overview) = app.get("/api/v1/overview").await;
    assert_eq!(status, 200, "{overview}");
    let nodes = overview["nodes"].as_array().unwrap();
    assert!(!nodes.is_empty(), "{overview}");
    for n in nodes {
        assert_eq!(n["running"], true, "{n}");
        assert!(
            n["mem_alarm"].is_boolean() && n["disk_free_alarm"].is_boolean(),
            "{n}"
        );
    }
    assert_eq!(q["watched"], true, "{q}");
    let acked = std::time::Instant::now();
    while vh.depth("orders.error.queue").await > 0 {
        assert!(
            acked.elapsed() < Duration::from_secs(10),
            "stored failures are acked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (status, body) = app
        .post(&format!("/api/v1/messages/{}/replay", stored[0]["id"]), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let d = vh.next_delivery("orders.placed").await;
    assert_eq!(d.data, br#"{"order":7}"#);
    let sent = d.properties.headers().clone().unwrap_or_default();
    assert!(
        !sent.inner().contains_key("x-delivery-count"),
        "the old queue's delivery count does not travel with the replay: {sent:?}"
    );
    d.ack(BasicAckOptions::default()).await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn streams_are_listed_but_never_consumed() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_queue("audit.error.queue", headers(&[("x-queue-type", s("stream"))]))
        .await;
    vh.bind("audit.error.queue", "error.direct", "audit").await;
    vh.publish(
        "error.direct",
        "audit",
        b"kept for every reader",
        BasicProperties::default(),
    )
    .await;
    let app = TestApp::start(config(&vh, &db, &[])).await;

    let q = app.queue_row(&vh.name, "audit.error.queue").await;
    assert_eq!(q["type"], "stream");
    assert_eq!(q["watched"], false, "{q}");
    assert!(q["watch_reason"].as_str().unwrap().contains("stream"), "{q}");
    // An operator cannot switch a stream on either.
    let url = format!(
        "{}/api/v1/queues/{}/audit.error.queue/watch",
        app.base,
        enc(&vh.name)
    );
    let refused = app
        .http
        .put(url)
        .json(&serde_json::json!({ "watch": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    assert!(refused.text().await.unwrap().contains("is a stream"));
    let q = app.queue_row(&vh.name, "audit.error.queue").await;
    assert_eq!(q["watched"], false, "{q}");

    // The Queues page offers no switch that can only fail.
    let html = app.html("/queues").await;
    let row = html
        .split("<tr")
        .find(|r| r.contains("data-queue=\"audit.error.queue\""))
        .unwrap_or_else(|| panic!("no row for the stream: {html}"));
    assert!(row.contains("a stream keeps its messages"), "{row}");
    assert!(!row.contains(">Capture<"), "{row}");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, page) = app.get("/api/v1/messages?queue=audit.error.queue").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0), "{page}");
    let (_, consumers) = vh.mgmt(&format!("consumers/{}", enc(&vh.name))).await;
    assert_eq!(consumers.as_array().map(Vec::len), Some(0), "{consumers}");
    app.stop().await;
}
