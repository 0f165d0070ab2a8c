//! A surviving instance's job claims while the sweep settles a dead
//! instance's replays as "outcome unknown", on two connection pools (two
//! instances on PostgreSQL; one instance's tasks on SQLite). Each item ends
//! with one verdict: the sweep's. None is claimed again (a silent retry of
//! a replay that may have reached the broker), and none is overwritten as
//! "skipped" (which counted it done, and told the operator nothing).

use std::time::Duration;

use app::model::{JobAction, ReplayPlan};
use server::store::{ClaimRequest, Filter, NewJob, Store};

use crate::common::{received, TestDb};

const MESSAGES: usize = 1_500;
const BATCH: usize = 100;
const ROUNDS: usize = 3;
const WINDOW: Duration = Duration::from_secs(1800);

fn failure(round: usize, n: usize) -> server::domain::NewMessage {
    let body = format!("failure {round}/{n}").into_bytes();
    received(&format!("r{round}.dlq"), body, lapin::BasicProperties::default())
}

/// A replay job over `queue`'s messages, all claimed by `owner`, which then
/// dies: its items pending, its messages `replaying` under its lease.
async fn claimed_by_a_dead_instance(store: &Store, queue: &str, owner: &str) -> i64 {
    let filter = Filter {
        queue: Some(queue.into()),
        ..Filter::default()
    };
    let job = NewJob {
        action: JobAction::Replay,
        actor: "ops",
        selection: serde_json::json!({ "queue": queue }),
        exchange: Some(String::new()),
        routing_key: Some("replayed".into()),
        rate_per_sec: None,
        plan: &ReplayPlan::PLAIN,
        start_at: None,
        approval: None,
    };
    let id = store.create_job(job, &filter).await.unwrap().unwrap();
    let mut n = 0;
    let claim = ClaimRequest {
        after: 0,
        limit: MESSAGES,
    };
    let batch = store
        .job_step(id, owner, "ops", &[], Some(claim), &mut || {
            n += 1;
            format!("{owner}-{n}")
        })
        .await
        .unwrap();
    assert_eq!(batch.claimed.len(), MESSAGES);
    id
}

/// The survivor's claims over the job, pass after pass, until no item is
/// pending; returns how many it claimed and how many it skipped.
async fn survivor_claims(store: Store, job: i64) -> (usize, usize) {
    let (mut claimed, mut skipped, mut after) = (0, 0, 0);
    let mut n = 0;
    loop {
        let claim = ClaimRequest { after, limit: BATCH };
        let batch = store
            .job_step(job, "survivor", "ops", &[], Some(claim), &mut || {
                n += 1;
                format!("survivor-{n}")
            })
            .await
            .unwrap();
        claimed += batch.claimed.len();
        skipped += batch.skipped;
        match batch.last {
            Some(last) => after = last,
            None if store.job(job).await.unwrap().remaining == 0 => return (claimed, skipped),
            None => {
                after = 0;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweep_and_a_survivors_claims_settle_each_item_once() {
    let db = TestDb::new();
    let (first, second) = db.two_stores().await;
    // Several rounds: each meets the sweep's commit at another moment of
    // the survivor's pass.
    for round in 0..ROUNDS {
        let batch: Vec<_> = (0..MESSAGES).map(|n| failure(round, n)).collect();
        first.insert_batch(&batch, WINDOW).await.unwrap();
        let queue = format!("r{round}.dlq");
        let job = claimed_by_a_dead_instance(&first, &queue, "victim").await;

        let survivor = tokio::spawn(survivor_claims(second.clone(), job));
        tokio::time::sleep(Duration::from_millis(5 * round as u64)).await;
        let swept = first
            .sweep_abandoned_replays(server::store::now_ms() + 1)
            .await
            .unwrap();
        assert_eq!(swept, MESSAGES as u64, "round {round}");
        let (claimed, skipped) = survivor.await.unwrap();
        assert_eq!(
            (claimed, skipped),
            (0, 0),
            "round {round}: claimed again, or skipped"
        );

        let j = first.job(job).await.unwrap();
        assert_eq!(
            (j.done, j.failed, j.remaining),
            (0, MESSAGES as i64, 0),
            "round {round}"
        );
        let problems = first.job_problems(job, MESSAGES as i64 + 1).await.unwrap();
        assert_eq!(problems.len(), MESSAGES);
        for p in &problems {
            assert_eq!(p.state, "failed", "{p:?}");
            assert!(
                p.error.as_deref().unwrap_or("").contains("outcome unknown"),
                "{p:?}"
            );
            let flagged = first.uncertain_replay_id(p.message_id).await.unwrap();
            assert!(flagged.is_some_and(|r| r.starts_with("victim-")), "{p:?}");
        }
    }
}
