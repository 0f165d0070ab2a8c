//! Tap mode against the real broker: Redrive stores a copy of every
//! failure while the service's queue keeps its messages and consumers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use lapin::options::{BasicConsumeOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use serde_json::json;
use testkit::spring::{failure, seq_of};

const QUEUE: &str = "trade-service.error.queue";
const TAP: &str = "redrive.tap.trade-service.error.queue";

/// `error.direct` and the service's error queue, as Spring declares them.
async fn spring_topology(vh: &mut TestVhost) {
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_queue(QUEUE, FieldTable::default()).await;
    vh.bind(QUEUE, "error.direct", "trade-service").await;
}

/// The tap's bindings other than the default exchange's, as `(source, key)`.
async fn tap_bindings(vh: &TestVhost) -> Vec<(String, String)> {
    let (status, list) = vh
        .mgmt(&format!("queues/{}/{}/bindings", enc(&vh.name), enc(TAP)))
        .await;
    if status != 200 {
        return Vec::new();
    }
    let mut out: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["source"] != "")
        .map(|b| {
            (
                b["source"].as_str().unwrap().to_owned(),
                b["routing_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn wait_for_tap(vh: &TestVhost, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    wait_until(Duration::from_secs(15), || async {
        tap_bindings(vh).await == want
    })
    .await;
}

/// How many rows Redrive holds for each failure `seq`.
async fn stored_seqs(db: &TestDb) -> BTreeMap<u64, usize> {
    use sqlx::Row;
    let mut conn = db.raw_connection().await;
    let rows = sqlx::query("SELECT body FROM message_contents")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for r in rows {
        let body: Vec<u8> = r.get(0);
        *out.entry(seq_of(&body).expect("a numbered failure")).or_default() += 1;
    }
    out
}

/// Waits until the service's queue's depth satisfies `check`.
async fn depth_until(vh: &mut TestVhost, timeout: Duration, check: impl Fn(u32) -> bool) {
    let start = std::time::Instant::now();
    loop {
        let depth = vh.depth(QUEUE).await;
        if check(depth) {
            return;
        }
        assert!(start.elapsed() < timeout, "{QUEUE} stayed at {depth}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stored rows by where their original is (`consumed` for none).
async fn tap_states(db: &TestDb) -> BTreeMap<String, i64> {
    use sqlx::Row;
    let mut conn = db.raw_connection().await;
    let rows = sqlx::query("SELECT COALESCE(tap, 'consumed'), COUNT(*) FROM messages GROUP BY 1")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect()
}

/// Asserts that every failure in `expected` is stored exactly once.
fn assert_each_once(seqs: &BTreeMap<u64, usize>, expected: impl Iterator<Item = u64>) {
    let twice: Vec<_> = seqs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let expected: Vec<u64> = expected.collect();
    let missing: Vec<&u64> = expected.iter().filter(|i| !seqs.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "lost {} of {}: {missing:?}",
        missing.len(),
        expected.len()
    );
}

/// An operator's mode switch through the API.
async fn set_mode(app: &TestApp, watch: &str, mode: &str) {
    let (status, body) = app
        .as_user(Some(("guest", "guest")))
        .send(
            reqwest::Method::PUT,
            watch,
            Some(json!({"watch": true, "mode": mode})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
}

async fn stored_total(app: &TestApp, queue: &str) -> i64 {
    let (_, page) = app
        .get(&format!(
            "/api/v1/messages?queue={}&limit=1&exact=true",
            enc(queue)
        ))
        .await;
    page["total"].as_i64().unwrap_or(0)
}

#[tokio::test]
async fn tap_mode_stores_each_failure_once_and_leaves_all_of_them_to_the_service() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    spring_topology(&mut vh).await;
    let app = TestApp::start(config(&vh, &db, &["--capture-mode=tap"])).await;
    wait_for_tap(&vh, &[("error.direct", "trade-service")]).await;

    vh.inner()
        .publish_all("error.direct", "trade-service", (0..1000).map(failure))
        .await
        .unwrap();
    wait_until(Duration::from_secs(30), || async {
        stored_total(&app, QUEUE).await == 1000
    })
    .await;
    let seqs = stored_seqs(&db).await;
    assert_eq!(seqs.len(), 1000);
    assert!(seqs.values().all(|n| *n == 1), "each failure stored once");
    // The service's queue still holds every one.
    assert_eq!(vh.depth(QUEUE).await, 1000);

    // What the API says about it.
    let row = app.queue_row(&vh.name, QUEUE).await;
    assert_eq!(row["capture_mode"], "tap");
    assert_eq!(row["tap"]["tap_queue"], TAP);
    let tap_row = app.queue_row(&vh.name, TAP).await;
    assert_eq!(tap_row["watched"], false, "a tap is never captured as itself");
    assert!(
        tap_row["watch_reason"]
            .as_str()
            .unwrap()
            .contains("Redrive's tap"),
        "{tap_row}"
    );
    let (_, page) = app
        .get(&format!("/api/v1/messages?queue={}&limit=1", enc(QUEUE)))
        .await;
    let id = page["items"][0]["id"].as_i64().unwrap();
    let (_, detail) = app.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(detail["tap"], "in_queue");
    // Discarding a copy discards Redrive's copy only.
    let (status, body) = app.post(&format!("/api/v1/messages/{id}/discard"), None).await;
    assert!(status < 300, "{status} {body}");
    assert_eq!(vh.depth(QUEUE).await, 1000, "the originals stay");
    // A tap cannot be switched on as a queue of its own.
    let (status, body) = app
        .as_user(Some(("guest", "guest")))
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/queues/{}/{}/watch", enc(&vh.name), enc(TAP)),
            Some(json!({"watch": true})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // And a second consumer of the queue (the service's) receives them all.
    let got: std::collections::BTreeSet<u64> = vh
        .drain(QUEUE, 1000)
        .await
        .iter()
        .filter_map(|d| seq_of(&d.data))
        .collect();
    assert_eq!(got.len(), 1000, "a second consumer receives all 1,000");
    app.stop().await;
}

#[tokio::test]
async fn a_tapped_dead_letter_queue_keeps_its_rejected_messages() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("orders.dlx", ExchangeKind::Direct).await;
    vh.declare_queue("orders.dlq", FieldTable::default()).await;
    vh.bind("orders.dlq", "orders.dlx", "orders.work").await;
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("orders.dlx".into()),
    );
    vh.declare_queue("orders.work", args).await;
    let app = TestApp::start(config(&vh, &db, &["--capture-mode=tap"])).await;
    wait_until(Duration::from_secs(15), || async {
        vh.mgmt(&format!("queues/{}/redrive.tap.orders.dlq", enc(&vh.name)))
            .await
            .0
            == 200
    })
    .await;
    wait_until(Duration::from_secs(15), || async {
        let (_, b) = vh
            .mgmt(&format!(
                "queues/{}/redrive.tap.orders.dlq/bindings",
                enc(&vh.name)
            ))
            .await;
        b.as_array()
            .is_some_and(|b| b.iter().any(|b| b["source"] == "orders.dlx"))
    })
    .await;
    for i in 0..5 {
        let (body, props) = failure(i);
        vh.publish("", "orders.work", &body, props).await;
    }
    // The service rejects them: the broker dead-letters each one.
    let ch = vh.channel().await;
    let mut consumer = ch
        .basic_consume(
            "orders.work".into(),
            "service".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..5 {
        let d = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut consumer))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        d.nack(BasicNackOptions {
            requeue: false,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let stored = app.wait_for_messages("orders.dlq", 5).await;
    assert!(stored.iter().all(|m| m["death_count"] == 1), "{stored:?}");
    assert_eq!(
        vh.depth("orders.dlq").await,
        5,
        "the dead-letter queue keeps its messages"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_tap_follows_the_queues_bindings_and_goes_when_the_queue_does() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    spring_topology(&mut vh).await;
    vh.declare_exchange("errors.topic", ExchangeKind::Topic).await;
    let app = TestApp::start(config(&vh, &db, &["--capture-mode=tap"])).await;
    wait_for_tap(&vh, &[("error.direct", "trade-service")]).await;

    // A binding added to the queue is followed within a discovery interval (0.3 s here).
    vh.bind(QUEUE, "errors.topic", "trade.#").await;
    let started = std::time::Instant::now();
    wait_for_tap(
        &vh,
        &[("error.direct", "trade-service"), ("errors.topic", "trade.#")],
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "followed in {:?}",
        started.elapsed()
    );
    let (body, props) = failure(1);
    vh.publish("errors.topic", "trade.booking", &body, props).await;
    app.wait_for_messages(QUEUE, 1).await;

    // And a binding removed from it.
    let ch = vh.channel().await;
    ch.queue_unbind(
        QUEUE.into(),
        "error.direct".into(),
        "trade-service".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    wait_for_tap(&vh, &[("errors.topic", "trade.#")]).await;

    // The queue goes: what the tap holds is stored, then the tap goes too.
    let (body, props) = failure(2);
    vh.publish("errors.topic", "trade.booking", &body, props).await;
    let path = format!("queues/{}/{}", enc(&vh.name), enc(QUEUE));
    let status = vh.inner().mgmt.delete(&path).await.unwrap();
    assert_eq!(status, 204);
    wait_until(Duration::from_secs(15), || async {
        vh.mgmt(&format!("queues/{}/{}", enc(&vh.name), enc(TAP))).await.0 == 404
    })
    .await;
    assert_eq!(stored_seqs(&db).await, BTreeMap::from([(1, 1), (2, 1)]));
    app.stop().await;
}

/// Publishes numbered failures to the service's route until told to stop;
/// returns how many.
fn steady_flow(
    mut vh: testkit::Vhost,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let ch = vh.confirming_channel().await.unwrap();
        let mut n = 0;
        while !stop.is_cancelled() {
            let batch: Vec<(Vec<u8>, BasicProperties)> = (n..n + 10).map(|i| failure(i as usize)).collect();
            testkit::publish_all(&ch, "error.direct", "trade-service", batch)
                .await
                .unwrap();
            n += 10;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        n
    })
}

#[tokio::test]
async fn switching_between_consume_and_tap_under_a_steady_flow_loses_nothing_and_stores_nothing_twice() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    spring_topology(&mut vh).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    let row = app.queue_row(&vh.name, QUEUE).await;
    assert_eq!(row["capture_mode"], "consume");
    let publisher = testkit::Vhost::named(vh.name.clone()).await;
    let publisher = match publisher {
        Ok(p) => p,
        Err(_) => panic!("a second handle on the test vhost"),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let flow = steady_flow(publisher, stop.clone());
    let watch = format!("/api/v1/queues/{}/{}/watch", enc(&vh.name), enc(QUEUE));
    tokio::time::sleep(Duration::from_secs(2)).await;

    set_mode(&app, &watch, "tap").await;
    // The tap takes over: the queue's originals stay in it from then on.
    depth_until(&mut vh, Duration::from_secs(20), |d| d > 50).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    set_mode(&app, &watch, "consume").await;
    // Redrive takes the queue back: the tap goes, the originals are taken.
    wait_until(Duration::from_secs(20), || async {
        vh.mgmt(&format!("queues/{}/{}", enc(&vh.name), enc(TAP))).await.0 == 404
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let published = flow.await.unwrap();
    eprintln!("published {published} failures under the switches");
    wait_until(Duration::from_secs(30), || async {
        stored_total(&app, QUEUE).await >= published as i64
    })
    .await;
    depth_until(&mut vh, Duration::from_secs(10), |d| d == 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seqs = stored_seqs(&db).await;
    assert_each_once(&seqs, 0..published);
    assert_eq!(seqs.len() as u64, published);
    // All three ways in were taken: consumed, copied, and copies that
    // answered for their originals when Redrive took the queue back.
    let ways = tap_states(&db).await;
    for way in ["consumed", "taken"] {
        assert!(ways.get(way).is_some_and(|n| *n > 0), "{ways:?}");
    }
    // Switches are audited with the mode.
    let (_, audit) = app.get("/api/v1/audit?action=watch_change").await;
    assert!(audit.to_string().contains("Tap"), "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn a_refused_tap_says_which_permission_is_missing_and_starts_once_granted() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    spring_topology(&mut vh).await;
    // Redrive's AMQP user may read and write but configure nothing.
    let user = BrokerUser::create("", &[(&vh.name, "", ".*", ".*")]).await;
    let url = format!(
        "--amqp-url=amqp://{}:{}@127.0.0.1:5672/{}",
        user.name,
        user.password,
        enc(&vh.name)
    );
    let app = TestApp::start(config(&vh, &db, &["--capture-mode=tap", &url])).await;
    let error = wait_for(Duration::from_secs(15), || async {
        let row = app.queue_row(&vh.name, QUEUE).await;
        row["capture"]["last_error"].as_str().map(str::to_owned)
    })
    .await;
    assert!(
        error.contains("`configure`") && error.contains(r"^redrive\.tap\."),
        "{error}"
    );
    // Nothing was taken from the service's queue meanwhile.
    let (body, props) = failure(1);
    vh.publish("error.direct", "trade-service", &body, props).await;
    assert_eq!(vh.depth(QUEUE).await, 1);

    let grant = vh
        .http
        .put(format!(
            "{MGMT}/api/permissions/{}/{}",
            enc(&vh.name),
            enc(&user.name)
        ))
        .basic_auth("guest", Some("guest"))
        .json(&json!({"configure": r"^redrive\.tap\.", "write": ".*", "read": ".*"}))
        .send()
        .await
        .unwrap();
    assert!(grant.status().is_success());
    wait_for_tap(&vh, &[("error.direct", "trade-service")]).await;
    let (body, props) = failure(2);
    vh.publish("error.direct", "trade-service", &body, props).await;
    app.wait_for_messages(QUEUE, 1).await;
    assert_eq!(
        stored_seqs(&db).await,
        BTreeMap::from([(2, 1)]),
        "the earlier message is not copied"
    );
    assert_eq!(vh.depth(QUEUE).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_quorum_queues_tap_is_a_quorum_queue() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    vh.declare_queue(QUEUE, args).await;
    vh.bind(QUEUE, "error.direct", "trade-service").await;
    let app = TestApp::start(config(&vh, &db, &["--capture-mode=tap"])).await;
    wait_for_tap(&vh, &[("error.direct", "trade-service")]).await;
    let tap = vh.queue_info(TAP).await;
    assert_eq!(tap["type"], "quorum", "{tap}");
    assert_eq!(tap["durable"], true);
    let (body, props) = failure(7);
    vh.publish("error.direct", "trade-service", &body, props).await;
    app.wait_for_messages(QUEUE, 1).await;
    assert_eq!(vh.depth(QUEUE).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_switch_to_tap_cut_short_by_a_restart_resumes_at_the_same_marker() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    spring_topology(&mut vh).await;
    // A backlog ahead of the marker keeps the switch under way long enough
    // to stop Redrive in the middle of it.
    const BACKLOG: usize = 20_000;
    const FIRST: usize = 1_000_000;
    vh.inner()
        .publish_all(
            "error.direct",
            "trade-service",
            (FIRST..FIRST + BACKLOG).map(failure),
        )
        .await
        .unwrap();
    let app = TestApp::start(config(&vh, &db, &[])).await;
    app.queue_row(&vh.name, QUEUE).await;
    let publisher = testkit::Vhost::named(vh.name.clone())
        .await
        .expect("a second handle");
    let stop = tokio_util::sync::CancellationToken::new();
    let flow = steady_flow(publisher, stop.clone());
    let watch = format!("/api/v1/queues/{}/{}/watch", enc(&vh.name), enc(QUEUE));
    set_mode(&app, &watch, "tap").await;
    // Stopped as soon as the switch is recorded, before it can finish.
    wait_until(Duration::from_secs(10), || async {
        use sqlx::Row;
        let mut conn = db.raw_connection().await;
        let row = sqlx::query("SELECT COUNT(*) FROM capture_switches")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        row.get::<i64, _>(0) > 0
    })
    .await;
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    depth_until(&mut vh, Duration::from_secs(20), |d| d > 50).await;
    stop.cancel();
    let published = flow.await.unwrap();
    wait_until(Duration::from_secs(60), || async {
        stored_total(&app, QUEUE).await >= (published as usize + BACKLOG) as i64
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seqs = stored_seqs(&db).await;
    assert_each_once(
        &seqs,
        (0..published).chain(FIRST as u64..(FIRST + BACKLOG) as u64),
    );
    // The resumed switch finishes: both sides pass the marker.
    wait_until(Duration::from_secs(30), || async {
        use sqlx::Row;
        let mut conn = db.raw_connection().await;
        sqlx::query("SELECT COUNT(*) FROM capture_switches")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get::<i64, _>(0)
            == 0
    })
    .await;
    // The service's queue holds the originals since the cut, and no marker.
    app.stop().await;
    let depth = vh.depth(QUEUE).await as usize;
    let left = vh.drain(QUEUE, depth).await;
    let markers = left
        .iter()
        .filter(|d| {
            d.properties
                .headers()
                .as_ref()
                .is_some_and(|h| h.inner().contains_key("x-redrive-tap-marker"))
        })
        .count();
    assert_eq!(markers, 0, "a marker was left in {QUEUE}");
}
