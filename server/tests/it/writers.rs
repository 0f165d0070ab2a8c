//! Writers side by side: capture batches and search indexers of two
//! instances on one PostgreSQL database (on SQLite, one instance's tasks)
//! commit in any order. Every message is one row with its own id, counted
//! once, searchable once, and every batch's ack marker finds its rows.

use std::collections::HashSet;
use std::time::Duration;

use lapin::BasicProperties;
use server::store::{AckState, Filter, Store};

use crate::common::{received, TestDb};

const WRITERS: usize = 4;
const BATCHES: usize = 25;
const PER_BATCH: usize = 120;
const WINDOW: Duration = Duration::from_secs(1800);

/// A failure of queue `q{writer % 2}`, unique by its body, with a word
/// every one of them shares (`needle`) and one only it has.
fn failure(writer: usize, n: usize) -> server::domain::NewMessage {
    let properties = BasicProperties::default().with_message_id(format!("w{writer}-{n}").into());
    let body = format!(r#"{{"writer":{writer},"n":{n},"note":"needle w{writer}x{n}"}}"#).into_bytes();
    received(&format!("q{}.dlq", writer % 2), body, properties)
}

/// One writer: its batches, each committed, then marked as capture marks
/// them (in flight, settled); returns the ids it was given.
async fn write(store: Store, writer: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for b in 0..BATCHES {
        let batch: Vec<_> = (0..PER_BATCH)
            .map(|i| failure(writer, b * PER_BATCH + i))
            .collect();
        let committed = store.insert_batch(&batch, WINDOW).await.unwrap();
        assert_eq!(committed.stored, PER_BATCH);
        assert_eq!(committed.ids.len(), PER_BATCH);
        let marked = committed.batch.expect("a batch that stored rows is named");
        store.set_ack_state(marked, AckState::InFlight).await.unwrap();
        store.set_ack_state(marked, AckState::Settled).await.unwrap();
        ids.extend(committed.ids);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn side_by_side_writers_keep_every_message_once_counted_and_searchable() {
    let db = TestDb::new();
    let (first, second) = db.two_stores().await;
    let stores = [first.clone(), second.clone()];
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(write(stores[w % 2].clone(), w)))
        .collect();
    // Both indexers run while the batches commit, so they meet batches
    // committed out of id order.
    let stop = tokio_util::sync::CancellationToken::new();
    let indexers: Vec<_> = stores
        .iter()
        .map(|store| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut indexed = 0;
                while !stop.is_cancelled() {
                    indexed += store.index_pending(300).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                indexed
            })
        })
        .collect();
    let mut ids = Vec::new();
    for w in writers {
        ids.extend(w.await.unwrap());
    }
    stop.cancel();
    let mut indexed = 0;
    for i in indexers {
        indexed += i.await.unwrap();
    }
    while let n @ 1.. = second.index_pending(300).await.unwrap() {
        indexed += n;
    }

    let total = WRITERS * BATCHES * PER_BATCH;
    let distinct: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!((ids.len(), distinct.len()), (total, total), "an id per message");
    assert_eq!(first.count().await.unwrap(), total as i64, "counted once");
    assert_eq!(
        first.count_by_status().await.unwrap(),
        vec![("failed".to_owned(), total as i64)]
    );
    assert_eq!(indexed, total, "each message indexed once");
    assert_eq!(first.unindexed().await.unwrap(), 0);
    let search = |text: &str| Filter {
        text: Some(text.into()),
        ..Filter::default()
    };
    assert_eq!(
        first.count_matching(&search("needle"), None).await.unwrap(),
        total as i64
    );
    assert_eq!(second.count_matching(&search("w3x2999"), None).await.unwrap(), 1);
    let queue = Filter {
        queue: Some("q1.dlq".into()),
        ..Filter::default()
    };
    assert_eq!(
        first.count_matching(&queue, None).await.unwrap(),
        total as i64 / 2
    );

    let mut conn = db.raw_connection().await;
    let unsettled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ack_batches")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(unsettled, 0, "every batch's markers found all its runs");
}
