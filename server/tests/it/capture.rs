//! Capture everything that failed, and only that; never merge distinct
//! failures; keep capturing without the management API and through lost
//! connections. All against the real broker.

use std::time::{Duration, Instant};

use crate::common::*;
use lapin::options::BasicNackOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use serde_json::{json, Value};

const TRACE: &str = "org.springframework.amqp.rabbit.support.ListenerExecutionFailedException: Listener threw exception\n\
\tat org.springframework.amqp.rabbit.listener.AbstractMessageListenerContainer.wrapToListenerExecutionFailedExceptionIfNeeded(AbstractMessageListenerContainer.java:1771)\n\
Caused by: java.lang.IllegalStateException: Trade rejected\n\
\tat com.acme.trade.TradeService.book(TradeService.java:88)";

/// A failure as Spring's RepublishMessageRecoverer sends it, without a
/// message_id (Spring's default).
fn spring_failure() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers(&[
            ("x-exception-message", s("Trade rejected")),
            ("x-exception-stacktrace", s(TRACE)),
            ("x-original-exchange", s("trade.exchange")),
            ("x-original-routingKey", s("trade.created")),
        ]))
}

#[tokio::test]
async fn identical_failures_redelivered_are_stored_once_each() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_queue("error.queue", FieldTable::default()).await;
    vh.bind("error.queue", "error.direct", "error").await;
    for _ in 0..3 {
        vh.publish("error.direct", "error", br#"{"tradeId":42}"#, spring_failure())
            .await;
    }
    // A consumer takes all three and never acks: closing its channel makes
    // the broker redeliver them, flagged `redelivered`.
    {
        let ch = vh.channel().await;
        let mut consumer = ch
            .basic_consume(
                "error.queue".into(),
                "careless".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        for _ in 0..3 {
            let d = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut consumer))
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert!(!d.redelivered);
        }
        ch.close(200, "gone".into()).await.unwrap();
    }
    let app = TestApp::start(config(&vh, &db, &[])).await;
    let items = app.wait_for_messages("error.queue", 3).await;
    assert!(items.iter().all(|m| m["reason"] == "Trade rejected"));
    wait_until(Duration::from_secs(10), || async {
        vh.queue_info("error.queue").await["messages"] == 0
    })
    .await;
    // Nothing more arrives later: exactly three rows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.wait_for_messages("error.queue", 3).await.len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn spring_error_queue_and_policy_dead_letter_queue_are_captured_work_queues_are_not() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    // The Spring course's own names: plain error.queue on error.direct / error.
    vh.declare_exchange("error.direct", ExchangeKind::Direct).await;
    vh.declare_queue("error.queue", FieldTable::default()).await;
    vh.bind("error.queue", "error.direct", "error").await;
    // A parking queue behind a dead-letter exchange set by a policy.
    vh.declare_exchange("payments.dlx", ExchangeKind::Fanout).await;
    vh.declare_queue("payments.work", FieldTable::default()).await;
    vh.declare_queue("parking", FieldTable::default()).await;
    vh.bind("parking", "payments.dlx", "").await;
    let r = vh
        .http
        .put(format!("{MGMT}/api/policies/{}/payments-dlx", enc(&vh.name)))
        .basic_auth("guest", Some("guest"))
        .json(&json!({"pattern": "^payments\\.work$", "apply-to": "queues",
                      "definition": {"dead-letter-exchange": "payments.dlx"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // A retry loop: work dead-letters into a TTL delay queue that expires
    // back into orders.retry, consumed by the service itself.
    vh.declare_exchange("orders.wait", ExchangeKind::Fanout).await;
    vh.declare_exchange("orders.back", ExchangeKind::Fanout).await;
    vh.declare_queue(
        "orders.delay",
        headers(&[
            ("x-message-ttl", AMQPValue::LongInt(60_000)),
            ("x-dead-letter-exchange", s("orders.back")),
        ]),
    )
    .await;
    vh.bind("orders.delay", "orders.wait", "").await;
    vh.declare_queue(
        "orders.retry",
        headers(&[("x-dead-letter-exchange", s("orders.wait"))]),
    )
    .await;
    vh.bind("orders.retry", "orders.back", "").await;
    let service = vh.channel().await;
    let _own_consumer = service
        .basic_consume(
            "orders.retry".into(),
            "orders-service".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let app = TestApp::start(config(&vh, &db, &[])).await;
    vh.publish("error.direct", "error", b"{\"n\":1}", spring_failure())
        .await;
    vh.publish("", "payments.work", b"pay 1", BasicProperties::default())
        .await;
    let d = vh.next_delivery("payments.work").await;
    d.nack(BasicNackOptions {
        requeue: false,
        ..Default::default()
    })
    .await
    .unwrap();

    app.wait_for_messages("error.queue", 1).await;
    let parked = app.wait_for_messages("parking", 1).await;
    assert_eq!(parked[0]["reason"], "rejected");

    // The management API shows a policy on a queue's stats a few seconds
    // after it is set, so the queue list may take a refresh to agree with
    // capture.
    wait_until(Duration::from_secs(15), || async {
        app.queue_row(&vh.name, "parking").await["watched"] == true
    })
    .await;
    let q = app.queue_row(&vh.name, "parking").await;
    assert_eq!(
        q["watch_reason"],
        "dead-letter target of payments.work via policy payments-dlx"
    );
    let q = app.queue_row(&vh.name, "error.queue").await;
    assert_eq!(q["watch_reason"], "name matches REDRIVE_WATCH");
    for work in ["orders.delay", "orders.retry", "payments.work"] {
        let q = app.queue_row(&vh.name, work).await;
        assert_eq!(q["watched"], false, "{work}: {q}");
    }
    let q = app.queue_row(&vh.name, "orders.retry").await;
    assert!(
        q["watch_reason"]
            .as_str()
            .unwrap()
            .contains("TTL delay queue orders.delay"),
        "{q}"
    );
    // Nobody took the delay queue's or the service's messages.
    assert_eq!(q["consumers"], 1);

    // The advisor does not treat error.queue as a work queue.
    let (_, advice) = app.get("/api/v1/advisor").await;
    let about_error_queue: Vec<&Value> = advice["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["object"] == "error.queue" && f["kind"] == "no_dead_letter_path")
        .collect();
    assert!(about_error_queue.is_empty(), "{about_error_queue:?}");

    // An operator switches the parking queue off, then back to the rules.
    let switch = |watch: Value| {
        let url = format!("{}/api/v1/queues/{}/parking/watch", app.base, enc(&vh.name));
        let http = app.http.clone();
        async move {
            http.put(url)
                .json(&json!({ "watch": watch }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(switch(json!(false)).await, 204);
    wait_until(Duration::from_secs(10), || async {
        let q = app.queue_row(&vh.name, "parking").await;
        q["watched"] == false && q["consumers"] == 0
    })
    .await;
    assert_eq!(switch(Value::Null).await, 204);
    wait_until(Duration::from_secs(10), || async {
        app.queue_row(&vh.name, "parking").await["consumers"] == 1
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn capture_starts_from_the_stored_set_when_the_management_api_is_down() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("billing.dlq", FieldTable::default()).await;
    let first = TestApp::start(config(&vh, &db, &[])).await;
    wait_until(Duration::from_secs(10), || async {
        vh.queue_info("billing.dlq").await["consumers"] == 1
    })
    .await;
    first.stop().await;

    let proxy = MgmtProxy::start().await;
    proxy.cut();
    let mgmt = format!("--management-url={}", proxy.url);
    let app = TestApp::start(config(&vh, &db, &[&mgmt])).await;
    vh.publish("", "billing.dlq", b"invoice 9", BasicProperties::default())
        .await;
    // Nobody can sign in before the broker has checked a password once, so
    // look at the database as an outsider would.
    wait_until(Duration::from_secs(20), || async {
        let mut conn = db.raw_connection().await;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE queue = 'billing.dlq'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        n == 1
    })
    .await;
    assert_eq!(vh.depth("billing.dlq").await, 0);
    app.stop().await;
}

/// Closes every connection Redrive's capture holds on the vhost.
async fn close_capture_connections(vh: &TestVhost) -> usize {
    let (_, conns) = vh.mgmt("connections?columns=name,vhost,client_properties").await;
    let mut closed = 0;
    for c in conns.as_array().unwrap() {
        let ours =
            c["vhost"] == vh.name.as_str() && c["client_properties"]["connection_name"] == "redrive-ingest";
        if ours {
            let name = c["name"].as_str().unwrap();
            let r = vh
                .http
                .delete(format!("{MGMT}/api/connections/{}", enc(name)))
                .basic_auth("guest", Some("guest"))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            closed += 1;
        }
    }
    closed
}

#[tokio::test]
async fn capture_resumes_within_seconds_of_a_closed_connection() {
    let (mut vh, _db, app) = with_queues(&["ledger.dlq"], &["--discovery-interval=60"]).await;
    vh.publish("", "ledger.dlq", b"before", BasicProperties::default())
        .await;
    app.wait_for_messages("ledger.dlq", 1).await;
    // The management API lists connections a few seconds after they open.
    wait_for(Duration::from_secs(15), || async {
        (close_capture_connections(&vh).await > 0).then_some(())
    })
    .await;
    let closed_at = Instant::now();
    vh.publish("", "ledger.dlq", b"after", BasicProperties::default())
        .await;
    app.wait_for_messages("ledger.dlq", 2).await;
    let took = closed_at.elapsed();
    // Well inside the 60 s discovery interval: the supervisor reconnected.
    assert!(took < Duration::from_secs(5), "capture resumed after {took:?}");
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["consumers"][0]["state"], "connected");
    app.stop().await;
}

#[tokio::test]
async fn twenty_mebibyte_bodies_are_stored_byte_exact() {
    let (mut vh, _db, app) = with_queues(&["big.dlq"], &[]).await;
    let bodies: Vec<Vec<u8>> = (0..3u32)
        .map(|n| {
            (0..20 * 1024 * 1024u32)
                .map(|i| (i.wrapping_add(n).wrapping_mul(2654435761) >> 24) as u8)
                .collect()
        })
        .collect();
    for (n, body) in bodies.iter().enumerate() {
        vh.publish(
            "",
            "big.dlq",
            body,
            BasicProperties::default().with_message_id(format!("big-{n}").into()),
        )
        .await;
    }
    let items = app.wait_for_messages("big.dlq", 3).await;
    for m in items {
        let (_, d) = app.get(&format!("/api/v1/messages/{}", m["id"])).await;
        let n: usize = d["properties"]["message_id"].as_str().unwrap()[4..]
            .parse()
            .unwrap();
        let raw = app
            .http
            .get(format!("{}/api/v1/messages/{}/body", app.base, m["id"]))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(raw.len(), bodies[n].len());
        assert!(raw.as_ref() == bodies[n].as_slice(), "body {n} differs");
    }
    app.stop().await;
}

/// Large messages shrink the prefetch window and small ones open it again;
/// moving the subscription hands nothing back to the queue.
#[tokio::test]
async fn the_prefetch_window_follows_message_sizes_without_requeues() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("mixed.dlq", FieldTable::default()).await;
    // 100 small, 6 of 4 MiB, 100 small: with an 8 MiB budget the window
    // opens, shrinks to 2, then opens again.
    let sizes: Vec<usize> = (0..206)
        .map(|i| if (100..106).contains(&i) { 4 << 20 } else { 512 })
        .collect();
    for (n, size) in sizes.iter().enumerate() {
        let body: Vec<u8> = (0..*size).map(|i| (i * 31 + n) as u8).collect();
        vh.publish(
            "",
            "mixed.dlq",
            &body,
            BasicProperties::default().with_message_id(format!("m-{n}").into()),
        )
        .await;
    }
    let app = TestApp::start(config(&vh, &db, &["--inflight-bytes=8388608", "--prefetch=50"])).await;
    let stored = wait_for(Duration::from_secs(60), || async {
        let (_, page) = app.get("/api/v1/messages?queue=mixed.dlq&limit=500").await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        (items.len() >= sizes.len()).then_some(items)
    })
    .await;
    assert_eq!(stored.len(), sizes.len(), "every message exactly once");
    let mut ids: Vec<String> = Vec::new();
    for m in &stored {
        let (_, d) = app.get(&format!("/api/v1/messages/{}", m["id"])).await;
        ids.push(d["properties"]["message_id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), sizes.len(), "no message stored twice");
    assert_eq!(vh.depth("mixed.dlq").await, 0);
    let redelivered = wait_for(Duration::from_secs(15), || async {
        let q = vh.queue_info("mixed.dlq").await;
        q["message_stats"]["ack"]
            .as_u64()
            .filter(|&acked| acked >= sizes.len() as u64)
            .map(|_| q["message_stats"]["redeliver"].as_u64().unwrap_or(0))
    })
    .await;
    assert_eq!(redelivered, 0, "a window change must not requeue deliveries");
    app.stop().await;
}

#[tokio::test]
async fn a_database_outage_holds_deliveries_without_loss_or_requeue() {
    use sqlx::Connection;
    let (mut vh, db, app) = with_queues(&["stock.dlq"], &[]).await;
    vh.publish("", "stock.dlq", b"warm-up", BasicProperties::default())
        .await;
    app.wait_for_messages("stock.dlq", 1).await;

    // Another process holds the write lock (SQLite's, or on PostgreSQL the
    // messages table's): every commit times out.
    let mut blocker = db.raw_connection().await;
    if db.is_postgres() {
        sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
        sqlx::query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            .execute(&mut blocker)
            .await
            .unwrap();
    } else {
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut blocker)
            .await
            .unwrap();
    }
    for n in 0..20 {
        vh.publish(
            "",
            "stock.dlq",
            format!("item {n}").as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    // Reported while it lasts; the deliveries stay unacked, not requeued.
    let fault = wait_for(Duration::from_secs(30), || async {
        let (status, ready) = app.get("/readyz").await;
        (status == 503 && ready["error"].as_str()?.contains("database commits failing")).then_some(ready)
    })
    .await;
    assert!(fault["error"].as_str().unwrap().contains("unacked"), "{fault}");
    // Held, not lost: what the prefetch window let in stays unacked.
    let q = vh.queue_info("stock.dlq").await;
    assert_eq!(q["messages"], 20, "{q}");
    assert!(q["messages_unacknowledged"].as_i64() >= Some(1), "{q}");
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    blocker.close().await.unwrap();

    let items = app.wait_for_messages("stock.dlq", 21).await;
    let mut bodies: Vec<String> = Vec::new();
    for m in &items {
        let (_, d) = app.get(&format!("/api/v1/messages/{}", m["id"])).await;
        bodies.push(d["body_text"].as_str().unwrap().to_owned());
    }
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 21, "no duplicates");
    wait_until(Duration::from_secs(10), || async {
        vh.queue_info("stock.dlq").await["messages"] == 0
    })
    .await;
    // Never handed back to the queue: nothing was redelivered.
    wait_until(Duration::from_secs(15), || async {
        let q = vh.queue_info("stock.dlq").await;
        q["message_stats"]["deliver_get"].as_i64() >= Some(21)
    })
    .await;
    let q = vh.queue_info("stock.dlq").await;
    assert_eq!(q["message_stats"]["redeliver"].as_i64().unwrap_or(0), 0, "{q}");
    assert_eq!(app.get("/readyz").await.0, 200);
    app.stop().await;
}

/// SQLite on a small tmpfs that fills up (root mounts it, as CI runs here):
/// commits fail with "disk full" while the deliveries are held; once space
/// returns, every message is stored once and nothing was requeued.
#[tokio::test]
async fn a_full_disk_holds_deliveries_and_capture_resumes_when_space_returns() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::sqlite();
    let dir = db.path.parent().unwrap().to_owned();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&dir)
        .status()
        .expect("mount runs");
    assert!(mounted.success(), "this test mounts a tmpfs and needs root");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(dir.clone());
    vh.declare_queue("disk.dlq", FieldTable::default()).await;
    let app = TestApp::start(config(&vh, &db, &[])).await;
    vh.publish("", "disk.dlq", b"warm-up", BasicProperties::default())
        .await;
    app.wait_for_messages("disk.dlq", 1).await;

    let filler = dir.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
    }
    for n in 0..50 {
        let body = format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(2000));
        vh.publish("", "disk.dlq", body.as_bytes(), BasicProperties::default())
            .await;
    }
    wait_for(Duration::from_secs(30), || async {
        let (status, ready) = app.get("/readyz").await;
        (status == 503 && ready["error"].as_str()?.contains("database commits failing")).then_some(())
    })
    .await;
    std::fs::remove_file(&filler).unwrap();
    let items = app.wait_for_messages("disk.dlq", 51).await;
    assert_eq!(items.len(), 51);
    wait_until(Duration::from_secs(10), || async {
        vh.queue_info("disk.dlq").await["messages"] == 0
    })
    .await;
    assert_eq!(app.get("/readyz").await.0, 200);
    app.stop().await;
}
