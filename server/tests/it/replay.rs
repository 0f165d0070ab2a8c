//! Replay, discard and restore through the REST API against the real broker.

use crate::common;
use crate::common::*;
use lapin::options::BasicAckOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use serde_json::{json, Value};

/// A Spring-style failure of `billing` that was first published to `billing.x`/`invoice.created`.
async fn setup() -> (TestVhost, TestDb, TestApp, Value) {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_exchange("billing.x", ExchangeKind::Direct).await;
    vh.declare_queue("billing.error.queue", FieldTable::default())
        .await;
    vh.bind("billing.error.queue", "error.direct", "billing").await;
    vh.declare_queue("billing.invoices", FieldTable::default()).await;
    vh.bind("billing.invoices", "billing.x", "invoice.created").await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    let props = BasicProperties::default()
        .with_message_id("inv-9".into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_priority(3)
        .with_headers(headers(&[
            ("x-exception-message", s("Invoice 9 failed")),
            ("x-exception-stacktrace", s("at Billing")),
            ("x-original-exchange", s("billing.x")),
            ("x-original-routingKey", s("invoice.created")),
            ("tenant", s("acme")),
            ("attempt", AMQPValue::LongInt(4)),
        ]));
    vh.publish("error.direct", "billing", br#"{"invoice":9}"#, props)
        .await;
    let m = app.wait_for_messages("billing.error.queue", 1).await.remove(0);
    (vh, db, app, m)
}

#[tokio::test]
async fn replay_delivers_an_identical_copy_to_the_original_route() {
    let (mut vh, _db, app, m) = setup().await;
    let (status, d) = app
        .post(&format!("/api/v1/messages/{}/replay", m["id"]), None)
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["status"], "replayed");
    let last = d["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "replay");
    assert_eq!(last["result"], "ok");
    assert_eq!(last["actor"], "guest");
    assert_eq!(last["target"], "billing.x / invoice.created");

    let copy = vh.next_delivery("billing.invoices").await;
    copy.ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(copy.data, br#"{"invoice":9}"#);
    let p = &copy.properties;
    assert_eq!(p.message_id().as_ref().unwrap().as_str(), "inv-9");
    assert_eq!(p.content_type().as_ref().unwrap().as_str(), "application/json");
    assert_eq!(*p.delivery_mode(), Some(2));
    assert_eq!(*p.priority(), Some(3));
    let h = p.headers().as_ref().unwrap().inner();
    assert_eq!(h.get("tenant"), Some(&s("acme")));
    assert_eq!(h.get("attempt"), Some(&AMQPValue::LongInt(4)));
    assert!(h.contains_key("x-redrive-replay-id"));
    for dropped in ["x-exception-message", "x-exception-stacktrace", "x-death"] {
        assert!(
            !h.contains_key(dropped),
            "{dropped} must not travel with the replay"
        );
    }

    // A replayed message cannot be replayed or discarded again.
    let (status, body) = app
        .post(&format!("/api/v1/messages/{}/replay", m["id"]), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("replayed"));
    let (status, _) = app
        .post(&format!("/api/v1/messages/{}/discard", m["id"]), None)
        .await;
    assert_eq!(status, 409);
    app.stop().await;
}

#[tokio::test]
async fn replay_to_a_missing_exchange_or_unroutable_key_is_an_error_and_stays_failed() {
    let (_vh, _db, app, m) = setup().await;
    let path = format!("/api/v1/messages/{}/replay", m["id"]);

    let (status, body) = app
        .post(&path, Some(json!({"exchange": "no.such.exchange"})))
        .await;
    assert_eq!(status, 502, "{body}");
    let err = body["error"].as_str().unwrap();
    assert!(err.contains("NOT_FOUND") || err.contains("no exchange"), "{err}");

    let (status, body) = app
        .post(&path, Some(json!({"routing_key": "nobody.listens"})))
        .await;
    assert_eq!(status, 502, "{body}");
    let err = body["error"].as_str().unwrap();
    assert!(err.contains("NO_ROUTE") && err.contains("312"), "{err}");

    let (_, d) = app.get(&format!("/api/v1/messages/{}", m["id"])).await;
    assert_eq!(d["status"], "failed");
    let history = d["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history
        .iter()
        .all(|e| e["result"] == "error" && e["action"] == "replay"));
    assert_eq!(history[0]["target"], "no.such.exchange / invoice.created");
    assert_eq!(history[1]["target"], "billing.x / nobody.listens");

    // The message can still be replayed properly afterwards.
    let (status, d) = app.post(&path, None).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["status"], "replayed");
    app.stop().await;
}

#[tokio::test]
async fn discard_restore_and_bad_input() {
    let (_vh, _db, app, m) = setup().await;
    let id = &m["id"];
    let (status, d) = app.post(&format!("/api/v1/messages/{id}/discard"), None).await;
    assert_eq!(status, 200);
    assert_eq!(d["status"], "discarded");
    let (status, _) = app.post(&format!("/api/v1/messages/{id}/replay"), None).await;
    assert_eq!(status, 409);
    let (_, page) = app.get("/api/v1/messages?status=discarded").await;
    assert_eq!(page["total"], 1);
    let (status, d) = app.post(&format!("/api/v1/messages/{id}/restore"), None).await;
    assert_eq!(status, 200);
    assert_eq!(d["status"], "failed");
    let actions: Vec<&str> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["discard", "restore"]);
    let (status, _) = app.post(&format!("/api/v1/messages/{id}/restore"), None).await;
    assert_eq!(status, 409);

    for (path, expected) in [
        ("/api/v1/messages/999999".to_owned(), 404),
        ("/api/v1/messages/abc".to_owned(), 400),
        ("/api/v1/messages?status=bogus".to_owned(), 400),
        ("/api/v1/messages?limit=0".to_owned(), 400),
        ("/api/v1/messages?cursor=xyz".to_owned(), 400),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let (status, _) = app.post("/api/v1/messages/999999/replay", None).await;
    assert_eq!(status, 404);
    let r = app
        .http
        .post(format!("{}/api/v1/messages/{id}/replay", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (_, d) = app.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(d["status"], "failed", "bad input changed nothing");
    app.stop().await;
}

#[tokio::test]
async fn discarded_messages_are_purged_after_the_retention_period_only() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("old.dlq", FieldTable::default()).await;
    // 0.00002 days is about 1.7 s.
    let app = TestApp::start(config(
        &vh,
        &db,
        &["--retention-days=0.00002", "--purge-interval=0.2"],
    ))
    .await;
    for i in 0..3 {
        vh.publish(
            "",
            "old.dlq",
            format!("{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    let items = app.wait_for_messages("old.dlq", 3).await;
    let (status, _) = app
        .post(&format!("/api/v1/messages/{}/discard", items[0]["id"]), None)
        .await;
    assert_eq!(status, 200);
    common::wait_until(std::time::Duration::from_secs(15), || async {
        app.get(&format!("/api/v1/messages/{}", items[0]["id"])).await.0 == 404
    })
    .await;
    let (_, page) = app.get("/api/v1/messages?queue=old.dlq").await;
    assert_eq!(page["total"], 2, "failed messages are never purged");
    app.stop().await;
}

#[tokio::test]
async fn edit_and_replay_sends_the_edit_keeps_the_original_and_records_a_diff() {
    let (mut vh, _db, app, m) = setup().await;
    let path = format!("/api/v1/messages/{}/replay", m["id"]);

    // Invalid JSON for a JSON message: refused, nothing sent, nothing changed.
    let (status, body) = app
        .post(&path, Some(json!({"edit": {"body": "{\"invoice\": 9"}})))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not valid JSON"));
    let (status, body) = app
        .post(
            &path,
            Some(json!({"edit": {"headers": {"tenant": {"type": "u8", "value": 999}}}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, d) = app.get(&format!("/api/v1/messages/{}", m["id"])).await;
    assert_eq!(
        (d["status"].as_str(), d["history"].as_array().unwrap().len()),
        (Some("failed"), 0)
    );

    let mut headers = d["headers"].clone();
    headers["tenant"] = json!({"type": "longstr", "value": "globex"});
    let edit = json!({"edit": {"body": "{\"invoice\": 10}", "headers": headers}});
    let (status, d) = app.post(&path, Some(edit)).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["status"], "replayed");
    assert_eq!(d["body_text"], r#"{"invoice":9}"#, "the stored original is kept");
    let history = d["history"].as_array().unwrap();
    assert_eq!(history[0]["action"], "edit");
    let diff = history[0]["detail"].as_str().unwrap();
    assert!(
        diff.contains(r#"- {"invoice":9}"#) && diff.contains(r#"+ {"invoice": 10}"#),
        "{diff}"
    );
    assert!(
        diff.contains(r#"~ tenant: {"type":"longstr","value":"acme"} → {"type":"longstr","value":"globex"}"#),
        "{diff}"
    );
    assert_eq!(history[1]["action"], "replay");

    let copy = vh.next_delivery("billing.invoices").await;
    copy.ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(copy.data, br#"{"invoice": 10}"#);
    let h = copy.properties.headers().as_ref().unwrap().inner();
    assert_eq!(h.get("tenant"), Some(&s("globex")));
    assert_eq!(copy.properties.message_id().as_ref().unwrap().as_str(), "inv-9");
    app.stop().await;
}
