//! Replay plans against the real broker: a canary into a consumer that still
//! fails (it republishes to `error.direct` as Spring's recoverer does) and
//! into one that succeeds, an adaptive job that waits for a consumer, a
//! scheduled start across a restart, routes that fan out, replays to one
//! queue, and a selection fixed when the job is created.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::*;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicRejectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

const ERRORS: &str = "trade.error.queue";
const TRADE: &str = "trade.pay.success.queue";
const NOTIFY: &str = "notify.pay.success.queue";

/// `error.direct` → `trade.error.queue`, and `pay.topic` routing
/// `pay.success` to the trade service (and the notifier when `fan_out`).
async fn topology(fan_out: bool) -> (TestVhost, TestDb) {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_queue(ERRORS, FieldTable::default()).await;
    vh.bind(ERRORS, "error.direct", "trade").await;
    vh.declare_exchange("pay.topic", ExchangeKind::Topic).await;
    vh.declare_queue(TRADE, FieldTable::default()).await;
    vh.bind(TRADE, "pay.topic", "pay.success").await;
    if fan_out {
        vh.declare_queue(NOTIFY, FieldTable::default()).await;
        vh.bind(NOTIFY, "pay.topic", "pay.*").await;
    }
    (vh, db)
}

/// Spring's failure of payment `i` in the trade service.
fn failure(i: usize) -> (Vec<u8>, BasicProperties) {
    let (body, props) = testkit::spring::failure(i);
    let mut h = props.headers().clone().unwrap_or_default();
    h.insert("x-original-exchange".into(), s("pay.topic"));
    h.insert("x-original-routingKey".into(), s("pay.success"));
    (body, props.with_headers(h))
}

async fn fail(vh: &mut TestVhost, range: std::ops::Range<usize>) {
    for i in range {
        let (body, props) = failure(i);
        vh.publish("error.direct", "trade", &body, props).await;
    }
}

async fn job(app: &TestApp, id: &Value) -> Value {
    let (status, job) = app.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(status, 200, "{job}");
    job
}

async fn wait_job(app: &TestApp, id: &Value, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let j = job(app, id).await;
        if done(&j) {
            return j;
        }
        assert!(start.elapsed() < Duration::from_secs(secs), "job stuck: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, created) = app.post("/api/v1/jobs", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].clone()
}

/// A service whose bug is not fixed: every message it receives goes back to
/// `error.direct` with Spring's headers (and the ones it came with, as the
/// recoverer keeps them), then is acked.
async fn failing_service(vh: &mut TestVhost) -> (Channel, JoinHandle<()>) {
    let ch = vh.channel().await;
    let mut consumer = ch
        .basic_consume(
            TRADE.into(),
            "still-broken".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let publisher = ch.clone();
    let task = tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let mut h = d.properties.headers().clone().unwrap_or_default();
            h.insert("x-exception-message".into(), s("still broken"));
            h.insert("x-original-exchange".into(), s("pay.topic"));
            h.insert("x-original-routingKey".into(), s("pay.success"));
            let props = d.properties.clone().with_headers(h);
            publisher
                .basic_publish(
                    "error.direct".into(),
                    "trade".into(),
                    BasicPublishOptions::default(),
                    &d.data,
                    props,
                )
                .await
                .unwrap();
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
    });
    (ch, task)
}

/// A fixed service: counts what it receives by message id, and acks.
async fn working_service(vh: &mut TestVhost, queue: &str) -> (Channel, JoinHandle<HashMap<String, usize>>) {
    let ch = vh.channel().await;
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "fixed".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let mut seen = HashMap::new();
        while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(8), consumer.next()).await {
            let id = d
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            *seen.entry(id).or_insert(0) += 1;
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
        seen
    });
    (ch, task)
}

