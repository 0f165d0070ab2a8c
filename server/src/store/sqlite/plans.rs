//! The list's query plans, checked with `EXPLAIN QUERY PLAN` against a real
//! (fresh) database: every shape the UI asks for must be read in index order
//! and stop after a page, so a million stored messages cost no more than ten;
//! and its count, which stops at [`COUNT_CAP`] unless asked to be exact.

use app::model::{MessageQuery, COUNT_CAP};
use sqlx::{QueryBuilder, Sqlite};

use super::browse::{Reading, PROBE_LIMIT};
use super::SqliteStore;
use crate::store::browse::Level;
use crate::store::filter::Filter;
use crate::store::plan_matrix;
use crate::store::rows;
use crate::store::MessageStore;

fn text(v: &str) -> Option<String> {
    Some(v.to_owned())
}

async fn fresh() -> (SqliteStore, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("redrive-plans-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}?mode=rwc", dir.join("p.db").display()))
        .await
        .unwrap();
    (store, dir)
}

#[tokio::test]
async fn a_page_counts_up_to_the_cap_and_exactly_on_demand() {
    let (store, dir) = fresh().await;
    let stored = COUNT_CAP + 5;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO messages (vhost, queue, received_at, delivery_exchange, delivery_routing_key, content_hash)
         SELECT '/', 'orders.error.queue', i, 'error.direct', 'orders', randomblob(16) FROM n",
    )
    .bind(stored)
    .execute(&store.pool)
    .await
    .unwrap();
    let visible = ["/".to_owned()];
    let page = store
        .list_within(&MessageQuery::default(), Some(&visible[..]))
        .await
        .unwrap();
    // The counts decide an equality filter's total: exact, read from
    // `message_counts`, never capped.
    assert_eq!((page.total, page.total_capped), (stored, false));
    assert_eq!(page.items.len(), 50);
    let few = MessageQuery {
        cursor: Some("4".into()),
        queue: text("orders.error.queue"),
        ..Default::default()
    };
    let page = store.list_within(&few, Some(&visible[..])).await.unwrap();
    assert_eq!(page.items.iter().map(|m| m.id).collect::<Vec<_>>(), [3, 2, 1]);
    assert_eq!(page.total, stored, "the count ignores the cursor: all matches");
    // A time filter is counted by reading, up to the cap unless exact.
    let window = MessageQuery {
        from: text("1970-01-01T00:00:00.002Z"),
        ..Default::default()
    };
    let page = store.list_within(&window, Some(&visible[..])).await.unwrap();
    assert_eq!((page.total, page.total_capped), (COUNT_CAP, true));
    let exact = MessageQuery {
        exact: Some(true),
        ..window
    };
    let page = store.list_within(&exact, Some(&visible[..])).await.unwrap();
    assert_eq!((page.total, page.total_capped), (stored - 1, false));
    let hidden = store
        .list_within(&MessageQuery::default(), Some(&[][..]))
        .await
        .unwrap();
    assert_eq!(
        (hidden.total, hidden.total_capped, hidden.items.len()),
        (0, false, 0)
    );
    store.pool.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The matrix's skewed store (see `store::plan_matrix`).
async fn skewed(store: &SqliteStore) {
    for sql in plan_matrix::skewed("randomblob(16)") {
        sqlx::query(&sql).execute(&store.pool).await.unwrap();
    }
}

async fn explain(store: &SqliteStore, b: &mut QueryBuilder<'_, Sqlite>) -> Vec<String> {
    let rows: Vec<(i64, i64, i64, String)> = b.build_query_as().fetch_all(&store.pool).await.unwrap();
    rows.into_iter().map(|r| r.3).collect()
}

/// Checks one statement's plan against what the reading decided.
fn check(name: &str, plan: &[String], reading: &Reading<'_>) {
    let level = reading.plan.level;
    for step in plan {
        assert!(!step.contains("AUTOMATIC"), "{name}: builds an index: {plan:?}");
        if step.starts_with("SCAN messages") && !step.starts_with("SCAN messages_fts") {
            // The primary key walked newest first, stopping after a page:
            // only when (almost) every message matches.
            assert_eq!(level, Level::All, "{name}: scans messages: {plan:?}");
            assert!(
                reading.plan.matching * 2 >= reading.plan.stored,
                "{name}: walks every message for a sparse filter: {plan:?}"
            );
        }
        if let Some(index) = step.strip_prefix("SEARCH messages USING INDEX ") {
            let expected = level.index().unwrap_or("none");
            assert!(
                index.starts_with(expected),
                "{name}: reads {index}, planned {level:?}: {plan:?}"
            );
        }
        if step.contains("messages_fts VIRTUAL TABLE") && !reading.text_driven() {
            assert!(
                reading.plan.matching <= PROBE_LIMIT,
                "{name}: probes the full-text index for {} rows: {plan:?}",
                reading.plan.matching
            );
        }
    }
    if reading.text_driven() {
        assert!(
            plan.iter()
                .any(|s| s.starts_with("SCAN messages_fts VIRTUAL TABLE")),
            "{name}: a search driven by the full-text index: {plan:?}"
        );
    }
}

