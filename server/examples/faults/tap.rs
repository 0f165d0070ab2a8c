//! The capture faults again in tap mode: Redrive copies every failure from
//! its tap while `error.queue` keeps all of them. *Lost* and *duplicated*
//! count Redrive's rows; the note says whether the service's queue still
//! holds every message (it must: tap mode never takes from it).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};

use crate::harness::*;
use crate::Outcome;

const BACKLOG: u32 = 20_000;
/// Long enough to see capture come back three times (see `connections_closed`).
const LONG_BACKLOG: u32 = 5 * BACKLOG;
const PAD: usize = 1000;
const SETTLE: Duration = Duration::from_secs(180);
const TAP: &str = "redrive.tap.error.queue";
const TAP_MODE: &[(&str, &str)] = &[
    ("REDRIVE_CAPTURE_MODE", "tap"),
    ("REDRIVE_DISCOVERY_INTERVAL", "1"),
];

struct Tapped {
    broker: Broker,
    dir: std::path::PathBuf,
    db: Db,
    backlog: u32,
}

impl Tapped {
    /// A vhost and database; Redrive in tap mode until its tap is bound,
    /// then stopped while `backlog` failures are published (a tap copies
    /// only what arrives after it: they wait in both queues), then started
    /// again to copy them while the fault strikes.
    async fn start(backlog: u32) -> anyhow::Result<(Self, Redrive)> {
        let dir = std::env::temp_dir().join(format!("redrive-faults-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut s = Self {
            broker: Broker::new().await?,
            db: Db::in_dir(&dir),
            dir,
            backlog: 0,
        };
        let redrive = s.redrive().await?;
        until(Duration::from_secs(30), || async {
            s.broker.bound(TAP, ERROR_EXCHANGE).await.unwrap_or(false)
        })
        .await
        .context("the tap was not bound within 30 s")?;
        redrive.sigterm().await?;
        s.broker.publish_failures(0, backlog, PAD).await?;
        s.backlog = backlog;
        let redrive = s.redrive().await?;
        Ok((s, redrive))
    }

    async fn redrive(&self) -> anyhow::Result<Redrive> {
        Redrive::start(Launch {
            broker: &self.broker,
            db: &self.db,
            management_url: MGMT,
            extra: TAP_MODE,
        })
        .await
    }

    async fn stored_at_least(&self, rows: u64) -> anyhow::Result<Duration> {
        until(SETTLE, || async { self.db.rows().await >= rows })
            .await
            .with_context(|| format!("{rows} rows not stored within {SETTLE:?}"))
    }

    /// Waits for the tap to drain and every copy to be stored, then counts;
    /// the service's queue must still hold the whole backlog.
    async fn outcome(&mut self) -> anyhow::Result<Outcome> {
        let start = Instant::now();
        while start.elapsed() < SETTLE {
            if self.db.rows().await >= u64::from(self.backlog) && self.broker.depth(TAP).await? == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = self.db.stored().await;
        let kept = self.broker.depth(ERROR_QUEUE).await?;
        ensure!(
            kept == self.backlog,
            "error.queue holds {kept} of {}: tap mode took from it",
            self.backlog
        );
        Ok(Outcome {
            sent: u64::from(self.backlog),
            arrived: s.rows,
            lost: u64::from(self.backlog).saturating_sub(s.distinct),
            duplicated: (s.rows - s.distinct).saturating_sub(s.possible_copies),
            flagged: s.possible_copies,
            note: format!("tap mode; error.queue kept {kept} of {}", self.backlog),
            ..Default::default()
        })
    }

    async fn cleanup(self) {
        self.broker.cleanup().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Redrive's connections closed three times while it copies from its tap.
pub async fn tap_connections_closed() -> anyhow::Result<Outcome> {
    let (mut s, mut redrive) = Tapped::start(LONG_BACKLOG).await?;
    s.stored_at_least(2_000).await?;
    let mut worst = Duration::ZERO;
    let mut closes = 0;
    for _ in 0..3 {
        closes += s.broker.close_redrive_connections().await?;
        // Counted from the moment the broker closed them.
        let before = s.db.rows().await;
        ensure!(
            before + 2_001 <= u64::from(LONG_BACKLOG),
            "the backlog ran out before capture could be seen to come back"
        );
        worst = worst.max(s.stored_at_least(before + 2_001).await?);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut o = s.outcome().await?;
    o.injected = format!("tap mode: Redrive's connections closed via the management API ({closes} closed)");
    o.recovered_in = Some(worst);
    o.peak_rss_kb = redrive.sample_rss();
    redrive.sigterm().await?;
    s.cleanup().await;
    Ok(o)
}

/// `rabbitmqctl stop_app`, 3 s, `start_app` while Redrive copies: the tap is
/// durable and its copies persistent, so the broker keeps both.
pub async fn tap_broker_restart() -> anyhow::Result<Outcome> {
    let (mut s, mut redrive) = Tapped::start(BACKLOG).await?;
    s.stored_at_least(2_000).await?;
    crate::scenarios::rabbitmqctl("stop_app").await?;
    let before = s.db.rows().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    crate::scenarios::rabbitmqctl("start_app").await?;
    let recovered = s
        .stored_at_least((before + 2_001).min(u64::from(BACKLOG)))
        .await?;
    let mut o = s.outcome().await?;
    o.injected = "tap mode: `rabbitmqctl stop_app`, 3 s, `start_app`".into();
    o.recovered_in = Some(recovered);
    o.peak_rss_kb = redrive.sample_rss();
    redrive.sigterm().await?;
    s.cleanup().await;
    Ok(o)
}

/// SIGKILL while copying, then a restart on the same database: capture
/// resumes from the tap it left.
pub async fn tap_sigkill_ingest() -> anyhow::Result<Outcome> {
    let (mut s, redrive) = Tapped::start(BACKLOG).await?;
    s.stored_at_least(2_000).await?;
    let rss = redrive.sigkill().await;
    let before = s.db.rows().await;
    ensure!(before < u64::from(BACKLOG), "killed too late to test anything");
    let restarted = Instant::now();
    let mut redrive = s.redrive().await?;
    s.stored_at_least(before + 1).await?;
    let recovered = restarted.elapsed();
    let mut o = s.outcome().await?;
    o.injected = format!("tap mode: SIGKILL with {before} of {BACKLOG} stored, restart");
    o.recovered_in = Some(recovered);
    o.peak_rss_kb = rss.max(redrive.sample_rss());
    redrive.sigterm().await?;
    s.cleanup().await;
    Ok(o)
}