fn assert_once(seen: &HashMap<String, usize>, n: usize) {
    assert_eq!(seen.len(), n, "distinct messages received");
    assert!(
        seen.values().all(|&c| c == 1),
        "a message arrived twice: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_into_a_still_broken_service_pauses_and_into_a_fixed_one_ramps_to_the_end() {
    let (mut vh, db) = topology(false).await;
    fail(&mut vh, 0..60).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    app.wait_for_messages(ERRORS, 60).await;

    let (broken, task) = failing_service(&mut vh).await;
    let plan = json!({
        "action": "replay", "filter": {"queue": ERRORS},
        "canary": {"count": 5, "watch_seconds": 3, "max_failed_again": 0},
        "ramp": {"from": 10, "to": 200, "double_every_seconds": 1}
    });
    let id = create(&app, plan).await;
    let paused = wait_job(&app, &id, 60, |j| j["state"] == "paused").await;
    assert_eq!(paused["pause_reason"], "canary: 5 of 5 failed again", "{paused}");
    assert_eq!(paused["done"], 5, "no more than the canary went out: {paused}");
    assert_eq!(paused["canary_returned"].as_array().unwrap().len(), 5, "{paused}");
    assert_eq!(paused["canary"]["count"], 5);
    // The copies that came back are stored: the 60 plus 5.
    app.wait_for_messages(ERRORS, 65).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(job(&app, &id).await["done"], 5, "a paused job sends nothing more");

    // The fix ships: the service now succeeds, and the job goes on with a
    // new canary, then ramps and completes, every message once.
    broken.close(200, "fixed".into()).await.unwrap();
    task.abort();
    let (_fixed, received) = working_service(&mut vh, TRADE).await;
    let (status, resumed) = app.post(&format!("/api/v1/jobs/{id}/resume"), None).await;
    assert_eq!(status, 200, "{resumed}");
    let phases = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let done = {
        let phases = phases.clone();
        wait_job(&app, &id, 90, move |j| {
            if let Some(p) = j["phase"].as_str() {
                let mut v = phases.lock().unwrap();
                if v.last().map(String::as_str) != Some(p) {
                    v.push(p.to_owned());
                }
            }
            j["state"] == "completed"
        })
        .await
    };
    assert_eq!(done["done"], 60, "{done}");
    assert_eq!(done["failed"], 0, "{done}");
    let phases = phases.lock().unwrap().clone();
    assert!(phases.contains(&"ramping".to_owned()), "phases seen: {phases:?}");
    assert_once(&received.await.unwrap(), 55);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adaptive_job_waits_for_a_consumer_and_then_completes() {
    let (mut vh, db) = topology(false).await;
    fail(&mut vh, 0..30).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    app.wait_for_messages(ERRORS, 30).await;

    let id = create(
        &app,
        json!({"action": "replay", "filter": {"queue": ERRORS}, "adaptive": true}),
    )
    .await;
    let waiting = wait_job(&app, &id, 20, |j| j["waiting"].is_string()).await;
    assert_eq!(
        waiting["waiting"],
        format!("waiting: {TRADE} has no consumers"),
        "{waiting}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(vh.depth(TRADE).await <= 1, "published while no one consumes");
    assert!(job(&app, &id).await["done"].as_i64().unwrap() <= 1);

    let (_ch, received) = working_service(&mut vh, TRADE).await;
    let done = wait_job(&app, &id, 60, |j| j["state"] == "completed").await;
    assert_eq!(done["done"], 30, "{done}");
    assert!(done["waiting"].is_null(), "{done}");
    assert_once(&received.await.unwrap(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_job_waits_for_its_time_across_a_restart() {
    let (mut vh, db) = topology(false).await;
    fail(&mut vh, 0..30).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    let items = app.wait_for_messages(ERRORS, 30).await;
    let mut ids: Vec<i64> = items.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    ids.sort();

    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(20);
    let start_at = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let id = create(
        &app,
        json!({"action": "replay", "ids": ids[..10], "start_at": start_at}),
    )
    .await;
    let scheduled = job(&app, &id).await;
    assert_eq!(scheduled["state"], "scheduled", "{scheduled}");
    assert!(scheduled["start_at"].is_string());
    let (_, list) = app.get("/api/v1/jobs").await;
    assert_eq!(list[0]["state"], "scheduled", "listed with its time: {list}");

    // Another, far ahead, started by hand; a third cancelled.
    let later = (at + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let now_job = create(
        &app,
        json!({"action": "replay", "ids": ids[10..20], "start_at": later}),
    )
    .await;
    let cancel_job = create(
        &app,
        json!({"action": "replay", "ids": ids[20..], "start_at": later}),
    )
    .await;
    let (status, started) = app.post(&format!("/api/v1/jobs/{now_job}/start"), None).await;
    assert_eq!(status, 200, "{started}");
    wait_job(&app, &now_job, 30, |j| j["state"] == "completed").await;
    let (status, cancelled) = app.post(&format!("/api/v1/jobs/{cancel_job}/cancel"), None).await;
    assert_eq!((status, cancelled["state"].clone()), (200, json!("cancelled")));
    let (status, _) = app.post(&format!("/api/v1/jobs/{cancel_job}/start"), None).await;
    assert_eq!(status, 409, "only a scheduled job can be started");
    assert_eq!(vh.depth(TRADE).await, 10);

    // Redrive restarts before the time.
    app.stop().await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    assert_eq!(job(&app, &id).await["state"], "scheduled");
    while time::OffsetDateTime::now_utc() < at - time::Duration::seconds(1) {
        assert_eq!(vh.depth(TRADE).await, 10, "nothing before its time");
        assert_eq!(job(&app, &id).await["state"], "scheduled");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let done = wait_job(&app, &id, 60, |j| j["state"] == "completed").await;
    assert_eq!(done["done"], 10, "{done}");
    assert_eq!(vh.depth(TRADE).await, 20);
    assert_eq!(vh.depth(TRADE).await, 20, "the cancelled job sent nothing");
    let (_, audit) = app.get("/api/v1/audit?action=job_scheduled_start").await;
    assert_eq!(audit["items"][0]["result"], "ok", "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_a_route_that_fans_out_and_to_queue_reaches_one_queue() {
    let (mut vh, db) = topology(true).await;
    fail(&mut vh, 0..10).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    let items = app.wait_for_messages(ERRORS, 10).await;

    let (status, dry) = app
        .post(
            "/api/v1/jobs",
            Some(json!({"action": "replay", "filter": {"queue": ERRORS}, "dry_run": true})),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    let d = &dry["destinations"][0];
    assert_eq!(d["exchange"], "pay.topic");
    assert_eq!(d["queues"], json!([NOTIFY, TRADE]), "{dry}");
    assert_eq!(d["fans_out"], true);
    let (_, dry_one) = app
        .post(
            "/api/v1/jobs",
            Some(
                json!({"action": "replay", "filter": {"queue": ERRORS}, "dry_run": true, "to_queue": TRADE}),
            ),
        )
        .await;
    assert_eq!(dry_one["destinations"][0]["queues"], json!([TRADE]), "{dry_one}");
    assert_eq!(dry_one["destinations"][0]["fans_out"], false);

    let first = items[0]["id"].clone();
    let (status, body) = app
        .post(
            &format!("/api/v1/messages/{first}/replay"),
            Some(json!({"to_queue": TRADE})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post(
            &format!("/api/v1/messages/{}/replay", items[1]["id"]),
            Some(json!({"to_queue": TRADE, "exchange": "pay.topic"})),
        )
        .await;
    assert_eq!(status, 400, "one target at a time: {body}");
    let id = create(
        &app,
        json!({"action": "replay", "filter": {"queue": ERRORS}, "to_queue": TRADE}),
    )
    .await;
    let done = wait_job(&app, &id, 30, |j| j["state"] == "completed").await;
    assert_eq!(done["done"], 9, "{done}");
    assert_eq!(vh.depth(TRADE).await, 10);
    assert_eq!(vh.depth(NOTIFY).await, 0, "the notifier got no second copy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_original_queue_sends_each_dead_letter_back_where_it_died() {
    let (mut vh, db) = topology(false).await;
    for (work, dlq) in [("work.a", "work.a.dlq"), ("work.b", "work.b.dlq")] {
        vh.declare_exchange(&format!("{work}.dlx"), ExchangeKind::Fanout)
            .await;
        vh.declare_queue(dlq, FieldTable::default()).await;
        vh.bind(dlq, &format!("{work}.dlx"), "").await;
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(format!("{work}.dlx").into()),
        );
        vh.declare_queue(work, args).await;
    }
    // Both work queues take the same route: only the queue the message
    // died in tells them apart.
    vh.declare_exchange("shared.x", ExchangeKind::Fanout).await;
    vh.bind("work.a", "shared.x", "").await;
    vh.bind("work.b", "shared.x", "").await;
    let ch = vh.channel().await;
    for i in 0..3 {
        let props = BasicProperties::default().with_message_id(format!("d-{i}").into());
        vh.publish("shared.x", "", b"{}", props).await;
    }
    for work in ["work.a", "work.b"] {
        for _ in 0..3 {
            let got = ch
                .basic_get(work.into(), Default::default())
                .await
                .unwrap()
                .expect("a message to reject");
            got.delivery
                .reject(BasicRejectOptions { requeue: false })
                .await
                .unwrap();
        }
    }
    fail(&mut vh, 0..1).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    app.wait_for_messages("work.a.dlq", 3).await;
    app.wait_for_messages("work.b.dlq", 3).await;
    let spring = app.wait_for_messages(ERRORS, 1).await[0]["id"].clone();

    let (_, all) = app.get("/api/v1/messages?limit=50").await;
    let ids: Vec<Value> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids.len(), 7);
    let id = create(
        &app,
        json!({"action": "replay", "ids": ids, "to_original_queue": true}),
    )
    .await;
    let done = wait_job(&app, &id, 30, |j| j["state"] == "completed").await;
    assert_eq!(
        (done["done"].clone(), done["failed"].clone()),
        (json!(6), json!(1)),
        "{done}"
    );
    assert_eq!(vh.depth("work.a").await, 3);
    assert_eq!(vh.depth("work.b").await, 3);
    let (_, problems) = app.get(&format!("/api/v1/jobs/{id}/problems")).await;
    assert_eq!(problems[0]["message_id"], spring, "{problems}");
    assert!(
        problems[0]["error"]
            .as_str()
            .unwrap()
            .contains("dead-lettered from is unknown"),
        "{problems}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_captured_after_a_job_was_created_are_not_part_of_it() {
    let (mut vh, db) = topology(false).await;
    fail(&mut vh, 0..10).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    app.wait_for_messages(ERRORS, 10).await;
    let id = create(
        &app,
        json!({"action": "replay", "filter": {"queue": ERRORS}, "rate_per_sec": 4, "to_queue": TRADE}),
    )
    .await;
    fail(&mut vh, 10..20).await;
    app.wait_for_messages(ERRORS, 20).await;
    let done = wait_job(&app, &id, 30, |j| j["state"] == "completed").await;
    assert_eq!(
        (done["total"].clone(), done["done"].clone()),
        (json!(10), json!(10)),
        "{done}"
    );
    let (_, still) = app
        .get(&format!("/api/v1/messages?queue={ERRORS}&status=failed&limit=1"))
        .await;
    assert_eq!(still["total"], 10, "the later ten are still failed");
    assert_eq!(vh.depth(TRADE).await, 10);
}
