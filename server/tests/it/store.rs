//! Storage guarantees on a real SQLite database.

use crate::common::TestDb;
use lapin::BasicProperties;
use server::ingest::decode::{decode, Incoming};
use server::store::{AckState, CaptureBatch, Store};
use std::time::Duration;

use time::OffsetDateTime;

fn incoming(body: &[u8], redelivered: bool) -> Incoming {
    Incoming {
        vhost: "v".into(),
        queue: "q.dlq".into(),
        exchange: "".into(),
        routing_key: "q.dlq".into(),
        redelivered,
        properties: BasicProperties::default().with_message_id("same-id".into()),
        body: body.to_vec(),
    }
}

/// The broker's consumer timeout (30 min by default): how far back a
/// redelivered copy may find the row it duplicates.
const WINDOW: Duration = Duration::from_secs(1800);

fn at(body: &[u8], redelivered: bool) -> server::domain::NewMessage {
    decode(incoming(body, redelivered), OffsetDateTime::now_utc())
}

#[tokio::test]
async fn a_redelivery_of_a_committed_message_is_not_stored_twice() {
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    assert_eq!(
        store
            .insert_batch(&[at(b"a", false)], WINDOW)
            .await
            .unwrap()
            .stored,
        1
    );

    // Redrive crashed after the commit, before the ack: the broker redelivers.
    let batch = [at(b"a", true), at(b"b", true)];
    assert_eq!(store.insert_batch(&batch, WINDOW).await.unwrap().stored, 1);
    assert_eq!(store.count().await.unwrap(), 2);

    // A fresh (not redelivered) identical message is a new failure and is kept.
    assert_eq!(
        store
            .insert_batch(&[at(b"a", false)], WINDOW)
            .await
            .unwrap()
            .stored,
        1
    );
    assert_eq!(store.count().await.unwrap(), 3);
}

/// Two identical failures committed in one batch, their ack then in `state`.
async fn two_identical_rows(db: &TestDb, state: AckState) -> (Store, CaptureBatch, Vec<i64>) {
    let store = server::store::connect(&db.url()).await.unwrap();
    let first = store
        .insert_batch(&[at(b"same", false), at(b"same", false)], WINDOW)
        .await
        .unwrap();
    assert_eq!((first.stored, first.ids.len()), (2, 2));
    let batch = first.batch.unwrap();
    store.set_ack_state(batch, state).await.unwrap();
    (store, batch, first.ids)
}

/// Another consumer took identical failures and gave them back: they come
/// redelivered, but the broker confirmed Redrive's ack of every row it holds
/// (settled), so none of them is a copy of a stored row. An ack that could
/// not be sent (unsent again) makes the rows absorb their copies once more.
#[tokio::test]
async fn only_rows_whose_ack_never_went_out_absorb_redelivered_twins() {
    let db = TestDb::new();
    let (store, batch, _) = two_identical_rows(&db, AckState::Settled).await;
    let requeued = [at(b"same", true), at(b"same", true)];
    assert_eq!(
        store.insert_batch(&requeued, WINDOW).await.unwrap().stored,
        2,
        "settled rows absorb nothing"
    );
    // The ack of the first batch failed after all: its copies are recognised.
    store.set_ack_state(batch, AckState::Unsent).await.unwrap();
    assert_eq!(store.insert_batch(&requeued, WINDOW).await.unwrap().stored, 0);
    assert_eq!(store.count().await.unwrap(), 4);
}

