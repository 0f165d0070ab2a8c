//! Hostile and malformed requests: each gets a clear 4xx `{"error"}` and
//! changes nothing. Never a 5xx, never a panic.

use crate::common::*;
use lapin::BasicProperties;
use serde_json::{json, Value};

enum Body {
    None,
    Json(Value),
    Raw(&'static str),
}

#[tokio::test]
async fn malformed_requests_get_a_4xx_and_change_nothing() {
    let (mut vh, _db, app) = with_queues(&["orders.dlq"], &[]).await;
    vh.publish("", "orders.dlq", b"{\"id\":1}", BasicProperties::default())
        .await;
    let stored = app.wait_for_messages("orders.dlq", 1).await;
    let id = stored[0]["id"].as_i64().unwrap();
    let v = enc(&vh.name);

    let cases: Vec<(&str, String, Body)> = vec![
        ("GET", "/api/v1/messages?limit=-1".into(), Body::None),
        ("GET", "/api/v1/messages?limit=0".into(), Body::None),
        (
            "GET",
            "/api/v1/messages?limit=99999999999999999999".into(),
            Body::None,
        ),
        ("GET", "/api/v1/messages?cursor=garbage".into(), Body::None),
        ("GET", "/api/v1/messages?from=yesterday".into(), Body::None),
        ("GET", "/api/v1/messages?status=exploded".into(), Body::None),
        ("GET", "/api/v1/messages/export?format=xml".into(), Body::None),
        ("GET", "/api/v1/audit?action=explode".into(), Body::None),
        ("GET", "/api/v1/audit?limit=0".into(), Body::None),
        ("GET", "/api/v1/audit?limit=-3".into(), Body::None),
        ("GET", "/api/v1/audit?cursor=garbage".into(), Body::None),
        ("GET", "/api/v1/audit?from=yesterday".into(), Body::None),
        ("GET", "/api/v1/audit/export?to=soon".into(), Body::None),
        ("GET", "/api/v1/messages/abc".into(), Body::None),
        ("GET", "/api/v1/messages/99999999999999999999".into(), Body::None),
        ("GET", "/api/v1/messages/424242".into(), Body::None),
        ("GET", "/api/v1/messages/424242/body".into(), Body::None),
        (
            "POST",
            format!("/api/v1/messages/{id}/replay"),
            Body::Raw("this is not json"),
        ),
        (
            "POST",
            format!("/api/v1/messages/{id}/replay"),
            Body::Json(json!({"exchange": 5})),
        ),
        (
            "POST",
            format!("/api/v1/messages/{id}/replay"),
            Body::Json(json!({"exchange": "x".repeat(300)})),
        ),
        ("POST", format!("/api/v1/messages/{id}/restore"), Body::None),
        ("POST", "/api/v1/messages/424242/discard".into(), Body::None),
        (
            "POST",
            format!("/api/v1/messages/{id}/tags"),
            Body::Json(json!({"tag": 7})),
        ),
        ("POST", "/api/v1/jobs".into(), Body::Json(json!({}))),
        (
            "POST",
            "/api/v1/jobs".into(),
            Body::Json(json!({"action": "explode", "ids": [id]})),
        ),
        (
            "POST",
            "/api/v1/jobs".into(),
            Body::Json(json!({"action": "replay", "ids": [id], "rate_per_sec": -3})),
        ),
        (
            "POST",
            "/api/v1/jobs".into(),
            Body::Json(json!({"action": "replay", "filter": {"q": "x", "status": "nope"}})),
        ),
        ("GET", "/api/v1/jobs/abc".into(), Body::None),
        ("POST", "/api/v1/jobs/1/explode".into(), Body::None),
        ("GET", "/api/v1/groups?status=bogus".into(), Body::None),
        ("GET", "/api/v1/queues/x/y/history?window=9y".into(), Body::None),
        (
            "PUT",
            format!("/api/v1/queues/{v}/orders.dlq/watch"),
            Body::Json(json!({"watch": "yes"})),
        ),
        (
            "PUT",
            format!("/api/v1/policies/{v}/p"),
            Body::Json(json!({"pattern": "(", "definition": {}})),
        ),
        (
            "PUT",
            format!("/api/v1/policies/{v}/p"),
            Body::Raw("{\"pattern\":"),
        ),
        (
            "POST",
            "/api/v1/alerts".into(),
            Body::Json(
                json!({"name": "a", "condition": {"kind": "queue", "queue": "(", "metric": "ready", "op": "above", "threshold": 1}, "webhook_url": "http://127.0.0.1:1/"}),
            ),
        ),
        (
            "POST",
            "/api/v1/alerts".into(),
            Body::Json(
                json!({"name": "a", "condition": {"kind": "finding", "severity": "critical"}, "webhook_url": "ftp://example.org/"}),
            ),
        ),
        ("POST", "/api/v1/advisor/abc/fix".into(), Body::None),
        ("DELETE", "/api/v1/alerts/99999999999999999999".into(), Body::None),
    ];
    let mut failures = Vec::new();
    for (method, path, body) in &cases {
        let mut req = app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", app.base));
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(v),
            Body::Raw(s) => req.header("content-type", "application/json").body(*s),
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let error = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        if !(400..500).contains(&status) || error.as_deref().is_none_or(str::is_empty) {
            failures.push(format!("{method} {path} → {status} {text}"));
        }
    }
    assert!(failures.is_empty(), "not a clear 4xx:\n{}", failures.join("\n"));

    // Nothing changed.
    let (_, d) = app.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(d["status"], "failed");
    assert_eq!(d["history"], json!([]));
    assert_eq!(app.get("/api/v1/jobs").await.1, json!([]));
    assert_eq!(app.get("/api/v1/alerts").await.1, json!([]));
    let (_, policies) = vh.mgmt(&format!("policies/{v}")).await;
    assert_eq!(policies, json!([]));
    app.stop().await;
}
