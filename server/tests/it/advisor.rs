//! The reliability advisor against the real broker: each situation is set up
//! for real, its finding must appear, and after the fix it must resolve.

use std::time::Duration;

use crate::common::*;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use serde_json::Value;

const FAST: &[&str] = &[
    "--sample-interval=1",
    "--advisor-window=3",
    "--advisor-deep-queue=5",
    "--advisor-redeliver-rate=1",
];
const WAIT: Duration = Duration::from_secs(45);

fn dlx() -> FieldTable {
    headers(&[("x-dead-letter-exchange", s("dlx"))])
}

async fn findings(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/api/v1/advisor").await;
    assert_eq!(status, 200, "{body}");
    body["findings"].as_array().cloned().unwrap_or_default()
}

/// Waits for an open finding of `kind` on `object` and returns it.
async fn opened(app: &TestApp, object: &str, kind: &str) -> Value {
    wait_for(WAIT, || async {
        findings(app)
            .await
            .into_iter()
            .find(|f| f["object"] == object && f["kind"] == kind && f["resolved_at"].is_null())
    })
    .await
}

/// Waits until that finding shows as resolved (and none is open).
async fn resolved(app: &TestApp, object: &str, kind: &str) {
    wait_until(WAIT, || async {
        let all = findings(app).await;
        let of = |f: &&Value| f["object"] == object && f["kind"] == kind;
        all.iter().filter(of).all(|f| !f["resolved_at"].is_null()) && all.iter().any(|f| of(&f))
    })
    .await;
}

async fn fix(app: &TestApp, finding: &Value) {
    let (status, body) = app
        .post(&format!("/api/v1/advisor/{}/fix", finding["id"]), None)
        .await;
    assert_eq!(status, 204, "{body}");
}

#[tokio::test]
async fn queue_setup_findings_appear_and_clear() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("orders", FieldTable::default()).await;
    vh.declare_queue("billing", dlx()).await;
    vh.declare_queue("reports", dlx()).await;
    let delay = headers(&[
        ("x-dead-letter-exchange", s("dlx")),
        ("x-message-ttl", AMQPValue::LongInt(600_000)),
    ]);
    vh.declare_queue("retry.delay", delay).await;
    let ch = vh.channel().await;
    ch.queue_declare("scratch".into(), QueueDeclareOptions::default(), dlx())
        .await
        .unwrap();
    ch.exchange_declare(
        "events.tmp".into(),
        ExchangeKind::Fanout,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    vh.bind("billing", "events.tmp", "").await;
    vh.publish("", "billing", b"{}", BasicProperties::default()).await;
    vh.publish("", "retry.delay", b"{}", BasicProperties::default())
        .await;
    vh.publish("", "scratch", b"{}", BasicProperties::default()).await;
    for _ in 0..6 {
        vh.publish("", "reports", b"{}", BasicProperties::default()).await;
    }
    let app = TestApp::start(config(&vh, &db, FAST)).await;

    let no_dlx = opened(&app, "orders", "no_dead_letter_path").await;
    assert_eq!(no_dlx["severity"], "warning");
    assert_eq!(no_dlx["vhost"], vh.name.as_str());
    assert!(
        no_dlx["message"].as_str().unwrap().contains("dropped"),
        "{no_dlx}"
    );
    assert_eq!(no_dlx["action"]["type"], "policy");
    opened(&app, "billing", "no_consumers").await;
    opened(&app, "scratch", "non_durable_queue").await;
    opened(&app, "events.tmp", "non_durable_exchange").await;
    let lazy = opened(&app, "reports", "deep_queue_not_lazy").await;
    assert_eq!(lazy["action"]["definition"]["queue-mode"], "lazy");
    // A TTL queue with a DLX and no consumer is a delay queue, not a stall.
    assert!(!findings(&app).await.iter().any(|f| f["object"] == "retry.delay"));

    // Fixes: one-click policies, consuming, purging, deleting.
    fix(&app, &no_dlx).await;
    fix(&app, &lazy).await;
    vh.drain("billing", 1).await;
    ch.queue_purge("scratch".into(), Default::default())
        .await
        .unwrap();
    ch.exchange_delete("events.tmp".into(), Default::default())
        .await
        .unwrap();

    resolved(&app, "orders", "no_dead_letter_path").await;
    assert_eq!(
        vh.queue_info("orders").await["effective_policy_definition"]["dead-letter-exchange"],
        "dlx"
    );
    resolved(&app, "reports", "deep_queue_not_lazy").await;
    resolved(&app, "billing", "no_consumers").await;
    resolved(&app, "scratch", "non_durable_queue").await;
    resolved(&app, "events.tmp", "non_durable_exchange").await;
    app.stop().await;
}