/// Redrive died between sending an ack and learning whether the broker
/// processed it: a redelivered twin may be the copy or another failure. It is
/// stored (never merged) and flagged as a possible copy of exactly one row.
#[tokio::test]
async fn twins_of_rows_whose_ack_was_in_flight_are_stored_and_flagged() {
    let db = TestDb::new();
    let (store, _, ids) = two_identical_rows(&db, AckState::InFlight).await;
    let requeued = [at(b"same", true), at(b"same", true), at(b"same", true)];
    let again = store.insert_batch(&requeued, WINDOW).await.unwrap();
    assert_eq!(
        (again.stored, again.possible_copies),
        (3, 2),
        "two rows in flight, three twins"
    );
    let mut flagged = Vec::new();
    for id in &again.ids {
        flagged.push(store.possible_copy_of(*id).await.unwrap());
    }
    assert_eq!(flagged, vec![Some(ids[0]), Some(ids[1]), None]);
    assert_eq!(store.possible_copy_of(ids[0]).await.unwrap(), None);
    assert!(
        store.possible_copy_of(again.ids[2] + 1).await.is_err(),
        "unknown id"
    );
    assert_eq!(store.count().await.unwrap(), 5);
}

#[tokio::test]
async fn identical_redelivered_messages_are_never_merged() {
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    // Three identical failures, redelivered because an earlier consumer did
    // not ack them: none of them is stored yet, so all three are new rows,
    // although they share one batch and one content hash.
    let three = [at(b"same", true), at(b"same", true), at(b"same", true)];
    assert_eq!(store.insert_batch(&three, WINDOW).await.unwrap().stored, 3);

    // Redrive committed them and lost the acks: the three copies come back
    // and each absorbs exactly one stored row.
    assert_eq!(store.insert_batch(&three, WINDOW).await.unwrap().stored, 0);
    assert_eq!(store.count().await.unwrap(), 3);

    // A fourth redelivered twin finds no row left to absorb it: it is a
    // failure of its own.
    assert_eq!(
        store
            .insert_batch(&[at(b"same", true)], WINDOW)
            .await
            .unwrap()
            .stored,
        1
    );
    assert_eq!(store.count().await.unwrap(), 4);
}

#[tokio::test]
async fn a_twin_older_than_the_window_does_not_absorb_a_redelivery() {
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    let mut old = at(b"old", false);
    old.received_at -= time::Duration::hours(2);
    store.insert_batch(&[old], WINDOW).await.unwrap();
    assert_eq!(
        store
            .insert_batch(&[at(b"old", true)], WINDOW)
            .await
            .unwrap()
            .stored,
        1
    );
    assert_eq!(store.count().await.unwrap(), 2);
}

#[tokio::test]
async fn reopening_keeps_rows_and_migrations_are_idempotent() {
    let db = TestDb::new();
    {
        let store = server::store::connect(&db.url()).await.unwrap();
        let m = decode(incoming(b"x", false), OffsetDateTime::now_utc());
        store.insert_batch(&[m], WINDOW).await.unwrap();
    }
    let store = server::store::connect(&db.url()).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 1);
    let d = store.detail(1).await.unwrap();
    assert_eq!(d.summary.queue, "q.dlq");
    assert_eq!(d.body_text.as_deref(), Some("x"));
}

#[tokio::test]
async fn rows_from_before_failure_groups_are_fingerprinted() {
    use sqlx::Connection;
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    let m = decode(incoming(b"x", false), OffsetDateTime::now_utc());
    let expected = m.group_id.clone();
    store.insert_batch(&[m], WINDOW).await.unwrap();
    // As a pre-groups database would have it.
    let mut conn = db.raw_connection().await;
    sqlx::query("UPDATE messages SET group_id = NULL, group_title = NULL")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    assert_eq!(store.backfill_groups().await.unwrap(), 1);
    assert_eq!(store.backfill_groups().await.unwrap(), 0);
    let d = store.detail(1).await.unwrap();
    assert_eq!(d.summary.group_id, Some(expected));
}

/// Every sample row, ordered, as `(at, resolution_secs, ready)`.
async fn sample_rows(db: &TestDb) -> Vec<(i64, i64, f64)> {
    use sqlx::Connection;
    let mut conn = db.raw_connection().await;
    let rows =
        sqlx::query_as("SELECT at, resolution_secs, ready FROM queue_samples ORDER BY at, resolution_secs")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    rows
}

