//! The background runner: one task per running job, restarted with backoff
//! when it stops on an error (database or broker unreachable).

use std::collections::HashMap;
use std::time::Duration;

use app::model::{JobAction, JobState};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::replay_lease;
use super::Jobs;
use crate::lease::{Lease, RENEW_EVERY};

/// How often the runner looks for jobs to start or resume.
const POLL: Duration = Duration::from_millis(250);
/// How often replays abandoned by a dead instance are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// Messages discarded per transaction.
const DISCARD_BATCH: usize = 500;

/// A job this instance drives: its task, the token that stops it when the
/// lease is lost, and when the lease was last renewed.
struct Driven {
    task: JoinHandle<anyhow::Result<()>>,
    stop: CancellationToken,
    renewed: Instant,
}

/// Runs jobs in the background: one task per running job whose lease this
/// instance holds (see `lease`), so each job runs on one instance at a time
/// and moves to another when its holder dies.
///
/// A job that stops on an error (database or broker unreachable) keeps its
/// place: its current message stays pending and the job is retried with
/// backoff, its note telling the operator what it waits for.
pub async fn run(jobs: Jobs, shutdown: CancellationToken) {
    let mut driven: HashMap<i64, Driven> = HashMap::new();
    let mut backoff: HashMap<i64, (u32, Instant)> = HashMap::new();
    // Jobs another instance holds, and when their lease was last tried.
    let mut foreign: HashMap<i64, Instant> = HashMap::new();
    let mut last_sweep = Instant::now();
    loop {
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = Instant::now();
            let stale = crate::store::now_ms() - replay_lease(&jobs.config).as_millis() as i64;
            match jobs.store.sweep_abandoned_replays(stale).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(settled = n, "abandoned replays flagged: outcome unknown"),
                Err(e) => tracing::warn!(error = %e, "sweeping abandoned replays failed"),
            }
        }
        for (id, done) in driven.extract_if(|_, d| d.task.is_finished()) {
            jobs.leases.release(Lease::Job(id)).await;
            match done.task.await {
                Ok(Ok(())) => {
                    backoff.remove(&id);
                }
                Ok(Err(e)) => {
                    let attempts = backoff.get(&id).map_or(0, |b| b.0) + 1;
                    let wait = retry_delay(attempts);
                    tracing::warn!(job = id, error = ?e, retry_in = ?wait, "job interrupted; it resumes on its own");
                    let note = format!("waiting: {e:#}; retrying in {}s", wait.as_secs());
                    if let Err(e) = jobs.store.set_job_note(id, Some(&note)).await {
                        tracing::warn!(job = id, error = %e, "recording why the job waits failed");
                    }
                    backoff.insert(id, (attempts, Instant::now() + wait));
                }
                Err(e) => tracing::error!(job = id, error = %e, "job task panicked"),
            }
        }
        renew(&jobs, &mut driven).await;
        if let Err(e) = super::schedule::start_due(&jobs).await {
            tracing::warn!(error = %e, "starting scheduled jobs failed");
        }
        match jobs.store.running_jobs().await {
            Ok(ids) => {
                foreign.retain(|id, _| ids.contains(id));
                for id in ids {
                    let waiting = backoff.get(&id).is_some_and(|b| b.1 > Instant::now());
                    let tried_lately = foreign.get(&id).is_some_and(|at| at.elapsed() < RENEW_EVERY);
                    if driven.contains_key(&id) || waiting || tried_lately {
                        continue;
                    }
                    if !jobs.leases.hold(Lease::Job(id)).await {
                        foreign.insert(id, Instant::now());
                        continue;
                    }
                    if foreign.remove(&id).is_some() {
                        tracing::warn!(
                            job = id,
                            "took over a job whose instance stopped renewing its lease"
                        );
                    }
                    let stop = shutdown.child_token();
                    let (r, token, retry) = (jobs.clone(), stop.clone(), backoff.contains_key(&id));
                    let task = tokio::spawn(async move { drive(&r, id, &token, retry).await });
                    driven.insert(
                        id,
                        Driven {
                            task,
                            stop,
                            renewed: Instant::now(),
                        },
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing running jobs failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    for (id, d) in driven {
        let _ = d.task.await;
        // Another instance resumes the job at once instead of after the expiry.
        jobs.leases.release(Lease::Job(id)).await;
    }
}

/// Renews the lease of every job driven here; a job whose lease cannot be
/// renewed is stopped, since another instance may take it over once it
/// expires (its claims keep what was done from being done twice).
async fn renew(jobs: &Jobs, driven: &mut HashMap<i64, Driven>) {
    for (id, d) in driven.iter_mut() {
        if d.renewed.elapsed() < RENEW_EVERY || d.stop.is_cancelled() {
            continue;
        }
        if jobs.leases.hold(Lease::Job(*id)).await {
            d.renewed = Instant::now();
        } else {
            tracing::warn!(job = id, "lost the job's lease; stopping it here");
            d.stop.cancel();
        }
    }
}

/// The wait before a failed job's `attempts`-th restart.
fn retry_delay(attempts: u32) -> Duration {
    let policy = crate::retry::job_restart();
    crate::retry::delay(policy, attempts.saturating_sub(1) as usize).unwrap_or(Duration::from_secs(30))
}

/// Works through one job until it is done, paused, cancelled or Redrive stops.
async fn drive(r: &Jobs, id: i64, shutdown: &CancellationToken, retrying: bool) -> anyhow::Result<()> {
    let spec = r.store.job_spec(id).await?;
    if spec.action == JobAction::Discard {
        return discard(r, id, &spec.actor, shutdown, retrying).await;
    }
    super::replay::run(r, &spec, shutdown, retrying).await
}

/// A discard job: batches of transitions, checking for pause and cancel
/// between them.
async fn discard(
    r: &Jobs,
    id: i64,
    user: &str,
    shutdown: &CancellationToken,
    mut retrying: bool,
) -> anyhow::Result<()> {
    loop {
        if shutdown.is_cancelled() || r.store.job_spec(id).await?.state != JobState::Running {
            return Ok(());
        }
        let discarded = r.store.discard_job_batch(id, user, DISCARD_BATCH).await?;
        r.indexer.foreground_commit();
        if discarded == 0 {
            super::replay::complete(r, id).await?;
            return Ok(());
        }
        if std::mem::take(&mut retrying) {
            // Progress again: the "waiting" note no longer holds.
            r.store.set_job_note(id, None).await?;
        }
    }
}
