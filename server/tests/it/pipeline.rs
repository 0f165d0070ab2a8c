//! The bulk replay pipeline against the real broker: many publishes in
//! flight on one confirm channel, and still a return, a nack or a missing
//! exchange fails only its own message.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, ExchangeKind};
use serde_json::{json, Value};

const EACH: usize = 150;

/// Where message `i` was headed: a bound route, an unbound routing key, or
/// an exchange that does not exist.
fn route(i: usize) -> (&'static str, &'static str) {
    match i % 3 {
        0 => ("orders.x", "new"),
        1 => ("orders.x", "nobody-binds-this"),
        _ => ("ghost.x", "new"),
    }
}

async fn wait_for_job(app: &TestApp, id: &Value) -> Value {
    wait_for(Duration::from_secs(120), || async {
        let (_, j) = app.get(&format!("/api/v1/jobs/{id}")).await;
        (j["state"] == "completed").then_some(j)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_and_missing_exchanges_fail_only_their_own_messages() {
    let (mut vh, _db, app) = with_queues(&["orders.dlq", "orders.in"], &[]).await;
    vh.declare_exchange("orders.x", ExchangeKind::Direct).await;
    vh.bind("orders.in", "orders.x", "new").await;

    let ch = vh.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    for i in 0..EACH * 3 {
        let (exchange, key) = route(i);
        let props = BasicProperties::default()
            .with_message_id(format!("m-{i}").into())
            .with_headers(headers(&[
                ("x-exception-message", s("Order could not be saved")),
                ("x-original-exchange", s(exchange)),
                ("x-original-routingKey", s(key)),
            ]));
        let body = format!(r#"{{"order":{i}}}"#);
        ch.basic_publish(
            "".into(),
            "orders.dlq".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            props,
        )
        .await
        .unwrap();
    }
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
    let stored = app.wait_for_messages("orders.dlq", EACH * 3).await;
    let mut message_of: HashMap<i64, usize> = HashMap::new();
    for m in &stored {
        let id = m["id"].as_i64().unwrap();
        let (_, d) = app.get(&format!("/api/v1/messages/{id}")).await;
        let n: usize = d["properties"]["message_id"].as_str().unwrap()[2..]
            .parse()
            .unwrap();
        message_of.insert(id, n);
    }

    // No rate cap: the whole window in flight, returns interleaved with acks.
    let (status, created) = app
        .post(
            "/api/v1/jobs",
            Some(json!({"action": "replay", "filter": {"queue": "orders.dlq"}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let done = wait_for_job(&app, &created["id"]).await;
    assert_eq!(
        (done["done"].as_u64(), done["failed"].as_u64()),
        (Some(EACH as u64), Some(2 * EACH as u64)),
        "{done}"
    );

    // Each failure is the right message's, for the right reason.
    let (_, problems) = app.get(&format!("/api/v1/jobs/{}/problems", created["id"])).await;
    let problems = problems.as_array().unwrap();
    assert_eq!(problems.len(), 2 * EACH);
    for p in problems {
        let i = message_of[&p["message_id"].as_i64().unwrap()];
        let error = p["error"].as_str().unwrap();
        match i % 3 {
            1 => assert!(error.contains("NO_ROUTE"), "{i}: {error}"),
            2 => assert!(error.contains("NOT_FOUND"), "{i}: {error}"),
            _ => panic!("message {i} was routable yet failed: {error}"),
        }
    }
    for m in &stored {
        let id = m["id"].as_i64().unwrap();
        let (_, d) = app.get(&format!("/api/v1/messages/{id}")).await;
        let want = if message_of[&id].is_multiple_of(3) {
            "replayed"
        } else {
            "failed"
        };
        assert_eq!(d["status"], want, "{d}");
        assert!(d["uncertain_replay_id"].is_null(), "a refusal is certain: {d}");
    }

    // Exactly the routable ones arrived, once each, carrying their replay id.
    assert_eq!(vh.depth("orders.in").await as usize, EACH);
    let mut seen = std::collections::HashSet::new();
    for copy in vh.drain("orders.in", EACH).await {
        let id = copy.properties.message_id().as_ref().unwrap().to_string();
        let n: usize = id[2..].parse().unwrap();
        assert_eq!(n % 3, 0, "{id} should not have been delivered");
        assert!(seen.insert(id.clone()), "{id} arrived twice");
        let h = copy.properties.headers().as_ref().unwrap();
        assert!(h.inner().contains_key("x-redrive-replay-id"));
        assert!(!h.inner().contains_key("x-exception-message"));
    }

    // The audit log holds one entry per message, under the job owner's name.
    let (_, audit) = app
        .get("/api/v1/audit?action=job_replay&user=guest&limit=500")
        .await;
    let entries = audit["items"].as_array().unwrap();
    assert_eq!(entries.len(), 3 * EACH, "{audit}");
    let ok = entries.iter().filter(|e| e["result"] == "ok").count();
    assert_eq!(ok, EACH);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_capped_job_keeps_to_its_cap() {
    let (mut vh, _db, app) = with_queues(&["slow.dlq", "slow.in"], &[]).await;
    vh.declare_exchange("slow.x", ExchangeKind::Direct).await;
    vh.bind("slow.in", "slow.x", "k").await;
    let props = BasicProperties::default().with_headers(headers(&[
        ("x-original-exchange", s("slow.x")),
        ("x-original-routingKey", s("k")),
    ]));
    for _ in 0..12 {
        vh.publish("", "slow.dlq", b"{}", props.clone()).await;
    }
    app.wait_for_messages("slow.dlq", 12).await;
    let started = std::time::Instant::now();
    let (status, created) = app
        .post(
            "/api/v1/jobs",
            Some(json!({"action": "replay", "filter": {"queue": "slow.dlq"}, "rate_per_sec": 10})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let done = wait_for_job(&app, &created["id"]).await;
    assert_eq!(done["done"], 12, "{done}");
    // Twelve at ten a second cannot take less than one second (the first
    // goes at once); this bounds the cap from below, never a speed.
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(vh.depth("slow.in").await, 12);
    app.stop().await;
}
