//! Tap mode against the real broker: Redrive stores a copy of every
//! failure while the service's queue keeps its messages and consumers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use lapin::options::{BasicConsumeOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::ExchangeKind;
use serde_json::json;
use testkit::spring::{failure, seq_of};

pub(crate) const QUEUE: &str = "trade-service.error.queue";
pub(crate) const TAP: &str = "redrive.tap.trade-service.error.queue";

/// `error.direct` and the service's error queue, as Spring declares them.
pub(crate) async fn spring_topology(vh: &mut TestVhost) {
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

pub(crate) async fn wait_for_tap(vh: &TestVhost, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    wait_until(Duration::from_secs(15), || async {
        tap_bindings(vh).await == want
    })
    .await;
}

/// How many rows Redrive holds for each failure `seq`.
pub(crate) async fn stored_seqs(db: &TestDb) -> BTreeMap<u64, usize> {
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
pub(crate) async fn depth_until(vh: &mut TestVhost, timeout: Duration, check: impl Fn(u32) -> bool) {
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

/// How many capture-mode switches are recorded (those matching `filter`,
/// an SQL condition, when given).
pub(crate) async fn switches_recorded(db: &TestDb, filter: Option<&str>) -> i64 {
    use sqlx::Row;
    let mut conn = db.raw_connection().await;
    let sql = match filter {
        Some(f) => format!("SELECT COUNT(*) FROM capture_switches WHERE {f}"),
        None => "SELECT COUNT(*) FROM capture_switches".to_owned(),
    };
    sqlx::query(&sql)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get::<i64, _>(0)
}

/// Stored rows by where their original is (`consumed` for none).
pub(crate) async fn tap_states(db: &TestDb) -> BTreeMap<String, i64> {
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
pub(crate) fn assert_each_once(seqs: &BTreeMap<u64, usize>, expected: impl Iterator<Item = u64>) {
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
/// Sets the queue's mode as the operator does; a change while the last
/// switch is still under way is refused (409), so it is asked again.
pub(crate) async fn set_mode(app: &TestApp, watch: &str, mode: &str) {
    let start = std::time::Instant::now();
    loop {
        let (status, body) = app
            .as_user(Some(("guest", "guest")))
            .send(
                reqwest::Method::PUT,
                watch,
                Some(json!({"watch": true, "mode": mode})),
            )
            .await;
        if status == 409 && start.elapsed() < Duration::from_secs(30) {
            assert!(body.to_string().contains("is switching to"), "{body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(status, 204, "{body}");
        return;
    }
}

pub(crate) async fn stored_total(app: &TestApp, queue: &str) -> i64 {
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
    // A bulk job's dry run counts the copies whose originals are queued.
    let (status, dry) = app
        .post(
            "/api/v1/jobs",
            Some(json!({"action": "replay", "filter": {"queue": QUEUE}, "dry_run": true})),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["total"], 1000, "{dry}");
    assert_eq!(dry["copies_in_queue"], 1000, "{dry}");
    assert_eq!(dry["destinations"][0]["copies_in_queue"], 1000, "{dry}");
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