#[tokio::test]
async fn every_filter_combination_reads_through_its_planned_index() {
    let (store, dir) = fresh().await;
    skewed(&store).await;
    let mut levels = std::collections::BTreeMap::<String, usize>::new();
    for (name, q, visible) in plan_matrix::matrix() {
        for text in [None, Some("IllegalStateException")] {
            for cursor in [None, Some(15_000)] {
                let q = MessageQuery {
                    q: text.map(str::to_owned),
                    ..q.clone()
                };
                let mut filter = Filter::try_from(&q).unwrap();
                filter.visible = visible.clone();
                let reading = store.reading(&filter, 51).await.unwrap();
                let name = format!("{name} text={text:?} cursor={cursor:?}");
                let mut b = QueryBuilder::<Sqlite>::new("EXPLAIN QUERY PLAN ");
                reading.push_page(&mut b, rows::SUMMARY_COLUMNS, cursor, 51);
                check(&name, &explain(&store, &mut b).await, &reading);
                let mut b = QueryBuilder::<Sqlite>::new("EXPLAIN QUERY PLAN ");
                reading.push_count(&mut b, Some(COUNT_CAP + 1));
                check(
                    &format!("{name} (count)"),
                    &explain(&store, &mut b).await,
                    &reading,
                );
                if reading.counted() {
                    // The total: the kept counts plus the tag's directly
                    // tagged messages, read by their ids alone.
                    let mut b = QueryBuilder::<Sqlite>::new("EXPLAIN QUERY PLAN ");
                    reading.push_tagged_apart(&mut b);
                    let plan = explain(&store, &mut b).await;
                    assert!(
                        plan.iter().all(|s| !s.starts_with("SCAN messages")
                            && !s.starts_with("SEARCH messages USING INDEX")),
                        "{name}: tagged messages apart: {plan:?}"
                    );
                }
                *levels
                    .entry(format!(
                        "{:?} text-driven={}",
                        reading.plan.level,
                        reading.text_driven()
                    ))
                    .or_default() += 1;
            }
        }
    }
    // The matrix exercises every way of reading.
    for level in ["All", "Status", "Vhost", "Queue", "Group"] {
        assert!(
            levels.keys().any(|k| k.starts_with(level)),
            "{level} never planned: {levels:?}"
        );
    }
    assert!(levels.keys().any(|k| k.ends_with("true")), "{levels:?}");
    store.pool.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A redelivered copy looks for its row among the few unsettled batches,
/// each read as a range of the primary key: never a scan of `messages`.
#[tokio::test]
async fn a_redelivered_copy_reads_only_the_rows_of_unsettled_batches() {
    let (store, dir) = fresh().await;
    let explain = format!(
        "EXPLAIN QUERY PLAN {}",
        <super::SqliteStore as crate::store::backend::SqlBackend>::TWINS
    );
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&explain)
        .bind(0_i64)
        .bind("v")
        .bind("q")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    let plan: Vec<String> = rows.into_iter().map(|r| r.3).collect();
    assert!(
        plan.iter()
            .any(|p| p.starts_with("SEARCH m USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)")),
        "{plan:?}"
    );
    assert!(
        !plan
            .iter()
            .any(|p| p.starts_with("SCAN m") || p.contains("AUTOMATIC")),
        "{plan:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn copies_that_came_back_are_found_through_the_partial_replay_id_index() {
    let (store, dir) = fresh().await;
    let explain = format!("EXPLAIN QUERY PLAN {}", super::history::CAME_BACK_AS);
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&explain)
        .bind(1_i64)
        .fetch_all(&store.pool)
        .await
        .unwrap();
    let plan: Vec<String> = rows.into_iter().map(|r| r.3).collect();
    assert!(
        plan.iter().any(|p| p.contains("INDEX messages_replay_id")),
        "{plan:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
