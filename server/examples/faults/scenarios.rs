//! The scenarios. Each builds its own vhost and database, injects one fault
//! while Redrive works, lets it recover, and counts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::harness::*;
use crate::Outcome;

const BACKLOG: u32 = 20_000;
/// Body padding: about 1 KiB of JSON, plus Spring's headers and a 2 KB trace.
const PAD: usize = 1000;
const SETTLE: Duration = Duration::from_secs(180);

/// A vhost, a directory for the database, and the management URL to use.
struct Setup {
    broker: Broker,
    dir: PathBuf,
    db: Db,
}

impl Setup {
    async fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("redrive-faults-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            broker: Broker::new().await?,
            db: Db::in_dir(&dir),
            dir,
        })
    }

    async fn redrive(&self) -> anyhow::Result<Redrive> {
        self.redrive_with(MGMT, &[]).await
    }

    async fn redrive_with(&self, management_url: &str, extra: &[(&str, &str)]) -> anyhow::Result<Redrive> {
        Redrive::start(Launch {
            broker: &self.broker,
            db: &self.db,
            management_url,
            extra,
        })
        .await
    }

    /// Waits until `rows` are stored.
    async fn stored_at_least(&self, rows: u64, timeout: Duration) -> anyhow::Result<Duration> {
        until(timeout, || async { self.db.rows().await >= rows })
            .await
            .with_context(|| format!("{rows} rows not stored within {timeout:?}"))
    }

    /// Waits until more than `before` rows are stored: capture has resumed.
    async fn resumed_after(&self, before: u64) -> anyhow::Result<Duration> {
        self.stored_at_least(before + 1, SETTLE).await
    }

    /// Like `resumed_after` while the process lived through the fault: the
    /// deliveries in hand (up to the prefetch window, `REDRIVE_PREFETCH`,
    /// 2,000: a batch committing, one waiting, one filling) may still be
    /// committed after the connection is gone, so only rows beyond them
    /// prove that deliveries flow again.
    async fn reconnected_after(&self, before: u64) -> anyhow::Result<Duration> {
        self.stored_at_least(before + 2_001, SETTLE).await
    }

    /// Waits for the error queue to drain and every message to be stored,
    /// then an extra second for a would-be duplicate, and counts. A second
    /// row flagged as a possible copy (its ack was in flight at the fault)
    /// is shown to the operator: flagged, not a silent duplicate.
    async fn ingest_outcome(&mut self, sent: u32) -> anyhow::Result<Outcome> {
        let start = Instant::now();
        loop {
            let rows = self.db.rows().await;
            if rows >= u64::from(sent) && self.broker.depth(ERROR_QUEUE).await? == 0 {
                break;
            }
            if start.elapsed() > SETTLE {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = self.db.stored().await;
        Ok(Outcome {
            sent: u64::from(sent),
            arrived: s.rows,
            lost: u64::from(sent).saturating_sub(s.distinct),
            duplicated: (s.rows - s.distinct).saturating_sub(s.possible_copies),
            flagged: s.possible_copies,
            ..Default::default()
        })
    }

    async fn cleanup(self) {
        self.broker.cleanup().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The broker closes Redrive's connections three times during a
/// 400,000-message ingest (long enough to see it come back each time: at
/// 14,000 msg/s a round took 45,000; 100,000 ran out after two, and
/// 200,000 once capture reached 16,000 msg/s).
pub async fn connections_closed() -> anyhow::Result<Outcome> {
    const TOTAL: u32 = 20 * BACKLOG;
    let mut s = Setup::new().await?;
    s.broker.publish_failures(0, TOTAL, PAD).await?;
    let mut redrive = s.redrive().await?;
    s.stored_at_least(2_000, SETTLE).await?;
    let mut worst = Duration::ZERO;
    let mut closes = 0;
    let mut rounds = 0;
    for _ in 0..3 {
        if s.db.rows().await + 10_000 >= u64::from(TOTAL) {
            break;
        }
        closes += s.broker.close_redrive_connections().await?;
        // Counted from the moment the broker closed them.
        let before = s.db.rows().await;
        ensure!(
            before + 2_001 <= u64::from(TOTAL),
            "the backlog ran out before round {} could show a reconnection",
            rounds + 1
        );
        worst = worst.max(s.reconnected_after(before).await?);
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    ensure!(rounds == 3, "the backlog ran out after {rounds} rounds");
    let mut o = s.ingest_outcome(TOTAL).await?;
    o.injected = format!("Redrive's connections closed via the management API, 3 times ({closes} closed)");
    o.recovered_in = Some(worst);
    o.peak_rss_kb = redrive.sample_rss();
    redrive.sigterm().await?;
    s.cleanup().await;
    Ok(o)
}

pub async fn rabbitmqctl(arg: &str) -> anyhow::Result<()> {
    let status = Command::new("rabbitmqctl").arg(arg).status().await?;
    ensure!(status.success(), "rabbitmqctl {arg}: {status}");
    Ok(())
}

/// `rabbitmqctl stop_app`, 3 s down, `start_app`, in the middle of an ingest.
pub async fn broker_restart() -> anyhow::Result<Outcome> {
    let mut s = Setup::new().await?;
    s.broker.publish_failures(0, BACKLOG, PAD).await?;
    let mut redrive = s.redrive().await?;
    s.stored_at_least(2_000, SETTLE).await?;
    rabbitmqctl("stop_app").await?;
    let before = s.db.rows().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    rabbitmqctl("start_app").await?;
    let recovered = s.reconnected_after(before).await?;
    let mut o = s.ingest_outcome(BACKLOG).await?;
    o.injected = "`rabbitmqctl stop_app`, 3 s, `start_app`".into();
    o.recovered_in = Some(recovered);
    o.peak_rss_kb = redrive.sample_rss();
    redrive.sigterm().await?;
    s.cleanup().await;
    Ok(o)
}

/// SIGKILL once 2,000 of 20,000 are stored, then a restart on the same database.
pub async fn sigkill_ingest() -> anyhow::Result<Outcome> {
    let mut s = Setup::new().await?;
    s.broker.publish_failures(0, BACKLOG, PAD).await?;
    let redrive = s.redrive().await?;
    s.stored_at_least(2_000, SETTLE).await?;
    let rss = redrive.sigkill().await;
    let before = s.db.rows().await;
    ensure!(before < u64::from(BACKLOG), "killed too late to test anything");
    let restarted = Instant::now();
    let mut redrive = s.redrive().await?;
    s.resumed_after(before).await?;
    let recovered = restarted.elapsed();
    let mut o = s.ingest_outcome(BACKLOG).await?;
    o.injected = format!("SIGKILL with {before} of {BACKLOG} stored, restart");
    o.recovered_in = Some(recovered);
    o.peak_rss_kb = rss.max(redrive.sample_rss());
    redrive.sigterm().await?;
    s.cleanup().await;
    Ok(o)
}

/// Starts a bulk replay of everything stored from `error.queue`.
async fn start_replay(redrive: &Redrive, vhost: &str) -> anyhow::Result<i64> {
    let job = redrive
        .post(
            "/api/v1/jobs",
            json!({"action": "replay", "filter": {"vhost": vhost, "queue": ERROR_QUEUE, "status": "failed"}}),
        )
        .await?;
    job["id"].as_i64().context("job id")
}

async fn job(redrive: &Redrive, id: i64) -> anyhow::Result<Value> {
    redrive.get(&format!("/api/v1/jobs/{id}")).await
}

/// Copies delivered to the work queue against what was replayed: a copy
/// more than once is a duplicate; a message neither delivered nor flagged
/// "outcome unknown" is lost.
async fn replay_outcome(s: &mut Setup, sent: u32) -> anyhow::Result<Outcome> {
    // A replay a killed instance left `replaying` is settled by the lease
    // sweep (as "outcome unknown"): count only once nothing is in limbo.
    until(SETTLE, || async { s.db.stored().await.replaying == 0 })
        .await
        .context("replays still in limbo")?;
    let delivered: HashMap<u32, u32> = s.broker.drain_seqs(WORK_QUEUE).await?;
    let flagged = s.db.stored().await.flagged;
    let copies: u64 = delivered.values().map(|&n| u64::from(n)).sum();
    let distinct = delivered.len() as u64;
    Ok(Outcome {
        sent: u64::from(sent),
        arrived: copies,
        duplicated: copies - distinct,
        lost: u64::from(sent).saturating_sub(distinct + flagged),
        flagged,
        ..Default::default()
    })
}

async fn job_finished(redrive: &Redrive, id: i64) -> anyhow::Result<Duration> {
    let waited = until(SETTLE, || async {
        let state = job(redrive, id)
            .await
            .map(|j| j["state"].clone())
            .unwrap_or_default();
        state == "completed" || state == "failed"
    })
    .await;
    waited.context("the replay job did not finish")
}

/// SIGKILL while a bulk replay job of 6,000 runs, then a restart. The
/// killed instance holds up to a window (1,024) in flight and a claim
/// (1,024) ready: the job must be larger for its resumption to show.
pub async fn sigkill_replay() -> anyhow::Result<Outcome> {
    const N: u32 = 6_000;
    let mut s = Setup::new().await?;
    s.broker.publish_failures(0, N, PAD).await?;
    // A short confirm timeout keeps the replay lease (30 s + 2 × it) short.
    const FAST_LEASE: &[(&str, &str)] = &[("REDRIVE_CONFIRM_TIMEOUT", "2")];
    let redrive = s.redrive_with(MGMT, FAST_LEASE).await?;
    s.stored_at_least(u64::from(N), SETTLE).await?;
    let id = start_replay(&redrive, &s.broker.vhost).await?;
    until(SETTLE, || async {
        job(&redrive, id)
            .await
            .map(|j| j["done"].as_i64() >= Some(200))
            .unwrap_or(false)
    })
    .await
    .context("the job never got going")?;
    let rss = redrive.sigkill().await;
    let done_at_kill = s.db.stored().await.replayed;
    let restarted = Instant::now();
    let mut redrive = s.redrive_with(MGMT, FAST_LEASE).await?;
    until(SETTLE, || async { s.db.stored().await.replayed > done_at_kill })
        .await
        .context("the job did not resume")?;
    let recovered = restarted.elapsed();
    job_finished(&redrive, id).await?;
    let mut o = replay_outcome(&mut s, N).await?;
    o.injected = format!("SIGKILL with {done_at_kill} of {N} replayed, restart");
    o.recovered_in = Some(recovered);
    o.peak_rss_kb = rss.max(redrive.sample_rss());
    redrive.sigterm().await?;
    s.cleanup().await;
    Ok(o)
}

/// SIGTERM while a bulk replay and a 20,000-message ingest both run; the exit
/// must be clean (status 0, within the shutdown grace), the restart lose
/// nothing. The signal lands while the backlog is still being published:
/// capture keeps pace with the publisher, so once publishing was done it had
/// stored every message, leaving nothing to resume.
pub async fn sigterm_both() -> anyhow::Result<Outcome> {
    const REPLAY: u32 = 2_000;
    let mut s = Setup::new().await?;
    s.broker.publish_failures(0, REPLAY, PAD).await?;
    let redrive = s.redrive().await?;
    s.stored_at_least(u64::from(REPLAY), SETTLE).await?;
    let id = start_replay(&redrive, &s.broker.vhost).await?;
    let (db, broker) = (&s.db, &mut s.broker);
    let publish = broker.publish_failures(REPLAY, BACKLOG, PAD);
    let terminate = async {
        let rows = u64::from(REPLAY) + 2_000;
        until(SETTLE, || async { db.rows().await >= rows })
            .await
            .with_context(|| format!("{rows} rows not stored within {SETTLE:?}"))?;
        redrive.sigterm().await
    };
    let (published, terminated) = tokio::join!(publish, terminate);
    published?;
    let (rss, code, took) = terminated?;
    ensure!(code == Some(0), "exit status {code:?} after SIGTERM");
    let before = s.db.stored().await;
    let restarted = Instant::now();
    let mut redrive = s.redrive().await?;
    s.resumed_after(before.rows).await?;
    let recovered = restarted.elapsed();
    job_finished(&redrive, id).await?;
    let ingest = s.ingest_outcome(REPLAY + BACKLOG).await?;
    let replay = replay_outcome(&mut s, REPLAY).await?;
    let o = Outcome {
        injected: format!(
            "SIGTERM with {} stored and {} replayed: exit 0 in {:.2} s; restart",
            before.rows,
            before.replayed,
            took.as_secs_f64()
        ),
        sent: ingest.sent + replay.sent,
        arrived: ingest.arrived + replay.arrived,
        lost: ingest.lost + replay.lost,
        duplicated: ingest.duplicated + replay.duplicated,
        flagged: replay.flagged,
        recovered_in: Some(recovered),
        peak_rss_kb: rss.max(redrive.sample_rss()),
        note: format!(
            "{} ingested + {} replayed; shutdown grace 20 s",
            REPLAY + BACKLOG,
            REPLAY
        ),
    };
    redrive.sigterm().await?;
    s.cleanup().await;
    Ok(o)
}

/// SQLite on a 64 MiB tmpfs that a filler file fills while 2,000 failures
/// arrive; then the filler is removed.
pub async fn database_full() -> anyhow::Result<Outcome> {
    const N: u32 = 2_000;
    let mut s = Setup::new().await?;
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&s.dir)
        .status()
        .await?;
    if !mount.success() {
        s.cleanup().await;
        bail!("mounting a tmpfs needs root");
    }
    let result = database_full_on_mount(&mut s, N).await;
    // A Redrive killed on an error path may still hold the file for a moment.
    for _ in 0..50 {
        if Command::new("umount").arg(&s.dir).status().await?.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.cleanup().await;
    result
}

async fn database_full_on_mount(s: &mut Setup, n: u32) -> anyhow::Result<Outcome> {
    let mut redrive = s.redrive().await?;
    s.broker.publish_failures(0, 100, PAD).await?;
    s.stored_at_least(100, SETTLE).await?;
    let filler = s.dir.join("filler");
    let mut full = std::fs::File::create(&filler)?;
    fill(&mut full);
    s.broker.publish_failures(100, n, PAD).await?;
    // Keep it full for 3 s: SQLite gives pages back as it rolls back, and
    // the filler takes them again.
    let until_full = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until_full {
        fill(&mut full);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during = s.db.rows().await;
    // Passive declare counts ready messages: the rest are held, unacked.
    let waiting = s.broker.depth(ERROR_QUEUE).await?;
    let ready: Value = redrive.get("/readyz").await.unwrap_or_default();
    drop(full);
    std::fs::remove_file(&filler)?;
    let freed = Instant::now();
    s.stored_at_least(u64::from(n) + 100, SETTLE).await?;
    let recovered = freed.elapsed();
    let queue = s.broker_queue_info().await?;
    let mut o = s.ingest_outcome(n + 100).await?;
    let held = u64::from(n + 100).saturating_sub(during + u64::from(waiting));
    o.injected = format!(
        "disk full for 3 s ({during} stored, {held} held unacked, {waiting} ready), then space freed"
    );
    o.recovered_in = Some(recovered);
    o.peak_rss_kb = redrive.sample_rss();
    o.note = format!(
        "redelivered by the broker: {}; /readyz while full: {}",
        queue["message_stats"]["redeliver"].as_u64().unwrap_or(0),
        if ready.to_string().contains("database") {
            "reports the database"
        } else {
            "silent"
        }
    );
    redrive.sigterm().await?;
    Ok(o)
}

/// Writes until the file system refuses.
fn fill(f: &mut std::fs::File) {
    use std::io::Write;
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
}

impl Setup {
    async fn broker_queue_info(&self) -> anyhow::Result<Value> {
        let url = format!(
            "{MGMT}/api/queues/{}/{ERROR_QUEUE}",
            server::broker::management::enc(&self.broker.vhost)
        );
        Ok(reqwest::Client::new()
            .get(url)
            .basic_auth("guest", Some("guest"))
            .send()
            .await?
            .json()
            .await?)
    }
}

/// Redrive learns `error.queue` once, then restarts while the management
/// API is unreachable, with 2,000 failures waiting.
pub async fn management_down() -> anyhow::Result<Outcome> {
    const N: u32 = 2_000;
    let mut s = Setup::new().await?;
    let redrive = s.redrive().await?;
    s.broker.publish_failures(0, 10, PAD).await?;
    s.stored_at_least(10, SETTLE).await?;
    redrive.sigterm().await?;
    s.broker.publish_failures(10, N, PAD).await?;
    let started = Instant::now();
    let mut redrive = s.redrive_with("http://127.0.0.1:9", &[]).await?;
    s.resumed_after(10).await?;
    let recovered = started.elapsed();
    let mut o = s.ingest_outcome(N + 10).await?;
    o.injected = "restart with the management API unreachable".into();
    o.recovered_in = Some(recovered);
    o.peak_rss_kb = redrive.sample_rss();
    redrive.sigterm().await?;
    s.cleanup().await;
    Ok(o)
}

/// 5,000 identical failures (Spring sets no message id); another consumer
/// takes 1,000 of them and gives them back, so they come redelivered; then
/// Redrive is killed mid-ingest and restarted. Every copy is its own row.
pub async fn identical_redelivered() -> anyhow::Result<Outcome> {
    const N: u32 = 5_000;
    let mut s = Setup::new().await?;
    let ch = s.broker.channel().await?;
    let publisher = s.broker.channel().await?;
    publisher
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await?;
    for _ in 0..N {
        let (body, props) = spring_failure(None, PAD);
        publisher
            .basic_publish(
                ERROR_EXCHANGE.into(),
                "error".into(),
                lapin::options::BasicPublishOptions::default(),
                &body,
                props,
            )
            .await?;
    }
    ensure!(
        publisher.wait_for_confirms().await?.is_empty(),
        "publish returned"
    );
    ch.basic_qos(1_000, BasicQosOptions::default()).await?;
    let mut consumer = ch
        .basic_consume(
            ERROR_QUEUE.into(),
            "foreign".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for _ in 0..1_000 {
        futures::StreamExt::next(&mut consumer)
            .await
            .context("delivery")??;
    }
    ch.close(200, "give them back".into()).await?;
    let redrive = s.redrive().await?;
    s.stored_at_least(1_500, SETTLE).await?;
    let rss = redrive.sigkill().await;
    let before = s.db.rows().await;
    let restarted = Instant::now();
    let mut redrive = s.redrive().await?;
    let recovered = s.resumed_after(before).await.ok().map(|_| restarted.elapsed());
    let mut o = s.ingest_outcome(N).await?;
    let rows = o.arrived;
    o.lost = u64::from(N).saturating_sub(rows);
    o.duplicated = rows.saturating_sub(u64::from(N));
    o.injected = format!("1,000 redelivered by the broker; SIGKILL at {before} stored, restart");
    o.recovered_in = recovered.or(Some(Duration::ZERO));
    o.peak_rss_kb = rss.max(redrive.sample_rss());
    redrive.sigterm().await?;
    s.cleanup().await;
    Ok(o)
}

/// Twelve 20 MiB failures: stored byte-exact, and the peak memory.
pub async fn large_bodies() -> anyhow::Result<Outcome> {
    const N: u32 = 12;
    const SIZE: usize = 20 << 20;
    let mut s = Setup::new().await?;
    let mut sent = Vec::new();
    let ch = s.broker.channel().await?;
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await?;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for seq in 0..N {
        // Every byte value, from a cheap generator: text-unsafe on purpose.
        let body: Vec<u8> = (0..SIZE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let (_, props) = spring_failure(Some(seq), 0);
        sent.push(Sha256::digest(&body).to_vec());
        ch.basic_publish(
            ERROR_EXCHANGE.into(),
            "error".into(),
            lapin::options::BasicPublishOptions::default(),
            &body,
            props,
        )
        .await?
        .await?;
    }
    let mut redrive = s.redrive().await?;
    let took = s.stored_at_least(u64::from(N), SETTLE).await?;
    let mut stored: Vec<Vec<u8>> =
        s.db.bodies()
            .await?
            .iter()
            .map(|b| Sha256::digest(b).to_vec())
            .collect();
    stored.sort();
    sent.sort();
    let exact = stored == sent;
    let o = Outcome {
        injected: format!("{N} bodies of 20 MiB, random bytes"),
        sent: u64::from(N),
        arrived: stored.len() as u64,
        lost: u64::from(N).saturating_sub(stored.len() as u64),
        duplicated: (stored.len() as u64).saturating_sub(u64::from(N)),
        peak_rss_kb: redrive.sample_rss(),
        note: format!(
            "stored in {:.1} s; bodies byte-exact: {}",
            took.as_secs_f64(),
            if exact { "yes" } else { "NO" }
        ),
        ..Default::default()
    };
    redrive.sigterm().await?;
    s.cleanup().await;
    ensure!(exact, "a stored body differs from what was published");
    Ok(o)
}
