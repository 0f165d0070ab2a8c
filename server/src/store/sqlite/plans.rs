//! The list's query plans, checked with `EXPLAIN QUERY PLAN` against a real
//! (fresh) database: every shape the UI asks for must be read in index order
//! and stop after a page, so a million stored messages cost no more than ten;
//! and its count, which stops at [`COUNT_CAP`] unless asked to be exact.

use app::model::{MessageQuery, COUNT_CAP};
use sqlx::{QueryBuilder, Sqlite};

use super::select::FilterSql;
use super::SqliteStore;
use crate::store::api::MessageStore;
use crate::store::filter::Filter;
use crate::store::rows;

async fn plan(store: &SqliteStore, q: MessageQuery, cursor: Option<i64>) -> Vec<String> {
    let mut filter = Filter::try_from(&q).unwrap();
    // Every page a user asks for carries the vhosts they may see.
    filter.visible = Some(vec!["/".into(), "payments".into()]);
    let mut b = QueryBuilder::<Sqlite>::new("EXPLAIN QUERY PLAN ");
    filter.push_select(&mut b, rows::SUMMARY_COLUMNS);
    filter.push_page(&mut b, cursor, 51);
    let rows: Vec<(i64, i64, i64, String)> = b.build_query_as().fetch_all(&store.pool).await.unwrap();
    rows.into_iter().map(|r| r.3).collect()
}

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
    assert_eq!((page.total, page.total_capped), (COUNT_CAP, true));
    assert_eq!(page.items.len(), 50);
    let exact = MessageQuery {
        exact: Some(true),
        ..Default::default()
    };
    let page = store.list_within(&exact, Some(&visible[..])).await.unwrap();
    assert_eq!((page.total, page.total_capped), (stored, false));
    let few = MessageQuery {
        cursor: Some("4".into()),
        queue: text("orders.error.queue"),
        ..Default::default()
    };
    let page = store.list_within(&few, Some(&visible[..])).await.unwrap();
    assert_eq!(page.items.iter().map(|m| m.id).collect::<Vec<_>>(), [3, 2, 1]);
    assert!(page.total_capped, "the count ignores the cursor: all matches");
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

#[tokio::test]
async fn every_list_shape_reads_one_page_in_index_order() {
    let (store, dir) = fresh().await;
    let queue = MessageQuery {
        vhost: text("/"),
        queue: text("orders.error.queue"),
        ..Default::default()
    };
    let cases = [
        ("first page", MessageQuery::default(), None, "SCAN messages"),
        (
            "deep cursor",
            MessageQuery::default(),
            Some(500_000),
            "SEARCH messages USING INTEGER PRIMARY KEY",
        ),
        ("queue", queue.clone(), None, "USING INDEX messages_queue_id"),
        (
            "queue + status",
            MessageQuery {
                status: text("failed"),
                ..queue.clone()
            },
            Some(500_000),
            "USING INDEX messages_queue_status_id",
        ),
        (
            "status",
            MessageQuery {
                status: text("failed"),
                ..Default::default()
            },
            None,
            "USING INDEX messages_status_id",
        ),
        (
            "group",
            MessageQuery {
                group: text("g"),
                ..Default::default()
            },
            None,
            "USING INDEX messages_group_id",
        ),
        (
            "search",
            MessageQuery {
                q: text("orders_customer_fk"),
                ..Default::default()
            },
            Some(500_000),
            "SCAN messages_fts VIRTUAL TABLE",
        ),
    ];
    for (name, q, cursor, expected) in cases {
        let plan = plan(&store, q, cursor).await;
        assert!(
            plan.iter().any(|step| step.contains(expected)),
            "{name}: expected `{expected}` in {plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{name}: sorts instead of reading in index order: {plan:?}"
        );
    }
    store.pool.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A redelivered copy looks for its row among the few unsettled batches,
/// each read as a range of the primary key: never a scan of `messages`.
#[tokio::test]
async fn a_redelivered_copy_reads_only_the_rows_of_unsettled_batches() {
    let (store, dir) = fresh().await;
    let explain = format!("EXPLAIN QUERY PLAN {}", super::TWINS);
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
