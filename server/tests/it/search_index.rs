//! Full-text indexing off the capture path: a batch is stored without it,
//! the indexer (or a search that cannot wait) covers it afterwards, and
//! nothing stored is ever missing from a search that selects a job.

use std::time::{Duration, Instant};

use crate::common::TestDb;
use app::model::MessageQuery;
use lapin::BasicProperties;
use server::domain::NewMessage;
use server::ingest::decode::{decode, Incoming};
use server::ingest::indexer::{self, IndexerWake};
use server::store::{Filter, Store};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

const WINDOW: Duration = Duration::from_secs(1800);

fn failure(order: usize) -> NewMessage {
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "x-exception-message".into(),
        lapin::types::AMQPValue::LongString(format!("Timeout talking to ledger for order {order}").into()),
    );
    decode(
        Incoming {
            vhost: "v".into(),
            queue: "orders.error.queue".into(),
            exchange: "error.direct".into(),
            routing_key: "orders".into(),
            redelivered: false,
            properties: BasicProperties::default().with_headers(headers),
            body: format!(r#"{{"order":"ord-{order}","amount":12}}"#).into_bytes(),
        },
        OffsetDateTime::now_utc(),
    )
}

async fn store_burst(store: &Store, n: usize) {
    let all: Vec<NewMessage> = (0..n).map(failure).collect();
    for batch in all.chunks(200) {
        store.insert_batch(batch, WINDOW).await.unwrap();
    }
}

fn search(text: &str) -> MessageQuery {
    MessageQuery {
        q: Some(text.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_search_sees_messages_committed_before_the_indexer_ran() {
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    store_burst(&store, 30).await;
    assert_eq!(store.unindexed().await.unwrap(), 30, "capture does not index");

    let page = store.list_within(&search("ord-7"), None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!((page.total, page.unsearchable), (1, 0));
    assert_eq!(store.unindexed().await.unwrap(), 0);
    // A page without search text leaves the indexer's work to the indexer.
    store_burst(&store, 5).await;
    let page = store.list_within(&MessageQuery::default(), None).await.unwrap();
    assert_eq!((page.total, page.unsearchable), (35, 0));
    assert_eq!(store.unindexed().await.unwrap(), 5);
}

#[tokio::test]
async fn a_page_in_a_burst_says_what_it_cannot_see_yet_and_a_selection_sees_all() {
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    store_burst(&store, 2_600).await;

    // A page indexes a bounded amount on the spot and names the rest
    // (counted exactly: a search's total stops at COUNT_CAP otherwise).
    let exact = MessageQuery {
        exact: Some(true),
        ..search("ledger")
    };
    let page = store.list_within(&exact, None).await.unwrap();
    assert_eq!(page.unsearchable, 600);
    assert_eq!(page.total, 2_000);
    assert_eq!(page.items[0].id, 2_000, "newest indexed match first");

    // A selection (job, export) waits for the whole index.
    let filter = Filter::try_from(&search("ledger")).unwrap();
    assert_eq!(store.searchable(&filter, None).await.unwrap(), 0);
    assert_eq!(store.count_matching(&filter, None).await.unwrap(), 2_600);
    let page = store.list_within(&exact, None).await.unwrap();
    assert_eq!((page.total, page.unsearchable), (2_600, 0));
}

#[tokio::test]
async fn the_indexer_catches_up_on_its_own_and_survives_restarts() {
    let db = TestDb::new();
    let store = server::store::connect(&db.url()).await.unwrap();
    store_burst(&store, 1_200).await;
    let (wake, stop) = (IndexerWake::default(), CancellationToken::new());
    let task = tokio::spawn(indexer::run(store.clone(), wake.clone(), stop.clone()));
    wait_indexed(&store).await;
    store_burst(&store, 10).await;
    wake.wake();
    wait_indexed(&store).await;
    stop.cancel();
    task.await.unwrap();

    // A reopened store keeps its mark: nothing is indexed twice.
    drop(store);
    let store = server::store::connect(&db.url()).await.unwrap();
    assert_eq!(store.unindexed().await.unwrap(), 0);
    assert_eq!(store.index_pending(100).await.unwrap(), 0);
    let filter = Filter::try_from(&search("ledger")).unwrap();
    assert_eq!(store.count_matching(&filter, None).await.unwrap(), 1_210);
}

async fn wait_indexed(store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.unindexed().await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "the indexer never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
