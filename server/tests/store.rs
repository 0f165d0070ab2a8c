//! Storage guarantees on a real SQLite database.

mod common;

use common::TestDb;
use lapin::BasicProperties;
use server::ingest::decode::{decode, Incoming};
use server::store::Store;
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

#[tokio::test]
async fn a_redelivery_of_a_committed_message_is_not_stored_twice() {
    let db = TestDb::new();
    let store = Store::connect(&db.url()).await.unwrap();
    let first = decode(incoming(b"a", false), OffsetDateTime::now_utc());
    assert_eq!(store.insert_batch(&[first]).await.unwrap(), 1);

    // Redrive crashed after the commit, before the ack: the broker redelivers.
    let again = decode(incoming(b"a", true), OffsetDateTime::now_utc());
    let other = decode(incoming(b"b", true), OffsetDateTime::now_utc());
    assert_eq!(store.insert_batch(&[again, other]).await.unwrap(), 1);
    assert_eq!(store.count().await.unwrap(), 2);

    // A fresh (not redelivered) identical message is a new failure and is kept.
    let fresh = decode(incoming(b"a", false), OffsetDateTime::now_utc());
    assert_eq!(store.insert_batch(&[fresh]).await.unwrap(), 1);
    assert_eq!(store.count().await.unwrap(), 3);
}

#[tokio::test]
async fn reopening_keeps_rows_and_migrations_are_idempotent() {
    let db = TestDb::new();
    {
        let store = Store::connect(&db.url()).await.unwrap();
        let m = decode(incoming(b"x", false), OffsetDateTime::now_utc());
        store.insert_batch(&[m]).await.unwrap();
    }
    let store = Store::connect(&db.url()).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 1);
    let d = store.detail(1).await.unwrap();
    assert_eq!(d.summary.queue, "q.dlq");
    assert_eq!(d.body_text.as_deref(), Some("x"));
}

#[tokio::test]
async fn rows_from_before_failure_groups_are_fingerprinted() {
    use sqlx::{ConnectOptions, Connection};
    let db = TestDb::new();
    let store = Store::connect(&db.url()).await.unwrap();
    let m = decode(incoming(b"x", false), OffsetDateTime::now_utc());
    let expected = m.group_id.clone();
    store.insert_batch(&[m]).await.unwrap();
    // As a pre-groups database would have it.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db.path)
        .connect()
        .await
        .unwrap();
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
