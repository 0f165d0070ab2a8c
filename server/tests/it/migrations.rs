//! Migrations that reshape a table keep what it held: a SQLite database
//! from before replay plans (migration 27 widens the job states by editing
//! the table's stored definition) keeps its jobs, their items and vhosts,
//! and takes the new state afterwards.

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::Connection;

use crate::common::*;
use server::store::NewJob;

#[tokio::test]
async fn jobs_from_before_replay_plans_keep_their_items_and_take_the_new_state() {
    let db = TestDb::sqlite();
    let options: SqliteConnectOptions = db.url().parse().unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/sqlite"));
    let mut before = sqlx::migrate::Migrator::new(dir).await.unwrap();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 27)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    // Items of messages that retention since deleted would be gone; these
    // stand for a job's rows alone, so the messages are left out.
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO jobs (id, action, state, actor, selection, total, created_at, updated_at)
         VALUES (7, 'replay', 'paused', 'alice', '{}', 3, 1, 1)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    for m in 1..=3 {
        sqlx::query("INSERT INTO job_items (job_id, message_id) VALUES (7, ?)")
            .bind(m)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO job_vhosts (job_id, vhost) VALUES (7, '/')")
        .execute(&mut *conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    pool.close().await;

    let store = server::store::connect(&db.url()).await.unwrap();
    let job = store.job(7).await.unwrap();
    assert_eq!((job.state.as_str(), job.total, job.remaining), ("paused", 3, 3));
    assert_eq!(store.job_vhosts(7).await.unwrap(), ["/"]);
    let mut raw = db.raw_connection().await;
    let items: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_items WHERE job_id = 7")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(items, 3, "the job's items survived");
    let check: Vec<(String, i64, String, i64)> = sqlx::query_as("PRAGMA foreign_key_check")
        .fetch_all(&mut raw)
        .await
        .unwrap();
    assert!(check.iter().all(|(table, ..)| table == "job_items"), "{check:?}");
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut raw)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    raw.close().await.unwrap();

    // The widened CHECK holds on every connection: a scheduled job is
    // stored, an unknown state still refused.
    let plan = app::model::ReplayPlan::PLAIN;
    let filter = server::store::Filter {
        ids: Some(vec![1]),
        ..Default::default()
    };
    let new = NewJob {
        action: app::model::JobAction::Replay,
        actor: "bob",
        selection: serde_json::json!({}),
        exchange: None,
        routing_key: None,
        rate_per_sec: None,
        plan: &plan,
        start_at: Some(server::store::now_ms() + 60_000),
        approval: None,
    };
    // No message 1 exists, so nothing is selected and nothing is written.
    assert_eq!(store.create_job(new, &filter).await.unwrap(), None);
    let mut raw = db.raw_connection().await;
    sqlx::query("UPDATE jobs SET state = 'scheduled' WHERE id = 7")
        .execute(&mut raw)
        .await
        .unwrap();
    let refused = sqlx::query("UPDATE jobs SET state = 'sleeping' WHERE id = 7")
        .execute(&mut raw)
        .await;
    assert!(refused.is_err(), "the CHECK still refuses unknown states");
    raw.close().await.unwrap();
    assert_eq!(store.job(7).await.unwrap().state.as_str(), "scheduled");
}