#[tokio::test]
async fn aged_samples_are_averaged_into_buckets_once_and_expire() {
    use server::store::samples::Sample;
    const MIN: i64 = 60_000;
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    let sample = |ready: f64| Sample {
        vhost: "v".into(),
        queue: "q".into(),
        ready,
        ..Sample::default()
    };
    let now = 3_000_000 * 10 * MIN; // a 10-minute boundary
    let minute_value = |t: i64| (t / MIN % 7) as f64;
    // Two hours of 10 s samples, each minute's samples sharing one value.
    let mut t = now - 120 * MIN;
    while t < now {
        store
            .insert_samples(t, 10, &[sample(minute_value(t))])
            .await
            .unwrap();
        t += 10_000;
    }
    // The interval was 5 s for a moment: its sample is averaged in with the
    // 10 s ones of the same minute (6 × v and 1 × (v + 7) → v + 1).
    let mixed = now - 90 * MIN;
    store
        .insert_samples(mixed + 5_000, 5, &[sample(minute_value(mixed) + 7.0)])
        .await
        .unwrap();
    // Two 1-minute rows two days back fall into one 10-minute bucket.
    let old = now - 2 * 24 * 60 * MIN;
    store.insert_samples(old, 60, &[sample(1.0)]).await.unwrap();
    store.insert_samples(old + MIN, 60, &[sample(3.0)]).await.unwrap();
    // Past the retention of a week.
    store
        .insert_samples(now - 8 * 24 * 60 * MIN, 600, &[sample(9.0)])
        .await
        .unwrap();

    let week = 7 * 24 * 60 * MIN;
    store.compact_samples(now, week).await.unwrap();
    let rows = sample_rows(&db).await;
    let cutoff = now - 60 * MIN;
    assert_eq!(rows[0], (old, 600, 2.0), "{rows:?}");
    let minutes: Vec<_> = rows.iter().filter(|r| r.1 == 60).collect();
    assert_eq!(minutes.len(), 60, "one row per minute between 2 h and 1 h ago");
    for &&(t, _, ready) in &minutes {
        assert!((now - 120 * MIN..cutoff).contains(&t) && t % MIN == 0);
        let expected = minute_value(t) + if t == mixed { 1.0 } else { 0.0 };
        assert_eq!(ready, expected, "bucket at {t}");
    }
    let raw: Vec<_> = rows.iter().filter(|r| r.1 == 10).collect();
    assert_eq!(raw.len(), 360, "the last hour stays at full resolution");
    assert!(raw.iter().all(|r| r.0 >= cutoff));
    assert_eq!(rows.len(), 1 + 60 + 360, "nothing else: the expired row is gone");

    // A second pass finds nothing left to do.
    store.compact_samples(now, week).await.unwrap();
    assert_eq!(sample_rows(&db).await, rows);
}

#[tokio::test]
async fn a_database_from_a_newer_redrive_is_refused_untouched() {
    use sqlx::Connection;
    let db = TestDb::new();
    drop(server::store::connect(&db.url()).await.unwrap());
    let mut conn = db.raw_connection().await;
    let future = if db.is_postgres() {
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99999, 'from the future', TRUE, '\\x00'::bytea, 0)"
    } else {
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99999, 'from the future', 1, x'00', 0)"
    };
    sqlx::query(future).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let err = server::store::connect(&db.url()).await.err().expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("newer Redrive") && text.contains("99999"), "{text}");
}

