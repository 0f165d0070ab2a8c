//! Several Redrive instances on one PostgreSQL database and one broker:
//! they ingest as competing consumers without duplicate rows, one of them
//! runs a bulk job at a time, and when the one running it is SIGKILLed the
//! other finishes it without publishing any message twice. Background work
//! (webhooks, samples) happens once across both.
//!
//! PostgreSQL only (SQLite is one instance's by design): ignored by default,
//! so a SQLite run reports them as ignored rather than passed; `scripts/test`
//! runs them in its PostgreSQL pass with `--include-ignored`, and run there
//! without `REDRIVE_TEST_POSTGRES` they fail rather than pass.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use app::model::{JobAction, JobState, MessageStatus};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde_json::json;
use server::store::{Filter, NewJob, Store};
use tokio::process::Child;

const TOTAL: usize = 20_000;
const TRACE: &str = "org.springframework.amqp.AmqpRejectAndDontRequeueException: Trade rejected
\tat org.springframework.amqp.rabbit.listener.ConditionalRejectingErrorHandler.handleError(ConditionalRejectingErrorHandler.java:114)
\tat com.acme.trade.TradeService.book(TradeService.java:88)
\tat com.acme.trade.TradeListener.onMessage(TradeListener.java:41)";

/// Two instances, `a` and `b`, named so their leases say which is which.
fn start_two(vh: &TestVhost, db: &TestDb) -> [(char, Child); 2] {
    let env = |name| {
        [
            ("REDRIVE_INSTANCE_NAME", name),
            ("REDRIVE_SAMPLE_INTERVAL", "1"),
            ("REDRIVE_CONFIRM_TIMEOUT", "2"),
        ]
    };
    [
        ('a', spawn_redrive(vh, db, &env("a"))),
        ('b', spawn_redrive(vh, db, &env("b"))),
    ]
}

/// A Spring failure, numbered by its message id.
async fn publish_failures(vh: &mut TestVhost, queue: &str, n: usize) {
    let ch = vh.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    for i in 0..n {
        let props = BasicProperties::default()
            .with_message_id(format!("m-{i}").into())
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_headers(headers(&[
                ("x-exception-message", s(&format!("Trade {i} rejected"))),
                ("x-exception-stacktrace", s(TRACE)),
                ("x-original-exchange", s("trade.exchange")),
                ("x-original-routingKey", s("trade.created")),
            ]));
        let body = format!(r#"{{"trade":{i},"amount":"12.50"}}"#);
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            props,
        )
        .await
        .unwrap();
    }
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
}

/// Rows, and distinct message ids among them.
async fn rows(db: &TestDb) -> (i64, i64) {
    let mut conn = db.raw_connection().await;
    sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT message_id) FROM messages")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// Which instance (`a` or `b`) holds the lease `name`, if any.
async fn holder(db: &TestDb, name: &str) -> Option<char> {
    let mut conn = db.raw_connection().await;
    let holder: Option<String> = sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    holder.and_then(|h| h.chars().next())
}

