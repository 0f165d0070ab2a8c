//! Browsing under every filter: each combination of the list's filters,
//! with and without search text, first page and a deep page, returns
//! exactly what a plain scan of the store returns (`export_batch`, which
//! tests every row), and counts it right. Runs on the suite's database
//! (SQLite, or PostgreSQL with `REDRIVE_TEST_POSTGRES`). The plans
//! themselves are checked in `store::sqlite::plans` and below for PostgreSQL.

use std::time::Duration;

use crate::common::{headers, s, TestDb};
use app::model::{AnnotationChange, AnnotationTarget, MessageQuery, MessageStatus};
use lapin::BasicProperties;
use server::domain::NewMessage;
use server::ingest::decode::{decode, Incoming};
use server::store::{Filter, Store};
use time::OffsetDateTime;

const WINDOW: Duration = Duration::from_secs(1800);
/// Past the store's probe limit, so searches inside a large filter are
/// driven from the full-text index and inside a small one probed.
const STORED: usize = 5_200;
const EXCEPTIONS: [&str; 3] = [
    "java.lang.IllegalStateException",
    "org.springframework.dao.DataIntegrityViolationException",
    "java.net.SocketTimeoutException",
];

/// A Spring failure: 90 % in vhost `big`, a quarter from `pay`, three
/// exception types (so three groups per service), received in order but
/// for a few late arrivals.
fn failure(i: usize, base: OffsetDateTime) -> NewMessage {
    let (vhost, service) = (
        if i.is_multiple_of(10) { "small" } else { "big" },
        if i.is_multiple_of(4) { "pay" } else { "trade" },
    );
    let exception = EXCEPTIONS[i % 3];
    let h = headers(&[
        (
            "x-exception-message",
            s(&format!("{exception}: order ord-{i} could not be placed")),
        ),
        (
            "x-exception-stacktrace",
            s(&format!(
                "{exception}: order ord-{i}\n\tat com.example.{service}.Listener.on(Listener.java:31)\n"
            )),
        ),
        ("x-original-exchange", s("orders")),
        ("x-original-routingKey", s("order.created")),
    ]);
    // Every 500th message arrives 40 s late: `received_at` is not in id order.
    let late = if i % 500 == 7 { 40 } else { 0 };
    decode(
        Incoming {
            vhost: vhost.into(),
            queue: format!("{service}.error.queue"),
            exchange: "error.direct".into(),
            routing_key: service.into(),
            redelivered: false,
            properties: BasicProperties::default().with_headers(h),
            body: format!(
                r#"{{"orderId":"ord-{i}","sku":"SKU-{}","customer":"orders_customer_fk"}}"#,
                i % 40
            )
            .into_bytes(),
        },
        base + time::Duration::seconds(i as i64 - late),
    )
}

async fn fill(store: &Store) -> (String, OffsetDateTime) {
    let base = OffsetDateTime::now_utc() - time::Duration::days(1);
    let all: Vec<NewMessage> = (0..STORED).map(|i| failure(i, base)).collect();
    for batch in all.chunks(400) {
        store.insert_batch(batch, WINDOW).await.unwrap();
    }
    // Some replayed and discarded, a tag on a group and on single messages.
    for id in (3..STORED as i64).step_by(97) {
        store
            .transition(id, &[MessageStatus::Failed], MessageStatus::Discarded, None)
            .await
            .unwrap();
    }
    for id in (5..STORED as i64).step_by(89) {
        store
            .transition(id, &[MessageStatus::Failed], MessageStatus::Replayed, None)
            .await
            .unwrap();
    }
    let pay_group = store.detail(5).await.unwrap().summary.group_id.expect("a group");
    let hot = AnnotationChange::AddTag("hot".into());
    store
        .annotate(&AnnotationTarget::Group(pay_group.clone()), &hot, "t")
        .await
        .unwrap();
    for id in [2, 1_001, 5_003] {
        store
            .annotate(&AnnotationTarget::Message(id), &hot, "t")
            .await
            .unwrap();
    }
    let every = Filter {
        text: Some("orders_customer_fk".into()),
        ..Default::default()
    };
    store.searchable(&every, None).await.unwrap();
    (pay_group, base)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// Every combination of the filters, each with values that match some
/// messages (and, combined, sometimes none).
fn matrix(group: &str, base: OffsetDateTime) -> Vec<(String, MessageQuery, Vec<String>)> {
    (0u32..256)
        .map(|bits| {
            let on = |bit: u32| bits & (1 << bit) != 0;
            let q = MessageQuery {
                vhost: on(0).then(|| "small".to_owned()),
                queue: on(1).then(|| "pay.error.queue".to_owned()),
                service: on(2).then(|| "pay".to_owned()),
                group: on(3).then(|| group.to_owned()),
                tag: on(4).then(|| "hot".to_owned()),
                status: on(5).then(|| "failed".to_owned()),
                from: on(6).then(|| rfc3339(base + time::Duration::seconds(1_000))),
                to: on(6).then(|| rfc3339(base + time::Duration::seconds(4_000))),
                ..Default::default()
            };
            let visible = if on(7) {
                vec!["small".to_owned()]
            } else {
                vec!["big".to_owned(), "small".to_owned()]
            };
            (format!("filters {bits:08b}"), q, visible)
        })
        .collect()
}

/// What a scan of every row returns for the query, newest first.
async fn scanned(store: &Store, q: &MessageQuery, visible: &[String], before: Option<i64>) -> Vec<i64> {
    let mut filter = Filter::try_from(q).unwrap();
    filter.visible = Some(visible.to_vec());
    store
        .export_batch(&filter, before, STORED as i64)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id())
        .collect()
}

