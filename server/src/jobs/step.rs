//! A replay job's database side: one transaction that records verdicts and
//! claims the next messages, run beside the publishing so the broker never
//! waits for the disk and the disk syncs once per step, not per message.

use std::sync::Arc;

use app::model::ReplayTarget;
use backon::Retryable;
use tokio::task::JoinHandle;

use crate::domain::Mask;
use crate::replay::{prepare, Outgoing};
use crate::store::{ClaimRequest, JobReplayOutcome, Settlement, Store};

/// What a publish stands for, from claim to verdict.
pub use crate::store::JobReplay as Item;

/// A claimed message, prepared: ready to publish, or refused before sending
/// (e.g. its original exchange is unknown).
pub struct Ready {
    pub item: Item,
    pub out: Result<Outgoing, String>,
}

/// What a step did.
pub struct Stepped {
    pub claimed: Vec<Ready>,
    /// Whether it claimed at all (a step may only record verdicts).
    pub claimed_any: bool,
    /// The highest message id looked at; `None` when nothing was left.
    pub last: Option<i64>,
    /// Items left pending because another replay holds their message.
    pub held: usize,
    /// Replays confirmed among the verdicts it recorded.
    pub replayed: i64,
}

/// What a step needs, owned, so it can run on its own task.
pub struct StepInput {
    pub store: Store,
    pub job_id: i64,
    pub owner: Arc<str>,
    pub user: String,
    pub target: ReplayTarget,
    pub outcomes: Vec<JobReplayOutcome>,
    pub claim: Option<ClaimRequest>,
}

/// Runs a step on a task of its own.
pub fn spawn(input: StepInput) -> JoinHandle<anyhow::Result<Stepped>> {
    tokio::spawn(run(input))
}

/// Retries while the database fails (the transaction rolled back, so a retry
/// is the same step): a confirmed replay must not stay `replaying` because
/// one write failed. Past a minute the job stops; the lease sweep flags what
/// stays unrecorded.
async fn run(input: StepInput) -> anyhow::Result<Stepped> {
    let step = || async {
        let mut new_id = || uuid::Uuid::now_v7().to_string();
        let i = &input;
        i.store
            .job_step(i.job_id, &i.owner, &i.user, &i.outcomes, i.claim, &mut new_id)
            .await
    };
    let batch = step
        .retry(crate::retry::recorded_write())
        .notify(|e, wait| {
            tracing::warn!(job = input.job_id, error = %e, retry_in = ?wait, "a replay job's database step failed; retrying");
        })
        .await?;
    let replayed = input
        .outcomes
        .iter()
        .filter(|o| o.settlement == Settlement::Replayed)
        .count() as i64;
    let claimed = batch
        .claimed
        .into_iter()
        .map(|c| {
            let m = &c.message;
            // A bulk job sends messages as stored: no edit, no diff to mask.
            let out = prepare(m, &input.target, c.replay_id.clone(), &Mask::default());
            let item = Item {
                message_id: m.id(),
                vhost: m.vhost().to_owned(),
                replay_id: c.replay_id,
                exchange: match &out {
                    Ok(o) => o.exchange.clone(),
                    Err(_) => input
                        .target
                        .exchange
                        .clone()
                        .or_else(|| m.original_exchange().map(str::to_owned))
                        .unwrap_or_default(),
                },
                routing_key: out.as_ref().map(|o| o.routing_key.clone()).unwrap_or_default(),
                target: out.as_ref().map(Outgoing::target).unwrap_or_default(),
            };
            Ready {
                item,
                out: out.map_err(|e| e.to_string()),
            }
        })
        .collect();
    Ok(Stepped {
        claimed_any: input.claim.is_some(),
        claimed,
        last: batch.last,
        held: batch.held,
        replayed,
    })
}