#[tokio::test]
async fn an_unconfirmed_replay_is_flagged_and_its_retry_reuses_the_replay_id() {
    use server::store::{Event, Settlement};
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    store.insert_batch(&[at(b"pay", false)], WINDOW).await.unwrap();
    let event = |ok| Event {
        action: app::model::HistoryAction::Replay,
        actor: "test",
        target: None,
        ok,
        detail: None,
        replay_id: None,
    };
    assert_eq!(store.uncertain_replay_id(1).await.unwrap(), None);
    store.claim_replay(1, "me", "rid-1", None).await.unwrap();
    // A second claim while the first is in flight is refused.
    assert!(store.claim_replay(1, "other", "rid-2", None).await.is_err());
    store
        .settle_replay(1, "me", Settlement::Unknown, &event(false))
        .await
        .unwrap();
    let d = store.detail(1).await.unwrap();
    assert_eq!(d.summary.status.as_str(), "failed");
    assert_eq!(d.uncertain_replay_id.as_deref(), Some("rid-1"));

    // The retry is refused by the broker: the earlier uncertainty stays.
    store.claim_replay(1, "me", "rid-1", None).await.unwrap();
    store
        .settle_replay(1, "me", Settlement::Failed, &event(false))
        .await
        .unwrap();
    assert_eq!(
        store.uncertain_replay_id(1).await.unwrap().as_deref(),
        Some("rid-1")
    );

    // Confirmed at last: the flag goes.
    store.claim_replay(1, "me", "rid-1", None).await.unwrap();
    store
        .settle_replay(1, "me", Settlement::Replayed, &event(true))
        .await
        .unwrap();
    assert_eq!(store.uncertain_replay_id(1).await.unwrap(), None);
    assert_eq!(store.detail(1).await.unwrap().summary.status.as_str(), "replayed");
}