#[tokio::test]
async fn every_filter_combination_lists_and_counts_what_a_scan_finds() {
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    let (group, base) = fill(&store).await;
    let mut nonempty = 0;
    for (name, q, visible) in matrix(&group, base) {
        for text in [None, Some("ord-1001"), Some("SKU-7"), Some("orders_customer_fk")] {
            let q = MessageQuery {
                q: text.map(str::to_owned),
                limit: Some(20),
                exact: Some(true),
                ..q.clone()
            };
            let all = scanned(&store, &q, &visible, None).await;
            let page = store.list_within(&q, Some(&visible)).await.unwrap();
            let ids: Vec<i64> = page.items.iter().map(|m| m.id).collect();
            let want: Vec<i64> = all.iter().take(20).copied().collect();
            assert_eq!(ids, want, "{name} text={text:?}: first page");
            assert_eq!(
                (page.total, page.total_capped),
                (all.len() as i64, false),
                "{name} text={text:?}: total"
            );
            // Counted up to a cap, as pages are unless asked for exact totals.
            let mut filter = Filter::try_from(&q).unwrap();
            filter.visible = Some(visible.clone());
            let capped = store.count_matching(&filter, Some(7)).await.unwrap();
            // Without text or time bounds, the kept counts answer exactly;
            // otherwise a capped count is a lower bound (SQLite's stops
            // after reading 8 of the text's matches, however many pass).
            if text.is_none() && q.from.is_none() && q.to.is_none() {
                assert_eq!(capped, all.len() as i64, "{name}: counted total");
            } else {
                assert!(
                    capped <= all.len().min(7) as i64,
                    "{name} text={text:?}: capped total {capped}"
                );
            }
            nonempty += usize::from(!all.is_empty());
            // A deep page: from the middle of the matches.
            if let Some(&middle) = all.get(all.len() / 2) {
                let deep = MessageQuery {
                    cursor: Some(middle.to_string()),
                    ..q.clone()
                };
                let page = store.list_within(&deep, Some(&visible)).await.unwrap();
                let ids: Vec<i64> = page.items.iter().map(|m| m.id).collect();
                let want: Vec<i64> = all.iter().filter(|&&id| id < middle).take(20).copied().collect();
                assert_eq!(ids, want, "{name} text={text:?}: page after {middle}");
            }
        }
    }
    assert!(
        nonempty > 300,
        "the matrix matches messages: {nonempty} non-empty cells"
    );
}

/// Counts the monitor, the overview and `/metrics` read are kept by the
/// store, exact through inserts, status changes and purges.
#[tokio::test]
async fn kept_counts_follow_every_change() {
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    let base = OffsetDateTime::now_utc();
    let batch: Vec<NewMessage> = (0..40).map(|i| failure(i, base)).collect();
    store.insert_batch(&batch, WINDOW).await.unwrap();
    store
        .transition(1, &[MessageStatus::Failed], MessageStatus::Discarded, None)
        .await
        .unwrap();
    store
        .transition(2, &[MessageStatus::Failed], MessageStatus::Replayed, None)
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 40);
    let by_status = store.count_by_status().await.unwrap();
    assert_eq!(
        by_status,
        [
            ("discarded".to_owned(), 1),
            ("failed".to_owned(), 38),
            ("replayed".to_owned(), 1)
        ]
    );
    let unhandled = store.unhandled_counts().await.unwrap();
    let failed_in = |v: &str, q: &str| unhandled.get(&(v.to_owned(), q.to_owned())).map(|c| c.0);
    // Ids 1 and 2 are messages 0 and 1: pay in small, trade in big.
    assert_eq!(failed_in("small", "pay.error.queue"), Some(2 - 1));
    assert_eq!(failed_in("big", "trade.error.queue"), Some(28 - 1));
    // A deleted message (retention, or another process) is counted out.
    let mut conn = db.raw_connection().await;
    sqlx::query("DELETE FROM messages WHERE id = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 39);
    let by_status = store.count_by_status().await.unwrap();
    assert_eq!(by_status, [("failed".to_owned(), 38), ("replayed".to_owned(), 1)]);
}
