//! Policies through Redrive: validated before sending, visible through the
//! management API, applied to the matched queues; plus sampled history.

use std::time::Duration;

use crate::common::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde_json::{json, Value};

async fn put(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .http
        .put(format!("{}{path}", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn broker_policy(vh: &TestVhost, name: &str) -> u16 {
    vh.mgmt(&format!("policies/{}/{}", enc(&vh.name), enc(name)))
        .await
        .0
}

#[tokio::test]
async fn invalid_regex_is_refused_and_nothing_is_sent() {
    let (vh, _db, app) = with_queues(&["orders"], &[]).await;
    let path = format!("/api/v1/policies/{}/broken", enc(&vh.name));
    let (status, body) = put(
        &app,
        &path,
        json!({"pattern": "^orders(", "definition": {"queue-mode": "lazy"}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("not a valid regular expression"), "{error}");
    assert_eq!(broker_policy(&vh, "broken").await, 404);

    // A definition the broker refuses comes back in the broker's own words.
    let (status, body) = put(
        &app,
        &path,
        json!({"pattern": "^orders$", "definition": {"queue-mode": "sleepy"}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("is not a valid queue-mode value"),
        "{body}"
    );
    assert_eq!(broker_policy(&vh, "broken").await, 404);

    let (status, body) = put(&app, &path, json!({"pattern": "x", "definition": {}})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = put(&app, &path, json!({"definition": {"queue-mode": "lazy"}})).await;
    assert_eq!(status, 400, "missing pattern is refused");

    // Unknown vhosts and policies are named in the error.
    let ghost = format!("{}-missing", vh.name);
    let (status, body) = put(
        &app,
        &format!("/api/v1/policies/{}/p", enc(&ghost)),
        json!({"pattern": "^x$", "definition": {"message-ttl": 1000}}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&ghost), "{body}");
    let r = app
        .http
        .delete(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

/// The broker's patterns are PCRE: lookahead, common in policies, must be
/// accepted, previewed and applied exactly as the broker applies it.
#[tokio::test]
async fn lookahead_pattern_is_previewed_and_applied_as_the_broker_does() {
    let (vh, _db, app) = with_queues(&["orders.work", "orders.audit"], &[]).await;
    let v = enc(&vh.name);
    let policy = json!({"pattern": "^(?!orders\\.audit$)orders\\.", "definition": {"message-ttl": 60000}});
    let (status, preview) = app
        .post(
            &format!("/api/v1/policies/{v}/ttl-but-audit/preview"),
            Some(policy.clone()),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["matches"].as_array().unwrap().len(), 1, "{preview}");
    assert_eq!(preview["matches"][0]["queue"], "orders.work");

    let (status, body) = put(&app, &format!("/api/v1/policies/{v}/ttl-but-audit"), policy).await;
    assert_eq!(status, 200, "{body}");
    wait_until(Duration::from_secs(15), || async {
        vh.queue_info("orders.work").await["policy"] == "ttl-but-audit"
    })
    .await;
    assert!(vh.queue_info("orders.audit").await["policy"].is_null());
    app.stop().await;
}

/// Limits set three ways (queue argument, operator policy, user policy)
/// combine as the broker combines them: the preview says which one counts.
#[tokio::test]
async fn operator_policies_and_queue_arguments_are_explained() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    let capped = headers(&[("x-max-length", lapin::types::AMQPValue::LongInt(500))]);
    vh.declare_queue("orders.capped", capped).await;
    let r = vh
        .http
        .put(format!(
            "http://127.0.0.1:15672/api/operator-policies/{}/ops-cap",
            enc(&vh.name)
        ))
        .basic_auth("guest", Some("guest"))
        .json(&json!({"pattern": "^orders\\.", "apply-to": "queues", "definition": {"max-length": 1000}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "operator policy: {}", r.status());
    let app = TestApp::start(config(&vh, &db, &[])).await;
    wait_until(Duration::from_secs(15), || async {
        let (_, body) = app.get("/api/v1/queues").await;
        body["queues"][0]["operator_policy"] == "ops-cap"
    })
    .await;

    let v = enc(&vh.name);
    let policy =
        json!({"pattern": "^orders\\.", "definition": {"max-length": 100, "dead-letter-exchange": "dlx"}});
    let (status, preview) = app
        .post(&format!("/api/v1/policies/{v}/cap/preview"), Some(policy))
        .await;
    assert_eq!(status, 200, "{preview}");
    let note = preview["matches"][0]["note"].as_str().unwrap();
    assert!(
        note.contains("lower of the queue's x-max-length argument"),
        "{note}"
    );
    assert!(note.contains("operator policy ops-cap applies too"), "{note}");
    app.stop().await;
}

#[tokio::test]
async fn lazy_policy_is_previewed_saved_applied_and_deleted() {
    let (vh, _db, app) = with_queues(&["orders.work", "orders.audit", "billing"], &[]).await;
    let v = enc(&vh.name);
    let lazy = json!({"pattern": "^orders\\.", "apply_to": "queues", "priority": 1, "definition": {"queue-mode": "lazy"}});

    let (status, preview) = app
        .post(
            &format!("/api/v1/policies/{v}/lazy-orders/preview"),
            Some(lazy.clone()),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    let mut matched: Vec<&str> = preview["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["queue"].as_str().unwrap())
        .collect();
    matched.sort();
    assert_eq!(matched, ["orders.audit", "orders.work"]);
    assert!(preview["matches"][0]["winner"] == "lazy-orders", "{preview}");

    let (status, body) = put(&app, &format!("/api/v1/policies/{v}/lazy-orders"), lazy).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(broker_policy(&vh, "lazy-orders").await, 200);
    wait_until(Duration::from_secs(15), || async {
        vh.queue_info("orders.work").await["policy"] == "lazy-orders"
    })
    .await;
    assert!(vh.queue_info("billing").await["policy"].is_null());
    let (_, listed) = app.get(&format!("/api/v1/policies?vhost={v}")).await;
    assert_eq!(listed[0]["name"], "lazy-orders", "{listed}");
    assert_eq!(listed[0]["apply-to"], "queues");

    // A higher-priority policy would win over it: the preview says so.
    let ttl = json!({"pattern": "^orders\\.work$", "priority": 0, "definition": {"message-ttl": 1000}});
    let (_, preview) = app
        .post(&format!("/api/v1/policies/{v}/ttl/preview"), Some(ttl))
        .await;
    assert_eq!(preview["matches"][0]["winner"], "lazy-orders", "{preview}");
    assert!(preview["matches"][0]["note"]
        .as_str()
        .unwrap()
        .contains("higher priority"));

    let r = app
        .http
        .delete(format!("{}/api/v1/policies/{v}/lazy-orders", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(broker_policy(&vh, "lazy-orders").await, 404);
    app.stop().await;
}

#[tokio::test]
async fn queue_history_charts_sampled_counters() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("backlog", FieldTable::default()).await;
    for _ in 0..3 {
        vh.publish("", "backlog", b"{}", BasicProperties::default()).await;
    }
    // The management API refreshes its statistics every few seconds; start
    // sampling only once it reports the backlog, so that every sample in a
    // bucket is 3 and the bucket's average is exactly 3 (a bucket mixing an
    // early 0 with later 3s would average below it until the next bucket).
    wait_until(Duration::from_secs(30), || async {
        vh.queue_info("backlog").await["messages_ready"] == 3
    })
    .await;
    let app = TestApp::start(config(&vh, &db, &["--sample-interval=1"])).await;
    let path = format!("/api/v1/queues/{}/backlog/history?window=1h", enc(&vh.name));
    let history = wait_for(Duration::from_secs(30), || async {
        let (status, h) = app.get(&path).await;
        assert_eq!(status, 200, "{h}");
        let points = h["points"].as_array().cloned().unwrap_or_default();
        points.iter().any(|p| p["ready"] == 3.0).then_some(h)
    })
    .await;
    assert_eq!(history["bucket_secs"], 30);
    assert!(history["until"].as_i64().unwrap() >= history["points"][0]["at"].as_i64().unwrap());

    // The page draws it as SVG in the server's HTML: readable without JavaScript.
    let html = app.html(&format!("/queues/{}/backlog", enc(&vh.name))).await;
    assert!(
        html.contains("<polyline points=") && html.contains("class=\"line s1\""),
        "no chart in the HTML: {html}"
    );

    let (status, body) = app
        .get(&format!(
            "/api/v1/queues/{}/backlog/history?window=2d",
            enc(&vh.name)
        ))
        .await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}
