//! Bulk replay jobs against the real broker: dry run, rate cap, pause/resume,
//! a restart of Redrive in the middle, and every message delivered exactly once.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use serde_json::{json, Value};

const TOTAL: usize = 5_000;

async fn job(app: &TestApp, id: &Value) -> Value {
    let (status, job) = app.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(status, 200, "{job}");
    job
}

async fn wait_for_job(app: &TestApp, id: &Value, done: impl Fn(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        let j = job(app, id).await;
        if done(&j) {
            return j;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "job stuck: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_replay_job_pauses_resumes_survives_a_restart_and_delivers_exactly_once() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_queue("orders.error.queue", FieldTable::default())
        .await;
    vh.bind("orders.error.queue", "error.direct", "orders").await;
    vh.declare_exchange("orders.x", ExchangeKind::Direct).await;
    vh.declare_queue("orders.in", FieldTable::default()).await;
    vh.bind("orders.in", "orders.x", "new").await;

    let ch = vh.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    for i in 0..TOTAL {
        let props = BasicProperties::default()
            .with_message_id(format!("m-{i}").into())
            .with_headers(headers(&[
                ("x-exception-message", s(&format!("Order {i} could not be saved"))),
                ("x-original-exchange", s("orders.x")),
                ("x-original-routingKey", s("new")),
            ]));
        ch.basic_publish(
            "error.direct".into(),
            "orders".into(),
            BasicPublishOptions::default(),
            format!(r#"{{"order":{i}}}"#).as_bytes(),
            props,
        )
        .await
        .unwrap();
    }
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());

    let app = TestApp::start(config(&vh, &db, &[])).await;
    wait_until(Duration::from_secs(60), || async {
        app.get("/api/v1/messages?queue=orders.error.queue&limit=1")
            .await
            .1["total"]
            == TOTAL
    })
    .await;
    let (_, groups) = app.get("/api/v1/groups").await;
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
    let group = groups[0]["id"].clone();

    // Dry run: how many, to where; nothing changes.
    let request = json!({"action": "replay", "group": group, "rate_per_sec": 1500, "dry_run": true});
    let (status, dry) = app.post("/api/v1/jobs", Some(request)).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["total"], TOTAL);
    assert_eq!(
        dry["destinations"],
        json!([{
            "vhost": vh.name, "exchange": "orders.x", "routing_key": "new", "count": TOTAL,
            "queues": ["orders.in"], "fans_out": false, "copies_in_queue": 0
        }])
    );
    assert_eq!(dry["copies_in_queue"], 0, "{dry}");
    assert_eq!(app.get("/api/v1/jobs").await.1, json!([]));
    assert_eq!(vh.depth("orders.in").await, 0);

    let request = json!({"action": "replay", "group": group, "rate_per_sec": 1500});
    let (status, created) = app.post("/api/v1/jobs", Some(request)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].clone();
    assert_eq!(created["total"], TOTAL);
    assert_eq!(created["actor"], "guest");

    wait_for_job(&app, &id, |j| j["done"].as_u64().unwrap() >= 300).await;
    let (status, paused) = app.post(&format!("/api/v1/jobs/{id}/pause"), None).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["state"], "paused");
    // A pause takes effect within a second: what was in flight is settled.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let at_pause = job(&app, &id).await["done"].clone();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        job(&app, &id).await["done"],
        at_pause,
        "a paused job makes no progress"
    );
    let (status, _) = app.post(&format!("/api/v1/jobs/{id}/pause"), None).await;
    assert_eq!(status, 409, "pausing a paused job is a conflict");

    let (status, resumed) = app.post(&format!("/api/v1/jobs/{id}/resume"), None).await;
    assert_eq!(status, 200, "{resumed}");
    let before_stop = wait_for_job(&app, &id, |j| j["done"].as_u64().unwrap() >= 1_500).await;
    assert_eq!(before_stop["state"], "running");

    // Redrive restarts in the middle of the job.
    app.stop().await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    let done = wait_for_job(&app, &id, |j| j["state"] == "completed").await;
    let (_, problems) = app.get(&format!("/api/v1/jobs/{id}/problems")).await;
    assert_eq!(done["done"], TOTAL, "{done}\nproblems: {problems}");
    assert_eq!(done["failed"], 0);
    assert_eq!(done["remaining"], 0);
    assert!(done["finished_at"].is_string());
    let (_, page) = app.get("/api/v1/messages?status=replayed&limit=1").await;
    assert_eq!(page["total"], TOTAL, "problems: {problems}");

    // Exactly once: every message id arrived, none twice.
    assert_eq!(vh.depth("orders.in").await as usize, TOTAL);
    let mut seen = HashSet::new();
    for copy in vh.drain("orders.in", TOTAL).await {
        let mid = copy.properties.message_id().as_ref().unwrap().to_string();
        assert!(seen.insert(mid.clone()), "{mid} delivered twice");
    }
    assert_eq!(seen.len(), TOTAL);

    let (_, jobs) = app.get("/api/v1/jobs").await;
    assert_eq!(jobs[0]["id"], id);
    let (status, _) = app.post(&format!("/api/v1/jobs/{id}/cancel"), None).await;
    assert_eq!(status, 409, "a completed job cannot be cancelled");
    app.stop().await;
}

