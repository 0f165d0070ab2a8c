//! Never lose a message: SIGKILL Redrive in the middle of a 20,000-message
//! ingest, start it again on the same database, and find every message
//! stored and the queue empty. A message is stored twice only when the kill
//! fell between sending a batch's ack and learning its fate; then the second
//! row is flagged as a possible copy of the first, never silent.

use std::time::{Duration, Instant};

use crate::common::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use sqlx::Connection;

const TOTAL: u32 = 20_000;

/// Rows, distinct message ids, rows flagged as a possible copy, and of
/// those the ones whose twin is the same message; counted through a
/// connection of its own, as an outside observer would.
async fn stored(db: &TestDb) -> (i64, i64, i64, i64) {
    let mut conn = db.raw_connection().await;
    let row = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT message_id), COUNT(possible_copy_of),
                (SELECT COUNT(*) FROM messages c JOIN messages t ON t.id = c.possible_copy_of
                 WHERE t.message_id = c.message_id)
         FROM messages",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap_or((0, 0, 0, 0));
    conn.close().await.unwrap();
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_ingest_loses_and_duplicates_nothing() {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    vh.declare_queue("bulk.dlq", FieldTable::default()).await;
    let ch = vh.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    for i in 0..TOTAL {
        let body = format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(200));
        ch.basic_publish(
            "".into(),
            "bulk.dlq".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default()
                .with_message_id(format!("m-{i}").into())
                .with_delivery_mode(2),
        )
        .await
        .unwrap();
    }
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
    assert_eq!(vh.depth("bulk.dlq").await, TOTAL);

    let mut redrive = spawn_redrive(&vh, &db, &[]);
    let start = Instant::now();
    // Kill as soon as some batches are committed: ingest is then surely mid-way.
    loop {
        if db.exists() && stored(&db).await.0 >= 1_000 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "ingest never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    redrive.start_kill().unwrap();
    redrive.wait().await.unwrap();
    let (at_kill, ..) = stored(&db).await;
    assert!(
        at_kill < i64::from(TOTAL),
        "killed too late to test anything ({at_kill} stored)"
    );
    eprintln!("killed with {at_kill} of {TOTAL} stored");

    let mut redrive = spawn_redrive(&vh, &db, &[]);
    let start = Instant::now();
    loop {
        let (rows, ..) = stored(&db).await;
        if rows >= i64::from(TOTAL) && vh.depth("bulk.dlq").await == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {rows} stored after restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give a would-be duplicate time to show up before the final count.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rows, distinct, flagged, true_copies) = stored(&db).await;
    eprintln!("{rows} rows, {flagged} flagged as possible copies");
    assert_eq!(distinct, i64::from(TOTAL), "every message stored");
    assert_eq!(
        rows - flagged,
        i64::from(TOTAL),
        "every second row flagged, no other"
    );
    assert_eq!(true_copies, flagged, "each flag names the row it copies");
    assert!(
        flagged <= 500,
        "at most the one batch whose ack was in flight: {flagged}"
    );
    assert_eq!(vh.depth("bulk.dlq").await, 0);
    redrive.start_kill().unwrap();
    redrive.wait().await.unwrap();
}
