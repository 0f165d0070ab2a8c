//! The list's query plans on PostgreSQL, checked with `EXPLAIN` over the
//! same filter matrix as SQLite's (`store::plan_matrix`), on a fresh
//! database with statistics: a page reads through the index its plan chose,
//! a search probes the full-text index only for a small filter, and no
//! sparse filter scans `messages`. Needs `REDRIVE_TEST_POSTGRES` (the
//! suite's second run sets it); skipped, and says so, without it.

use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};

use super::browse::{Reading, PROBE_LIMIT};
use super::PgStore;
use crate::store::browse::Level;
use crate::store::filter::Filter;
use crate::store::{plan_matrix, rows};

const POSTGRES_ENV: &str = "REDRIVE_TEST_POSTGRES";

async fn admin(url: &str, sql: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

async fn explain(store: &PgStore, b: &mut QueryBuilder<'_, Postgres>) -> String {
    let rows: Vec<String> = b.build_query_scalar().fetch_all(&store.pool).await.unwrap();
    rows.join("\n")
}

/// Checks one statement's plan against what the reading decided.
fn check(name: &str, plan: &str, reading: &Reading<'_>) {
    let level = reading.plan.level;
    if plan.contains("Seq Scan on messages") {
        assert!(
            level == Level::All && reading.plan.matching * 2 >= reading.plan.stored,
            "{name}: scans messages for a sparse filter:\n{plan}"
        );
    }
    // PostgreSQL chooses within an arm by its own statistics: the planned
    // index; for a filter at least one message in 20 passes, the primary
    // key newest first (a page then reads about a thousand rows); for a
    // time window, the window's rows through the arrival index.
    let dense = reading.plan.matching * 20 >= reading.plan.stored;
    if let (Some(index), false) = (level.index(), reading.text_driven()) {
        if !reading.plan.arms.is_empty() {
            let windowed = reading.filter.from_ms.is_some() || reading.filter.to_ms.is_some();
            assert!(
                plan.contains(index)
                    || (dense && plan.contains("Index Scan Backward using messages_pkey"))
                    || (windowed && plan.contains("using messages_received")),
                "{name}: planned {index}:\n{plan}"
            );
        }
    }
    if plan.contains("message_search") && !reading.text_driven() {
        assert!(
            reading.plan.matching <= PROBE_LIMIT,
            "{name}: probes the full-text index for {} rows:\n{plan}",
            reading.plan.matching
        );
    }
}

#[tokio::test]
async fn every_filter_combination_reads_through_its_planned_index() {
    let Some(admin_url) = std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty()) else {
        eprintln!("skipped: PostgreSQL plans need PostgreSQL ({POSTGRES_ENV})");
        return;
    };
    let database = format!("redrive_plans_{}", uuid::Uuid::new_v4().simple());
    admin(&admin_url, &format!("CREATE DATABASE \"{database}\"")).await;
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&database);
    let store = PgStore::connect(url.as_str()).await.unwrap();
    for sql in plan_matrix::skewed("decode(md5(i::text), 'hex')") {
        sqlx::query(&sql).execute(&store.pool).await.unwrap();
    }
    // Documents as the indexer writes them: a third name the exception.
    sqlx::query(
        "INSERT INTO message_search (message_id, document)
         SELECT id, to_tsvector('simple', 'order ' || id ||
             CASE WHEN id % 3 = 0 THEN ' IllegalStateException' ELSE ' SocketTimeoutException' END)
         FROM messages",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&store.pool).await.unwrap();
    for (name, q, visible) in plan_matrix::matrix() {
        for text in [None, Some("IllegalStateException")] {
            for cursor in [None, Some(15_000)] {
                let q = app::model::MessageQuery {
                    q: text.map(str::to_owned),
                    ..q.clone()
                };
                let mut filter = Filter::try_from(&q).unwrap();
                filter.visible = visible.clone();
                let reading = store.reading(&filter, 51).await.unwrap();
                let name = format!("{name} text={text:?} cursor={cursor:?}");
                let mut b = QueryBuilder::<Postgres>::new("EXPLAIN ");
                reading.push_page(&mut b, rows::SUMMARY_COLUMNS, cursor, 51);
                check(&name, &explain(&store, &mut b).await, &reading);
            }
        }
    }
    store.pool.close().await;
    admin(
        &admin_url,
        &format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
    )
    .await;
}