#[tokio::test]
async fn replays_abandoned_by_a_dead_instance_are_swept_as_unknown() {
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    store
        .insert_batch(&[at(b"x", false), at(b"y", false)], WINDOW)
        .await
        .unwrap();
    store.claim_replay(1, "dead", "rid-dead", None).await.unwrap();
    // A live lease (fresh heartbeat) is left alone.
    assert_eq!(
        store
            .sweep_abandoned_replays(server::store::now_ms() - 60_000)
            .await
            .unwrap(),
        0
    );
    // Past its lease, it is settled as unknown, keeping its replay id.
    assert_eq!(
        store
            .sweep_abandoned_replays(server::store::now_ms() + 1)
            .await
            .unwrap(),
        1
    );
    let d = store.detail(1).await.unwrap();
    assert_eq!(d.summary.status.as_str(), "failed");
    assert_eq!(d.uncertain_replay_id.as_deref(), Some("rid-dead"));
    assert!(d
        .history
        .last()
        .unwrap()
        .detail
        .as_deref()
        .unwrap()
        .contains("rid-dead"));
    // The late owner's confirm still wins over the sweep's doubt.
    store
        .settle_replay(
            1,
            "dead",
            server::store::Settlement::Replayed,
            &server::store::Event {
                action: app::model::HistoryAction::Replay,
                actor: "test",
                target: None,
                ok: true,
                detail: None,
                replay_id: Some("rid-dead".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(store.detail(1).await.unwrap().summary.status.as_str(), "replayed");
}

#[tokio::test]
async fn a_late_refusal_after_a_sweep_is_recorded_and_keeps_the_doubt() {
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    store.insert_batch(&[at(b"x", false)], WINDOW).await.unwrap();
    store.claim_replay(1, "slow", "rid-slow", None).await.unwrap();
    store
        .sweep_abandoned_replays(server::store::now_ms() + 1)
        .await
        .unwrap();
    let before = store.detail(1).await.unwrap().history.len();
    store
        .settle_replay(
            1,
            "slow",
            server::store::Settlement::Failed,
            &server::store::Event {
                action: app::model::HistoryAction::Replay,
                actor: "test",
                target: None,
                ok: false,
                detail: Some("returned: NO_ROUTE".into()),
                replay_id: Some("rid-slow".into()),
            },
        )
        .await
        .unwrap();
    let d = store.detail(1).await.unwrap();
    assert_eq!(d.summary.status.as_str(), "failed");
    // This attempt was refused, yet the sweep's doubt stays: nothing says
    // what became of the copy the sweep could not account for.
    assert_eq!(d.uncertain_replay_id.as_deref(), Some("rid-slow"));
    assert_eq!(d.history.len(), before + 1, "the late verdict is in the history");
    assert_eq!(
        d.history.last().unwrap().detail.as_deref(),
        Some("returned: NO_ROUTE")
    );
}

/// A job's progress as its items say it, counted the slow way.
async fn counted(db: &TestDb, job: i64) -> (i64, i64, i64) {
    let mut conn = db.raw_connection().await;
    sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE state IN ('done', 'skipped')),
                COUNT(*) FILTER (WHERE state = 'failed'),
                COUNT(*) FILTER (WHERE state = 'pending')
         FROM job_items WHERE job_id = $1",
    )
    .bind(job)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

/// An operator discards message `id`.
async fn discard(store: &Store, id: i64) {
    use app::model::MessageStatus::{Discarded, Failed};
    let event = server::store::Event {
        action: app::model::HistoryAction::Discard,
        actor: "ops",
        target: None,
        ok: true,
        detail: None,
        replay_id: None,
    };
    store
        .transition(id, &[Failed], Discarded, Some(event))
        .await
        .unwrap();
}

/// The counters a job's progress is read from stay equal to its items
/// through every path that changes them: creation, a skip, settlements of
/// each kind, and a purge that deletes a message (and so its item).
#[tokio::test]
async fn job_progress_counters_follow_every_change_to_its_items() {
    use server::store::{ClaimRequest, Filter, JobReplay, JobReplayOutcome, NewJob, Settlement};
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    let bodies: Vec<_> = (1..=6).map(|i| at(format!("m{i}").as_bytes(), false)).collect();
    store.insert_batch(&bodies, WINDOW).await.unwrap();
    let job = NewJob {
        action: app::model::JobAction::Replay,
        actor: "ops",
        selection: serde_json::json!({}),
        exchange: Some("orders".into()),
        routing_key: None,
        rate_per_sec: None,
        plan: &app::model::ReplayPlan::PLAIN,
        start_at: None,
        approval: None,
    };
    let id = store.create_job(job, &Filter::default()).await.unwrap().unwrap();
    let progress = |j: app::model::Job| (j.done, j.failed, j.remaining);
    assert_eq!(progress(store.job(id).await.unwrap()), (0, 0, 6));

    // Discarded before its turn: the claim skips it.
    discard(&store, 6).await;
    let mut n = 0;
    let batch = store
        .job_step(
            id,
            "me",
            "ops",
            &[],
            Some(ClaimRequest { after: 0, limit: 10 }),
            &mut || {
                n += 1;
                format!("rid-{n}")
            },
        )
        .await
        .unwrap();
    assert_eq!((batch.claimed.len(), batch.skipped), (5, 1));
    assert_eq!(progress(store.job(id).await.unwrap()), counted(&db, id).await);
    assert_eq!(counted(&db, id).await, (1, 0, 5));

    let outcome = |c: &server::store::Claimed, settlement| JobReplayOutcome {
        replay: JobReplay {
            message_id: c.message.id(),
            vhost: "v".into(),
            replay_id: c.replay_id.clone(),
            exchange: "orders".into(),
            routing_key: String::new(),
            target: "orders / ".into(),
        },
        settlement,
        error: (settlement != Settlement::Replayed).then(|| "no".into()),
    };
    let c = &batch.claimed;
    let outcomes = [
        outcome(&c[0], Settlement::Replayed),
        outcome(&c[1], Settlement::Replayed),
        outcome(&c[2], Settlement::Failed),
        outcome(&c[3], Settlement::Unknown),
    ];
    store
        .job_step(id, "me", "ops", &outcomes, None, &mut String::new)
        .await
        .unwrap();
    assert_eq!(counted(&db, id).await, (3, 2, 1));
    assert_eq!(progress(store.job(id).await.unwrap()), (3, 2, 1));

    // Retention purges the discarded message, and its (skipped) item with it.
    assert_eq!(
        store.purge_discarded(server::store::now_ms() + 1).await.unwrap(),
        1
    );
    assert_eq!(counted(&db, id).await, (2, 2, 1));
    assert_eq!(progress(store.job(id).await.unwrap()), (2, 2, 1));
}

/// A Spring failure whose trace prints its message, as the recoverer sends it.
fn spring(order: usize, trace: &str) -> server::domain::NewMessage {
    use lapin::types::{AMQPValue, FieldTable};
    let reason = format!("could not execute statement; order {order}");
    let mut h = FieldTable::default();
    h.insert(
        "x-exception-message".into(),
        AMQPValue::LongString(reason.clone().into()),
    );
    h.insert(
        "x-exception-stacktrace".into(),
        AMQPValue::LongString(trace.replace("{reason}", &reason).into()),
    );
    let mut m = incoming(format!("order {order}").as_bytes(), false);
    m.properties = BasicProperties::default().with_headers(h);
    decode(m, OffsetDateTime::now_utc())
}

const TRACE: &str = "org.springframework.amqp.rabbit.support.ListenerExecutionFailedException: Listener threw exception
\tat org.springframework.amqp.rabbit.listener.AbstractMessageListenerContainer.doInvokeListener(AbstractMessageListenerContainer.java:1661)
Caused by: org.springframework.dao.DataIntegrityViolationException: {reason}
\tat com.example.orders.OrderRepository.save(OrderRepository.java:42)";

/// The traces of one failure group are stored once (they differ only by
/// the message the trace prints), yet every read gives back each message's
/// own trace and headers exactly; a trace that cannot be templated is kept
/// whole; a purge takes the templates no message uses any more.
#[tokio::test]
async fn stack_traces_are_stored_once_per_template_and_read_back_exactly() {
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    let odd = TRACE.replace("Caused by", "\u{1}reason\u{1} Caused by");
    let batch = [spring(1, TRACE), spring(2, TRACE), spring(3, &odd)];
    store.insert_batch(&batch, WINDOW).await.unwrap();
    store.insert_batch(&[spring(4, TRACE)], WINDOW).await.unwrap();
    let templates = || async {
        let mut conn = db.raw_connection().await;
        let n: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM stack_traces),
                    (SELECT COUNT(*) FROM message_contents WHERE stack_trace IS NOT NULL)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        n
    };
    assert_eq!(templates().await, (1, 1), "one template; the odd trace whole");
    for (id, sent) in (1..).zip(batch.iter().chain([&spring(4, TRACE)])) {
        let stored = store.get(id).await.unwrap();
        assert_eq!(stored.stack_trace, sent.stack_trace, "message {id}");
        let header = &stored.headers()["x-exception-stacktrace"]["value"];
        assert_eq!(header.as_str(), sent.stack_trace.as_deref(), "message {id}");
        let detail = store.detail(id).await.unwrap();
        assert_eq!(detail.stack_trace, sent.stack_trace);
    }

    // Search finds each message by its trace, templated or whole: a phrase
    // of the template, a word of the trace, and the reason it prints.
    let found = |text: &'static str| {
        let store = store.clone();
        async move {
            let q = app::model::MessageQuery {
                q: Some(text.into()),
                exact: Some(true),
                ..Default::default()
            };
            let page = store.list_within(&q, None).await.unwrap();
            let mut ids: Vec<i64> = page.items.iter().map(|m| m.id).collect();
            ids.sort_unstable();
            ids
        }
    };
    assert_eq!(
        found("OrderRepository.save(OrderRepository.java:42)").await,
        [1, 2, 3, 4]
    );
    assert_eq!(found("DataIntegrityViolationException:").await, [1, 2, 3, 4]);
    assert_eq!(found("doInvokeListener order 2").await, [2]);
    // The mark a template holds is no word; the odd trace has the word.
    assert_eq!(found("reason").await, [3]);

    // Discarded and purged, every message goes, with its contents, its
    // search document and the template.
    for id in 1..=4 {
        discard(&store, id).await;
    }
    assert_eq!(
        store.purge_discarded(server::store::now_ms() + 1).await.unwrap(),
        4
    );
    assert_eq!(templates().await, (0, 0));
    let mut conn = db.raw_connection().await;
    let contents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM message_contents")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(contents, 0);
    if db.is_postgres() {
        let documents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM message_search")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(documents, 0);
    }
}