#[ignore = "PostgreSQL only: scripts/test runs it in its PostgreSQL pass"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_ingest_and_a_killed_job_holder_is_taken_over() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    assert!(
        db.is_postgres(),
        "several instances need PostgreSQL: set {POSTGRES_ENV}"
    );
    vh.declare_queue("trade.dlq", FieldTable::default()).await;
    vh.declare_queue("trade.replayed", FieldTable::default()).await;
    let mut instances = start_two(&vh, &db);
    // Both consume the failure queue before anything is published.
    wait_until(Duration::from_secs(60), || async {
        vh.queue_info("trade.dlq").await["consumers"].as_i64() == Some(2)
    })
    .await;

    publish_failures(&mut vh, "trade.dlq", TOTAL).await;
    wait_until(Duration::from_secs(180), || async {
        rows(&db).await.0 >= TOTAL as i64 && vh.queue_info("trade.dlq").await["messages"] == 0
    })
    .await;
    assert_eq!(
        rows(&db).await,
        (TOTAL as i64, TOTAL as i64),
        "one row per message"
    );

    // A rate-capped replay of all of them, created as the API would.
    let store: Store = server::store::connect(&db.url()).await.unwrap();
    let filter = Filter {
        status: Some(MessageStatus::Failed),
        queue: Some("trade.dlq".into()),
        ..Filter::default()
    };
    let job = NewJob {
        action: JobAction::Replay,
        actor: "operator",
        selection: json!({"queue": "trade.dlq"}),
        exchange: Some(String::new()),
        routing_key: Some("trade.replayed".into()),
        rate_per_sec: Some(2_000.0),
        plan: &app::model::ReplayPlan::PLAIN,
        start_at: None,
        approval: None,
    };
    let id = store.create_job(job, &filter).await.unwrap().unwrap();

    // Kill whichever instance runs it, a few thousand messages in.
    let lease = format!("job/{id}");
    wait_until(Duration::from_secs(60), || async {
        store.job(id).await.unwrap().done >= 3_000
    })
    .await;
    let victim = holder(&db, &lease).await.expect("the running job is leased");
    let (_, child) = instances.iter_mut().find(|(name, _)| *name == victim).unwrap();
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let killed_at = store.job(id).await.unwrap();
    assert!(killed_at.remaining > 0, "killed mid-way: {killed_at:?}");

    // The other takes it over once the lease expires, and finishes it.
    let survivor = if victim == 'a' { 'b' } else { 'a' };
    wait_until(Duration::from_secs(60), || async {
        holder(&db, &lease).await == Some(survivor)
    })
    .await;
    // Replays the victim had in flight wait for the sweep (their outcome is
    // unknown); the survivor finishes the rest, then those.
    let done = wait_for(Duration::from_secs(180), || async {
        let j = store.job(id).await.unwrap();
        (j.state != JobState::Running).then_some(j)
    })
    .await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    assert_eq!(done.done + done.failed, TOTAL as i64, "{done:?}");

    // Failed items are exactly the replays the kill left unconfirmed:
    // flagged "outcome unknown", not retried.
    let problems = store.job_problems(id, TOTAL as i64).await.unwrap();
    assert_eq!(problems.len() as i64, done.failed);
    for p in &problems {
        assert!(
            p.error.as_deref().unwrap_or("").contains("outcome unknown"),
            "{p:?}"
        );
        let flagged = store.uncertain_replay_id(p.message_id).await.unwrap();
        assert!(flagged.is_some(), "message {} is flagged", p.message_id);
    }

    // Nothing was published twice: every copy is of a different message,
    // every confirmed replay arrived, and an unknown one at most once.
    let copies = vh.depth("trade.replayed").await as usize;
    let mut seen = HashSet::new();
    for copy in vh.drain("trade.replayed", copies).await {
        let mid = copy.properties.message_id().as_ref().unwrap().to_string();
        assert!(seen.insert(mid.clone()), "{mid} published twice");
    }
    assert!(
        copies as i64 >= done.done,
        "{copies} copies for {} confirmed",
        done.done
    );
    assert!(copies <= TOTAL);
    for (_, mut child) in instances {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

#[ignore = "PostgreSQL only: scripts/test runs it in its PostgreSQL pass"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_send_each_webhook_once_and_sample_once() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    assert!(
        db.is_postgres(),
        "several instances need PostgreSQL: set {POSTGRES_ENV}"
    );
    let receiver = Receiver::start(0).await;
    vh.declare_queue("orders", FieldTable::default()).await;
    // The rule exists before either instance starts.
    let store: Store = server::store::connect(&db.url()).await.unwrap();
    let rule = serde_json::from_value(json!({
        "name": "orders backlog",
        "condition": {"kind": "queue", "queue": "^orders$", "metric": "ready", "threshold": 2},
        "webhook_url": receiver.url,
    }))
    .unwrap();
    store
        .create_alert_rule(&rule, server::store::now_ms())
        .await
        .unwrap();
    let instances = start_two(&vh, &db);
    for _ in 0..3 {
        vh.publish("", "orders", b"{}", BasicProperties::default()).await;
    }
    wait_until(Duration::from_secs(60), || async {
        !receiver.events().is_empty()
    })
    .await;
    // Both instances keep evaluating the rule; it is announced once.
    let start = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let key = format!("{}/orders", vh.name);
    assert_eq!(receiver.events(), vec![("firing".to_owned(), key)]);

    // One instance samples (every second here); two would write about
    // twice as many rows.
    let mut conn = db.raw_connection().await;
    let ats: Vec<i64> =
        sqlx::query_scalar("SELECT at FROM queue_samples WHERE queue = 'orders' AND at >= $1 ORDER BY at")
            .bind(server::store::now_ms() - start.elapsed().as_millis() as i64)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let seconds = start.elapsed().as_secs_f64();
    assert!(!ats.is_empty(), "sampled");
    assert!(
        (ats.len() as f64) <= seconds + 2.0,
        "{} samples in {seconds:.1} s: {ats:?}",
        ats.len()
    );
    for (_, mut child) in instances {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
