//! Fault injection against the local broker and database: every scenario of
//! the reliability issue, one table of messages in, stored, lost and
//! duplicated. Run by `scripts/faults`; `scripts/faults NAME…` runs some.
//!
//! Scenarios that stop the broker's application disturb everything else on
//! it, so this is not part of the test suite; the suite covers each fault in
//! isolation (server/tests/it/capture.rs, crash.rs, replay.rs).

mod harness;
mod scenarios;
mod tap;

use std::time::{Duration, Instant};

/// One scenario's result, one row of the table.
#[derive(Debug, Default)]
pub struct Outcome {
    pub injected: String,
    /// Messages published (ingest) or selected (replay).
    pub sent: u64,
    /// Rows stored, or copies delivered to the target queue for a replay.
    pub arrived: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Shown to the operator for a decision, neither lost nor silent:
    /// replays whose outcome is unknown (a retry carries the same replay
    /// id), or stored rows that may be a redelivered copy of another (an
    /// ack was in flight when the fault struck).
    pub flagged: u64,
    /// From the end of the fault until work resumed.
    pub recovered_in: Option<Duration>,
    pub peak_rss_kb: u64,
    pub note: String,
}

type Scenario = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Outcome>>>>;

fn scenarios() -> Vec<(&'static str, Scenario)> {
    vec![
        ("connections-closed", || Box::pin(scenarios::connections_closed())),
        ("broker-restart", || Box::pin(scenarios::broker_restart())),
        ("sigkill-ingest", || Box::pin(scenarios::sigkill_ingest())),
        ("sigkill-replay", || Box::pin(scenarios::sigkill_replay())),
        ("sigterm-both", || Box::pin(scenarios::sigterm_both())),
        ("database-full", || Box::pin(scenarios::database_full())),
        ("management-down", || Box::pin(scenarios::management_down())),
        ("identical-redelivered", || {
            Box::pin(scenarios::identical_redelivered())
        }),
        ("large-bodies", || Box::pin(scenarios::large_bodies())),
        ("tap-connections-closed", || {
            Box::pin(tap::tap_connections_closed())
        }),
        ("tap-broker-restart", || Box::pin(tap::tap_broker_restart())),
        ("tap-sigkill-ingest", || Box::pin(tap::tap_sigkill_ingest())),
    ]
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    harness::remove_stale_vhosts().await?;
    let mut rows = Vec::new();
    let mut failed = false;
    for (name, run) in scenarios() {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        eprintln!("== {name}");
        let started = Instant::now();
        match run().await {
            Ok(o) => {
                failed |= o.lost > 0 || o.duplicated > 0;
                eprintln!("   done in {:.1} s: {o:?}", started.elapsed().as_secs_f64());
                rows.push((name, o));
            }
            Err(e) => {
                failed = true;
                eprintln!("   scenario failed: {e:#}");
                rows.push((
                    name,
                    Outcome {
                        note: format!("did not run: {e:#}"),
                        ..Default::default()
                    },
                ));
            }
        }
    }
    println!("| scenario | injected | in | stored / delivered | lost | duplicated | flagged | recovered in | peak RSS | note |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for (name, o) in &rows {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} MB | {} |",
            o.injected,
            o.sent,
            o.arrived,
            o.lost,
            o.duplicated,
            o.flagged,
            secs(o.recovered_in),
            o.peak_rss_kb / 1024,
            o.note
        );
    }
    if failed {
        anyhow::bail!("a scenario lost or duplicated messages, or did not run");
    }
    Ok(())
}