/// Who may see a job is decided by the vhosts of its messages when it was
/// created, read from one small table: a job stays in its vhosts after
/// retention deletes messages, and a job elsewhere is not in them.
#[tokio::test]
async fn a_job_keeps_the_vhosts_of_its_messages_from_its_creation() {
    use server::store::{Filter, NewJob};
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    let mut batch = Vec::new();
    for (vhost, body) in [("b", "one"), ("a", "two"), ("b", "three")] {
        let mut m = incoming(body.as_bytes(), false);
        m.vhost = vhost.into();
        batch.push(decode(m, OffsetDateTime::now_utc()));
    }
    store.insert_batch(&batch, WINDOW).await.unwrap();
    let job = || NewJob {
        action: app::model::JobAction::Discard,
        actor: "ops",
        selection: serde_json::json!({}),
        exchange: None,
        routing_key: None,
        rate_per_sec: None,
        plan: &app::model::ReplayPlan::PLAIN,
        start_at: None,
        approval: None,
    };
    let both = store
        .create_job(job(), &Filter::default())
        .await
        .unwrap()
        .unwrap();
    let only_a = Filter {
        vhost: Some("a".into()),
        ..Filter::default()
    };
    let one = store.create_job(job(), &only_a).await.unwrap().unwrap();
    let mut vhosts = store.job_vhosts(both).await.unwrap();
    vhosts.sort();
    assert_eq!(vhosts, ["a", "b"]);
    assert_eq!(store.job_vhosts(one).await.unwrap(), ["a"]);

    // Retention takes every message of vhost b: the job stays b's too.
    for id in [1, 3] {
        discard(&store, id).await;
    }
    assert_eq!(
        store.purge_discarded(server::store::now_ms() + 1).await.unwrap(),
        2
    );
    let mut vhosts = store.job_vhosts(both).await.unwrap();
    vhosts.sort();
    assert_eq!(vhosts, ["a", "b"]);
}

