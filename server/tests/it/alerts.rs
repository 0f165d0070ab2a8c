//! Alert rules fire once, resolve once, and reach a real local HTTP receiver,
//! with retries when it fails.

use std::time::Duration;

use crate::common::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde_json::json;

#[tokio::test]
async fn queue_threshold_fires_once_and_resolves() {
    let receiver = Receiver::start(0).await;
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("orders", FieldTable::default()).await;
    let app = TestApp::start(config(&vh, &db, &["--sample-interval=1"])).await;
    let rule = json!({
        "name": "orders backlog",
        "condition": {"kind": "queue", "queue": "^orders$", "metric": "ready", "threshold": 2},
        "webhook_url": receiver.url,
    });
    let (status, created) = app.post("/api/v1/alerts", Some(rule)).await;
    assert_eq!(status, 201, "{created}");
    for _ in 0..3 {
        vh.publish("", "orders", b"{}", BasicProperties::default()).await;
    }
    let key = format!("{}/orders", vh.name);
    wait_until(Duration::from_secs(30), || async {
        !receiver.events().is_empty()
    })
    .await;
    // Still firing a few ticks later, but announced only once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.events(), vec![("firing".to_owned(), key.clone())]);
    let first = receiver.got.lock().unwrap()[0].clone();
    assert_eq!(first["rule"]["name"], "orders backlog");
    assert_eq!(first["value"], 3.0);
    let (_, rules) = app.get("/api/v1/alerts").await;
    assert_eq!(rules[0]["firing"][0], key.as_str());

    vh.drain("orders", 3).await;
    wait_until(Duration::from_secs(30), || async { receiver.events().len() == 2 }).await;
    assert_eq!(receiver.events()[1], ("resolved".to_owned(), key));

    // The outbox records delivery once the receiver's answer is back, which
    // is a moment after the receiver has seen the POST.
    wait_until(Duration::from_secs(10), || async {
        let (_, deliveries) = app.get("/api/v1/alerts/deliveries").await;
        let rows = deliveries.as_array().cloned().unwrap_or_default();
        rows.len() == 2 && rows.iter().all(|d| !d["delivered_at"].is_null())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn test_button_is_retried_until_the_receiver_takes_it() {
    let receiver = Receiver::start(2).await;
    let vh = TestVhost::new().await;
    let db = TestDb::new();
    let app = TestApp::start(config(&vh, &db, &[])).await;
    let rule = json!({
        "name": "critical findings",
        "condition": {"kind": "finding", "severity": "critical"},
        "webhook_url": receiver.url,
    });
    let (status, created) = app.post("/api/v1/alerts", Some(rule)).await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = app
        .post(&format!("/api/v1/alerts/{}/test", created["id"]), None)
        .await;
    assert_eq!(status, 202);
    // Two failures (backoff 1 s, then 2 s), then delivered.
    wait_until(Duration::from_secs(20), || async {
        !receiver.events().is_empty()
    })
    .await;
    assert_eq!(receiver.events(), vec![("test".to_owned(), "test".to_owned())]);
    let path = format!("/api/v1/alerts/{}/deliveries", created["id"]);
    let d = wait_for(Duration::from_secs(10), || async {
        let (_, deliveries) = app.get(&path).await;
        let d = deliveries[0].clone();
        (!d["delivered_at"].is_null()).then_some(d)
    })
    .await;
    assert_eq!(d["attempts"], 3, "{d}");

    let bad = json!({"name": "x", "condition": {"kind": "queue", "queue": "(", "metric": "ready", "threshold": 1}, "webhook_url": receiver.url});
    let (status, body) = app.post("/api/v1/alerts", Some(bad)).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = app.post("/api/v1/alerts/999999/test", None).await;
    assert_eq!(status, 404);
    app.stop().await;
}
