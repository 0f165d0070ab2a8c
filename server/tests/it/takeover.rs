//! A job runs on the one instance holding its lease, and moves to another
//! when the holder stops renewing it (it died): the mechanism that lets
//! several instances share one database. Here the other instance is a lease
//! row written into the database, as a second process would hold it; the
//! real runner and the real broker do the rest.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use lapin::{BasicProperties, ExchangeKind};
use serde_json::{json, Value};

const TOTAL: usize = 40;

async fn job(app: &TestApp, id: &Value) -> Value {
    let (status, job) = app.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(status, 200, "{job}");
    job
}

#[tokio::test]
async fn a_job_whose_lease_another_instance_holds_waits_and_is_taken_over_once_it_expires() {
    let (mut vh, db, app) = with_queues(&["orders.dlq", "orders.in"], &[]).await;
    vh.declare_exchange("orders.x", ExchangeKind::Direct).await;
    vh.bind("orders.in", "orders.x", "new").await;
    for i in 0..TOTAL {
        let props = BasicProperties::default()
            .with_message_id(format!("m-{i}").into())
            .with_headers(headers(&[
                ("x-original-exchange", s("orders.x")),
                ("x-original-routingKey", s("new")),
            ]));
        vh.publish("", "orders.dlq", b"{}", props).await;
    }
    app.wait_for_messages("orders.dlq", TOTAL).await;

    // Another instance, alive, holds the lease of the job about to be created
    // (the first job of a fresh database is job 1).
    let mut raw = db.raw_connection().await;
    let far = server::store::now_ms() + 600_000;
    sqlx::query("INSERT INTO leases (name, holder, expires_at) VALUES ('job/1', 'instance-b', $1)")
        .bind(far)
        .execute(&mut raw)
        .await
        .unwrap();

    let request = json!({"action": "replay", "filter": {"queue": "orders.dlq"}, "rate_per_sec": 200});
    let (status, created) = app.post("/api/v1/jobs", Some(request)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].clone();
    assert_eq!(id, 1);

    // It is running, but not here: nothing moves while the holder renews.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = job(&app, &id).await;
    assert_eq!(waiting["state"], "running", "{waiting}");
    assert_eq!(waiting["done"], 0, "{waiting}");
    assert_eq!(vh.depth("orders.in").await, 0);

    // The holder dies: its lease runs out and this instance takes the job.
    sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = 'job/1'")
        .execute(&mut raw)
        .await
        .unwrap();
    let done = wait_for(Duration::from_secs(60), || async {
        let j = job(&app, &id).await;
        (j["state"] == "completed").then_some(j)
    })
    .await;
    assert_eq!(done["done"], TOTAL as i64, "{done}");
    let mut seen = HashSet::new();
    for copy in vh.drain("orders.in", TOTAL).await {
        let mid = copy.properties.message_id().as_ref().unwrap().to_string();
        assert!(seen.insert(mid.clone()), "{mid} delivered twice");
    }
    assert_eq!(vh.depth("orders.in").await, 0, "each message once");

    // A finished job's lease is given up (by the runner, within a poll).
    let gone = std::time::Instant::now();
    loop {
        let left: Option<String> = sqlx::query_scalar("SELECT holder FROM leases WHERE name = 'job/1'")
            .fetch_optional(&mut raw)
            .await
            .unwrap();
        if left.is_none() {
            break;
        }
        assert!(
            gone.elapsed() < Duration::from_secs(5),
            "lease still held by {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(raw);
    app.stop().await;
}

/// Sampling, findings and alerts are written by the instance holding the
/// monitor's lease only; another keeps its own view of the broker fresh
/// and takes over when the lease is released (or expires).
#[tokio::test]
async fn only_the_monitor_lease_holder_writes_samples() {
    let mut vh = TestVhost::new().await;
    vh.declare_queue("orders.dlq", lapin::types::FieldTable::default())
        .await;
    let db = TestDb::new();
    let cfg = std::sync::Arc::new(config(&vh, &db, &[]));
    let store = server::store::connect(&db.url()).await.unwrap();
    let management = server::broker::Management::new(MGMT, "guest", "guest");
    let monitor = |holder: &str| {
        server::monitor::Monitor::new(cfg.clone(), store.clone(), management.clone(), Default::default())
            .with_leases(server::lease::Leases::new(store.clone(), holder.into()))
    };
    let (a, b) = (monitor("a"), monitor("b"));
    let mut raw = db.raw_connection().await;
    let count = "SELECT COUNT(*) FROM queue_samples WHERE queue = 'orders.dlq'";

    assert!(a.pass().await.unwrap(), "a takes the lease and samples");
    assert!(!b.pass().await.unwrap(), "b does not");
    assert!(
        b.cached().snapshot.is_some(),
        "b's own view is fresh all the same"
    );
    assert!(a.pass().await.unwrap(), "a renews");
    let samples: i64 = sqlx::query_scalar(count).fetch_one(&mut raw).await.unwrap();
    assert_eq!(samples, 2, "two passes of a, none of b");

    store.release_lease("monitor", "a").await.unwrap();
    assert!(b.pass().await.unwrap(), "released: b takes over");
    assert!(!a.pass().await.unwrap());
    let samples: i64 = sqlx::query_scalar(count).fetch_one(&mut raw).await.unwrap();
    assert_eq!(samples, 3);
}