/// A lease is one holder's until it expires: another is refused meanwhile,
/// the holder renews it, anyone takes it once it has expired, and a released
/// lease is free at once. Start-up on SQLite ends every other holder's.
#[tokio::test]
async fn leases_are_one_holders_until_they_expire() {
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    assert!(store.acquire_lease("job/1", "a", 60_000).await.unwrap());
    assert!(
        !store.acquire_lease("job/1", "b", 60_000).await.unwrap(),
        "a holds it"
    );
    assert!(
        store.acquire_lease("job/1", "a", 60_000).await.unwrap(),
        "a renews"
    );
    assert!(
        store.acquire_lease("job/2", "b", 60_000).await.unwrap(),
        "leases are per name"
    );

    // a stops renewing: once expired, b takes it, and a cannot renew it back.
    assert!(store.acquire_lease("job/1", "a", 1).await.unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        store.acquire_lease("job/1", "b", 60_000).await.unwrap(),
        "expired: taken over"
    );
    assert!(
        !store.acquire_lease("job/1", "a", 60_000).await.unwrap(),
        "lost for good"
    );

    store.release_lease("job/1", "a").await.unwrap();
    assert!(
        !store.acquire_lease("job/1", "c", 60_000).await.unwrap(),
        "only the holder releases"
    );
    store.release_lease("job/1", "b").await.unwrap();
    assert!(
        store.acquire_lease("job/1", "c", 60_000).await.unwrap(),
        "released: free at once"
    );

    assert_eq!(store.clear_leases_except("c").await.unwrap(), 1, "b's job/2");
    assert!(store.acquire_lease("job/2", "c", 60_000).await.unwrap());
    assert!(
        !store.acquire_lease("job/1", "d", 60_000).await.unwrap(),
        "c's own were kept"
    );
}