#[tokio::test]
async fn job_requests_are_validated_and_discard_jobs_work() {
    let (mut vh, _db, app) = with_queues(&["x.dlq"], &[]).await;
    for i in 0..3 {
        vh.publish("", "x.dlq", format!("{i}").as_bytes(), BasicProperties::default())
            .await;
    }
    let ids: Vec<i64> = app
        .wait_for_messages("x.dlq", 3)
        .await
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();

    for (bad, why) in [
        (json!({"action": "replay"}), "no selection"),
        (
            json!({"action": "replay", "ids": [1], "group": "g"}),
            "two selections",
        ),
        (
            json!({"action": "replay", "ids": ids, "rate_per_sec": 0}),
            "zero rate",
        ),
        (
            json!({"action": "discard", "ids": ids, "exchange": "x"}),
            "discard with a target",
        ),
        (json!({"action": "explode", "ids": ids}), "unknown action"),
        (json!({"action": "replay", "ids": [999999]}), "nothing matches"),
        (
            json!({"action": "replay", "filter": {"from": "soon"}}),
            "bad time",
        ),
    ] {
        let (status, body) = app.post("/api/v1/jobs", Some(bad)).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert!(body["error"].is_string(), "{why}");
    }
    assert_eq!(app.get("/api/v1/jobs/12345").await.0, 404);
    assert_eq!(app.get("/api/v1/jobs/12345/problems").await.0, 404);

    assert_eq!(
        app.get("/api/v1/jobs").await.1,
        json!([]),
        "bad requests created nothing"
    );

    // The largest selection the API takes (100,000 ids, more than SQLite's
    // and PostgreSQL's bind-parameter limits) is one query that selects
    // what exists; a dry run shows it without writing anything.
    let mut many: Vec<i64> = (1_000_000..1_099_997).collect();
    many.extend(&ids);
    let (status, dry) = app
        .post(
            "/api/v1/jobs",
            Some(json!({"action": "discard", "ids": many, "dry_run": true})),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["total"], 3, "{dry}");
    many.push(1);
    let (status, _) = app
        .post("/api/v1/jobs", Some(json!({"action": "discard", "ids": many})))
        .await;
    assert_eq!(status, 400, "100,001 ids are refused");

    // A replay job to an exchange nobody binds: every message fails, visibly, and stays failed.
    let (status, created) = app
        .post(
            "/api/v1/jobs",
            Some(json!({"action": "replay", "ids": ids, "exchange": "amq.direct", "routing_key": "nobody"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let done = wait_for_job(&app, &created["id"], |j| j["state"] == "completed").await;
    assert_eq!(
        (done["done"].as_i64(), done["failed"].as_i64()),
        (Some(0), Some(3))
    );
    let (_, problems) = app.get(&format!("/api/v1/jobs/{}/problems", created["id"])).await;
    let problems = problems.as_array().unwrap();
    assert_eq!(problems.len(), 3);
    assert!(problems
        .iter()
        .all(|p| p["state"] == "failed" && p["error"].as_str().unwrap().contains("NO_ROUTE")));
    let (_, page) = app.get("/api/v1/messages?status=failed").await;
    assert_eq!(page["total"], 3);

    let (status, created) = app
        .post(
            "/api/v1/jobs",
            Some(json!({"action": "discard", "filter": {"queue": "x.dlq"}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let done = wait_for_job(&app, &created["id"], |j| j["state"] == "completed").await;
    assert_eq!(done["done"], 3);
    let (_, page) = app.get("/api/v1/messages?status=discarded").await;
    assert_eq!(page["total"], 3);
    let (_, d) = app.get(&format!("/api/v1/messages/{}", ids[0])).await;
    let last = d["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "discard");
    assert_eq!(last["actor"], format!("guest (job {})", created["id"]));
    app.stop().await;
}

/// A second Redrive on the same SQLite file is refused before it touches
/// anything (it would sweep the first one's replays and drive its jobs);
/// once the first has stopped, it starts.
#[tokio::test]
async fn a_second_instance_on_one_sqlite_database_is_refused() {
    let vh = TestVhost::new().await;
    let db = TestDb::sqlite();
    let first = TestApp::start(config(&vh, &db, &[])).await;
    let refused = server::start(config(&vh, &db, &[]), tokio_util::sync::CancellationToken::new())
        .await
        .err()
        .expect("a second instance is refused")
        .to_string();
    assert!(
        refused.contains("another Redrive is already running"),
        "{refused}"
    );
    assert!(refused.contains(&db.path.display().to_string()), "{refused}");
    first.stop().await;
    TestApp::start(config(&vh, &db, &[])).await.stop().await;
}
