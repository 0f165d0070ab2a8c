//! The list's query plans on PostgreSQL, checked with `EXPLAIN` over the
//! same filter matrix as SQLite's (`store::plan_matrix`), on a fresh
//! database with statistics: a page reads through the index its plan chose,
//! no sparse filter scans `messages`, and a search's windows look documents
//! up by id while its rest is read from the full-text index's match set. Needs `REDRIVE_TEST_POSTGRES` (the
//! suite's second run sets it); skipped, and says so, without it.

use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};

use super::browse::Reading;
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

/// Checks that a statement reads the arms as the reading planned them.
fn check_arms(name: &str, plan: &str, reading: &Reading<'_>) {
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
    if let (Some(index), false) = (level.index(), reading.plan.arms.is_empty()) {
        let windowed = reading.filter.from_ms.is_some() || reading.filter.to_ms.is_some();
        assert!(
            plan.contains(index)
                || (dense && plan.contains("Index Scan Backward using messages_pkey"))
                || (windowed && plan.contains("using messages_received")),
            "{name}: planned {index}:\n{plan}"
        );
    }
}

/// A search's window looks each message up in the full-text index by its
/// id, never by hashing every document the text matches.
fn check_window(name: &str, plan: &str, reading: &Reading<'_>) {
    check_arms(name, plan, reading);
    assert!(
        plan.contains("Index Scan using message_search_pkey") && !plan.contains("Seq Scan on message_search"),
        "{name}: a window's lookups:\n{plan}"
    );
}

/// A search's rest is read from the full-text index's match set, each
/// match's row looked up by id (no join that reads every newer row), through
/// the full-text index: never a scan of the documents.
fn check_matches(name: &str, plan: &str, rare: bool) {
    assert!(
        !plan.contains("Seq Scan on messages")
            && !plan.contains("Join")
            && !plan.contains("using message_search_pkey")
            && !plan.contains("Seq Scan on message_search")
            && (!rare || plan.contains("Bitmap Index Scan on message_search_document")),
        "{name}: the match set:\n{plan}"
    );
}

/// A store on a fresh database named `{prefix}_{uuid}` (with its admin URL
/// and name, to drop it after), or `None` without PostgreSQL.
async fn scratch(prefix: &str) -> Option<(PgStore, String, String)> {
    let Some(admin_url) = std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty()) else {
        eprintln!("skipped: {prefix} needs PostgreSQL ({POSTGRES_ENV})");
        return None;
    };
    let database = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    admin(&admin_url, &format!("CREATE DATABASE \"{database}\"")).await;
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&database);
    let store = PgStore::connect(url.as_str()).await.unwrap();
    Some((store, admin_url, database))
}

#[tokio::test]
async fn every_filter_combination_reads_through_its_planned_index() {
    let Some((store, admin_url, database)) = scratch("redrive_plans").await else {
        return;
    };
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
        for text in [None, Some("IllegalStateException"), Some("4242")] {
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
                let Some(text) = reading.text else {
                    reading.push_page(&mut b, rows::SUMMARY_COLUMNS, cursor, 51);
                    check_arms(&name, &explain(&store, &mut b).await, &reading);
                    continue;
                };
                assert!(reading.walked(), "{name}: PostgreSQL walks every search");
                reading.push_window(&mut b, text, cursor, 204);
                check_window(&name, &explain(&store, &mut b).await, &reading);
                for ordered in [true, false] {
                    let mut b = QueryBuilder::<Postgres>::new("EXPLAIN ");
                    reading.push_matches(&mut b, text, cursor, Some(51), ordered);
                    // As the walk reads it: after the match set's setup.
                    let mut tx = store.pool.begin().await.unwrap();
                    if let Some(setup) =
                        <super::search::TsVector as crate::store::backend::FullText>::MATCH_SET_SETUP
                    {
                        sqlx::query(setup).execute(&mut *tx).await.unwrap();
                    }
                    let plan: Vec<String> = b.build_query_scalar().fetch_all(&mut *tx).await.unwrap();
                    tx.rollback().await.unwrap();
                    check_matches(&name, &plan.join("\n"), text == "4242");
                }
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

#[tokio::test]
async fn statistics_are_refreshed_once_a_tenth_of_a_table_changed() {
    use crate::store::Database;
    let Some((store, admin_url, database)) = scratch("redrive_stats").await else {
        return;
    };
    let analyzed = || async {
        let at: Option<bool> = sqlx::query_scalar(
            "SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL
             FROM pg_stat_user_tables WHERE relname = 'messages'",
        )
        .fetch_optional(&store.pool)
        .await
        .unwrap();
        at.unwrap_or(false)
    };
    // Empty tables: nothing to learn.
    assert!(store.refresh_statistics().await.unwrap().is_empty());
    for sql in plan_matrix::skewed("decode(md5(i::text), 'hex')") {
        sqlx::query(&sql).execute(&store.pool).await.unwrap();
    }
    // The statistics collector reports changes asynchronously.
    let mut refreshed = Vec::new();
    for _ in 0..50 {
        refreshed = store.refresh_statistics().await.unwrap();
        if !refreshed.is_empty() || analyzed().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(analyzed().await, "messages analyzed (refreshed {refreshed:?})");
    // Just analyzed: nothing changed since.
    assert!(!store
        .refresh_statistics()
        .await
        .unwrap()
        .contains(&"messages".to_owned()));
    store.pool.close().await;
    admin(
        &admin_url,
        &format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
    )
    .await;
}