#[tokio::test]
async fn consumer_behaviour_findings_appear_and_clear() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("payments", dlx()).await;
    vh.declare_queue("shipping", dlx()).await;
    vh.publish("", "payments", b"poison", BasicProperties::default())
        .await;
    vh.publish("", "shipping", b"{}", BasicProperties::default())
        .await;
    let app = TestApp::start(config(&vh, &db, FAST)).await;

    // A consumer that nacks with requeue=true forever.
    let looping = vh.channel().await;
    let mut deliveries = looping
        .basic_consume(
            "payments".into(),
            "loop".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let nacker = tokio::spawn(async move {
        while let Some(Ok(d)) = deliveries.next().await {
            let requeue = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            if d.acker.nack(requeue).await.is_err() {
                break;
            }
        }
    });
    // A consumer that takes a message and never acks it.
    let hung = vh.channel().await;
    hung.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut held = hung
        .basic_consume(
            "shipping".into(),
            "hung".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let stuck = held.next().await.unwrap().unwrap();

    let looped = opened(&app, "payments", "requeue_loop").await;
    assert_eq!(looped["severity"], "critical");
    let hung_finding = opened(&app, "shipping", "unacked_stuck").await;
    assert_eq!(hung_finding["severity"], "critical");

    looping.close(200, "stop".into()).await.unwrap();
    nacker.await.unwrap();
    stuck.acker.ack(Default::default()).await.unwrap();
    resolved(&app, "payments", "requeue_loop").await;
    resolved(&app, "shipping", "unacked_stuck").await;
    app.stop().await;
}

#[tokio::test]
async fn error_queue_findings_appear_and_clear() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_queue("inventory.error.queue", FieldTable::default())
        .await;
    let app = TestApp::start(config(&vh, &db, FAST)).await;

    let unbound = opened(&app, "inventory.error.queue", "unbound_error_queue").await;
    assert_eq!(unbound["action"]["routing_key"], "inventory");
    fix(&app, &unbound).await;
    resolved(&app, "inventory.error.queue", "unbound_error_queue").await;

    // Recoverer-style failures through the error exchange, published transient.
    let transient = BasicProperties::default().with_delivery_mode(1);
    vh.publish("error.direct", "inventory", b"{\"sku\":1}", transient.clone())
        .await;
    vh.publish("error.direct", "inventory", b"{\"sku\":2}", transient)
        .await;
    let stored = app.wait_for_messages("inventory.error.queue", 2).await;
    opened(&app, "inventory.error.queue", "growing_error_queue").await;
    let t = opened(&app, "inventory.error.queue", "transient_messages").await;
    assert!(t["message"].as_str().unwrap().starts_with("2 "), "{t}");

    // No new failures for a window: no longer growing. Handled: nothing transient left.
    resolved(&app, "inventory.error.queue", "growing_error_queue").await;
    for m in stored {
        let (status, _) = app
            .post(&format!("/api/v1/messages/{}/discard", m["id"]), None)
            .await;
        assert_eq!(status, 200);
    }
    resolved(&app, "inventory.error.queue", "transient_messages").await;
    app.stop().await;
}

#[tokio::test]
async fn quorum_at_most_once_dead_lettering_appears_and_clears() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    let quorum = headers(&[
        ("x-queue-type", s("quorum")),
        ("x-dead-letter-exchange", s("dlx")),
    ]);
    vh.declare_queue("ledger", quorum).await;
    let app = TestApp::start(config(&vh, &db, FAST)).await;

    let found = opened(&app, "ledger", "at_most_once_dead_lettering").await;
    assert_eq!(found["severity"], "info");
    assert_eq!(
        found["action"]["definition"]["dead-letter-strategy"],
        "at-least-once"
    );
    fix(&app, &found).await;
    resolved(&app, "ledger", "at_most_once_dead_lettering").await;
    let effective = &vh.queue_info("ledger").await["effective_policy_definition"];
    assert_eq!(effective["overflow"], "reject-publish", "{effective}");
    app.stop().await;
}

#[tokio::test]
async fn auto_ack_consumer_appears_and_clears() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("audit", dlx()).await;
    let app = TestApp::start(config(&vh, &db, FAST)).await;
    let ch = vh.channel().await;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    // Held: lapin cancels a consumer whose stream is dropped.
    let _consumer = ch
        .basic_consume("audit".into(), "careless".into(), no_ack, FieldTable::default())
        .await
        .unwrap();

    let found = opened(&app, "audit", "auto_ack_consumers").await;
    assert_eq!(found["severity"], "warning");
    assert!(
        found["message"].as_str().unwrap().starts_with("1 consumer(s)"),
        "{found}"
    );
    ch.close(200, "stop".into()).await.unwrap();
    resolved(&app, "audit", "auto_ack_consumers").await;
    app.stop().await;
}

#[tokio::test]
async fn publisher_without_confirms_appears_and_clears() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("orders", dlx()).await;
    let app = TestApp::start(config(&vh, &db, FAST)).await;
    let conn = lapin::Connection::connect(
        &vh.amqp_url(),
        lapin::ConnectionProperties::default().with_connection_name("orders-api".into()),
    )
    .await
    .unwrap();
    let careless = conn.create_channel().await.unwrap();
    careless
        .basic_publish(
            "".into(),
            "orders".into(),
            Default::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await
        .unwrap();

    let found = opened(&app, "orders-api", "publisher_without_confirms").await;
    assert_eq!(found["object_type"], "publisher");
    assert!(
        found["message"].as_str().unwrap().contains("1 messages so far"),
        "{found}"
    );
    // Publishing with confirms (as the test helper does) is not a finding.
    vh.publish("", "orders", b"{}", BasicProperties::default()).await;
    conn.close(200, "stop".into()).await.unwrap();
    resolved(&app, "orders-api", "publisher_without_confirms").await;
    let others = findings(&app).await;
    assert!(
        others
            .iter()
            .all(|f| f["kind"] != "publisher_without_confirms" || f["object"] == "orders-api"),
        "{others:?}"
    );
    app.stop().await;
}
