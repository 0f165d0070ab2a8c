//! REST surface: queues, health probes, paging, and discovery of new queues.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;

#[tokio::test]
async fn queues_lists_every_queue_of_the_vhost_with_watched_flags() {
    let (vh, _db, app) = with_queues(&["payments.error.queue", "payments.work"], &[]).await;
    let (status, queues) = app.get("/api/v1/queues").await;
    assert_eq!(status, 200, "{queues}");
    assert!(queues["freshness"]["error"].is_null(), "{queues}");
    let queues = queues["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2, "{queues:?}");
    let find = |name: &str| queues.iter().find(|q| q["name"] == name).unwrap().clone();
    let err = find("payments.error.queue");
    assert_eq!(err["watched"], true);
    assert_eq!(err["vhost"], vh.name.as_str());
    assert_eq!(err["type"], "classic");
    assert_eq!(err["durable"], true);
    assert!(err["messages_ready"].is_i64() && err["messages_unacknowledged"].is_i64());
    // Redrive itself consumes the watched queue.
    wait_until(Duration::from_secs(10), || async {
        let (_, qs) = app.get("/api/v1/queues").await;
        qs["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "payments.error.queue" && q["consumers"] == 1)
    })
    .await;
    assert_eq!(find("payments.work")["watched"], false);
    app.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let vh = TestVhost::new().await;
    let db = TestDb::new();
    let app = TestApp::start(config(&vh, &db, &[])).await;
    assert_eq!(app.get("/healthz").await.0, 200);
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    // `redrive healthcheck` (the container's HEALTHCHECK) asks the same.
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    server::healthcheck::probe(addr).await.unwrap();
    app.stop().await;
    assert!(
        server::healthcheck::probe(addr).await.is_err(),
        "a stopped Redrive is unhealthy"
    );

    let db = TestDb::new();
    let app = TestApp::start(config(&vh, &db, &["--management-url=http://127.0.0.1:9"])).await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body["error"].as_str().unwrap().contains("broker"), "{body}");
    assert_eq!(app.get("/healthz").await.0, 200);
    let (status, body) = app.get("/api/v1/queues").await;
    assert_eq!(status, 503, "{body}");
    app.stop().await;

    let db = TestDb::new();
    let app = TestApp::start(config(
        &vh,
        &db,
        &["--amqp-url=amqp://guest:guest@127.0.0.1:9/%2f"],
    ))
    .await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body["error"].as_str().unwrap().contains("AMQP"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn cursor_paging_walks_newest_first_without_gaps_or_repeats() {
    let (mut vh, _db, app) = with_queues(&["paging.dlq"], &[]).await;
    for i in 0..7 {
        vh.publish(
            "",
            "paging.dlq",
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    app.wait_for_messages("paging.dlq", 7).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/messages?queue=paging.dlq&limit=3&cursor={c}"),
            None => "/api/v1/messages?queue=paging.dlq&limit=3".into(),
        };
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200);
        assert_eq!(page["total"], 7);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first: {seen:?}");

    let (_, found) = app.get("/api/v1/messages?q=m3").await;
    assert_eq!(found["total"], 1);
    let (_, none) = app.get("/api/v1/messages?queue=other.dlq").await;
    assert_eq!(none["total"], 0);
    app.stop().await;
}

#[tokio::test]
async fn a_new_error_queue_is_picked_up_without_a_restart() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    let app = TestApp::start(config(&vh, &db, &[])).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    vh.declare_queue("late.error.queue", FieldTable::default()).await;
    vh.publish("", "late.error.queue", b"late", BasicProperties::default())
        .await;
    let items = app.wait_for_messages("late.error.queue", 1).await;
    assert_eq!(items[0]["status"], "failed");
    app.stop().await;
}

#[tokio::test]
async fn full_text_search_covers_body_reason_trace_ids_and_header_values() {
    let (mut vh, _db, app) = with_queues(&["search.dlq"], &[]).await;
    let with = |mid: &str, h: &[(&str, lapin::types::AMQPValue)]| {
        BasicProperties::default()
            .with_message_id(mid.into())
            .with_headers(headers(h))
    };
    vh.publish(
        "",
        "search.dlq",
        br#"{"customer":"Wile E. Coyote"}"#,
        with("ord-1001", &[]),
    )
    .await;
    vh.publish(
        "",
        "search.dlq",
        b"{}",
        with(
            "ord-1002",
            &[
                ("tenant", s("globex")),
                ("x-exception-message", s("Insufficient funds")),
            ],
        ),
    )
    .await;
    vh.publish(
        "",
        "search.dlq",
        b"{}",
        with(
            "ord-1003",
            &[("x-exception-stacktrace", s("at com.acme.Billing.charge"))],
        ),
    )
    .await;
    app.wait_for_messages("search.dlq", 3).await;

    for (q, expected) in [
        ("coyote", "ord-1001"),
        ("ord-1002", "ord-1002"),
        ("globex", "ord-1002"),
        ("insufficient FUNDS", "ord-1002"),
        ("Billing", "ord-1003"),
    ] {
        let (status, page) = app.get(&format!("/api/v1/messages?q={}", enc(q))).await;
        assert_eq!(status, 200, "{q}: {page}");
        assert_eq!(page["total"], 1, "{q}: {page}");
        let id = &page["items"][0]["id"];
        let (_, d) = app.get(&format!("/api/v1/messages/{id}")).await;
        assert_eq!(d["properties"]["message_id"], expected, "{q}");
    }
    // Search syntax characters are plain text, never a query error.
    for q in [r#"a"b"#, "*", "NOT", "(x", "ord-1001 OR"] {
        let (status, body) = app.get(&format!("/api/v1/messages?q={}", enc(q))).await;
        assert_eq!(status, 200, "{q}: {body}");
    }
    let (_, page) = app.get("/api/v1/messages?q=nothing-like-this").await;
    assert_eq!(page["total"], 0);
    app.stop().await;
}

/// Server functions answer an error with its kind's status and the typed
/// error itself, so the UI (and anyone else) can tell not found from
/// forbidden from outcome unknown: an unknown id is a 404, not a 500.
#[tokio::test]
async fn server_functions_answer_with_the_errors_kind() {
    let vh = TestVhost::new().await;
    let db = TestDb::new();
    let app = TestApp::start(config(&vh, &db, &[])).await;
    use app::api::{GetJob, GetMessage};
    use leptos::server_fn::ServerFn;
    let call = |path: &str, id: &str| {
        app.http
            .post(format!("{}{path}", app.base))
            .form(&[("id", id)])
            .send()
    };
    let r = call(GetMessage::PATH, "987654").await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"NotFound": "message 987654 not found"}));

    let r = call(GetMessage::PATH, "not-a-number").await.unwrap();
    assert_eq!(
        r.status(),
        400,
        "arguments the server cannot read are the caller's mistake"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body.get("BadRequest").is_some(), "{body}");

    let r = call(GetJob::PATH, "987654").await.unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}
