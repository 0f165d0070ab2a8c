//! What monitoring costs, side by side with the broker's own tools in the
//! same run: one monitoring pass over many queues against `rabbitmqctl
//! list_queues` and a bare `GET /api/queues/{vhost}`, then what a settled week
//! of samples costs to store, compact and chart.
//!
//! `cargo run --release -p server --example bench_monitor -- [queues] [runs]`
//! Needs the local RabbitMQ with the management plugin; uses a throwaway vhost.

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use server::broker::Management;
use server::config::Config;
use server::monitor::Monitor;
use server::store::samples::{Sample, DOWNSAMPLING};
use server::store::{now_ms, Store};

mod support;
use support::BenchVhost;

/// Median of `runs` timings of `f`.
async fn median<F, Fut>(runs: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f().await;
        times.push(start.elapsed());
    }
    times.sort();
    times[runs / 2]
}

fn sample(vhost: &str, queue: usize) -> Sample {
    Sample {
        vhost: vhost.to_owned(),
        queue: format!("q{queue:04}"),
        ready: queue as f64,
        unacked: 1.0,
        consumers: 1.0,
        ..Sample::default()
    }
}

/// A week of history as the sampler leaves it once compaction has settled:
/// raw samples for the last hour, one per minute up to a day, one per ten
/// minutes beyond. Written in the same batches the sampler writes.
async fn settled_week(store: &Store, vhost: &str, queues: usize, interval_s: i64, now: i64) -> usize {
    let batch: Vec<Sample> = (0..queues).map(|q| sample(vhost, q)).collect();
    let week = 7 * 86_400;
    let mut rows = 0;
    let mut age = week;
    while age > 0 {
        let resolution = DOWNSAMPLING
            .iter()
            .rev()
            .find(|(after, _)| age > *after)
            .map_or(interval_s, |(_, bucket)| *bucket);
        let at = (now - age * 1000).div_euclid(resolution * 1000) * resolution * 1000;
        store.insert_samples(at, resolution, &batch).await.unwrap();
        rows += queues;
        age -= resolution;
    }
    rows
}

fn row(label: &str, d: Duration, extra: &str) {
    println!("{label:<52} {:>10.1} {extra}", d.as_secs_f64() * 1000.0);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let queues: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(9).max(1);
    let bench = BenchVhost::create().await;
    let (vhost, url, ch) = (&bench.name, &bench.amqp_url, &bench.channel);
    let mut dlx = FieldTable::default();
    dlx.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("dlx".into()),
    );
    for q in 0..queues {
        let name = format!("q{q:04}");
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(name.as_str().into(), durable, dlx.clone())
            .await
            .unwrap();
        let props = BasicProperties::default().with_delivery_mode(2);
        ch.basic_publish(
            "".into(),
            name.as_str().into(),
            BasicPublishOptions::default(),
            b"{}",
            props,
        )
        .await
        .unwrap();
    }
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());

    let dir = &bench.dir;
    let db = dir.join("bench.db");
    let db_url = format!("sqlite://{}?mode=rwc", db.display());
    let config = Config::try_parse_from([
        "redrive".to_owned(),
        format!("--amqp-url={url}"),
        format!("--database-url={db_url}"),
        format!("--vhosts={vhost}"),
    ])
    .unwrap();
    let store = server::store::connect(&db_url).await.unwrap();
    let management = Management::new(
        &config.broker.management_url,
        &config.broker.management_user,
        config.broker.management_password.expose_secret(),
    );
    let monitor = Monitor::new(Arc::new(config), store.clone(), management, Default::default());

    println!("{queues} queues in one vhost, median of {runs} runs");
    println!("{:<52} {:>10}", "", "ms");
    let ctl = median(runs, || async {
        let out = tokio::process::Command::new("rabbitmqctl")
            .args(["list_queues", "-q", "-p", vhost, "name", "messages_ready"])
            .args(["messages_unacknowledged", "consumers"])
            .output()
            .await;
        assert!(out.is_ok_and(|o| o.status.success()), "rabbitmqctl failed");
    })
    .await;
    row("baseline: rabbitmqctl list_queues", ctl, "");
    // The management UI asks for every column; Redrive asks for the ones it
    // reads. Both are baselines for the API call inside a monitoring pass.
    let columns = "?columns=name,vhost,type,durable,auto_delete,exclusive,arguments,policy,\
        effective_policy_definition,messages,messages_ready,messages_unacknowledged,consumers,message_stats";
    for (label, query) in [("all columns", ""), ("Redrive's columns", columns)] {
        let get = median(runs, || async {
            let r = bench.get("queues", query).send().await.unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
        })
        .await;
        row(&format!("baseline: GET /api/queues/{{vhost}}, {label}"), get, "");
    }
    let tick = median(runs, || async { monitor.tick().await.unwrap() }).await;
    row(
        "redrive: one monitoring pass",
        tick,
        "(API + samples + advisor + alerts)",
    );
    let batch: Vec<Sample> = (0..queues).map(|q| sample(vhost, q)).collect();
    let insert = median(runs, || async {
        store.insert_samples(now_ms(), 10, &batch).await.unwrap();
    })
    .await;
    row("redrive: store one round of samples", insert, "");

    // A settled week, with its compaction and the three chart windows.
    let history = server::store::connect(&format!("sqlite://{}?mode=rwc", dir.join("week.db").display()))
        .await
        .unwrap();
    let now = now_ms();
    let start = Instant::now();
    let rows = settled_week(&history, vhost, queues, 10, now).await;
    let written = start.elapsed();
    // Each pass runs a minute after the previous one, as the monitor does, so
    // it has a minute of raw samples to average and a minute of history to
    // expire: the steady-state cost, not the no-op of an unchanged clock.
    let mut at = now;
    let compact = median(runs, || {
        at += 60_000;
        let (history, at) = (history.clone(), at);
        async move {
            history.compact_samples(at, 7 * 86_400_000).await.unwrap();
        }
    })
    .await;
    row("redrive: compact a settled week, a minute later", compact, "");
    for (window, secs, bucket) in [
        ("1h", 3_600, 30_000),
        ("24h", 86_400, 600_000),
        ("7d", 604_800, 3_600_000),
    ] {
        let chart = median(runs, || async {
            history
                .queue_history(vhost, "q0007", now - secs * 1000, bucket)
                .await
                .unwrap();
        })
        .await;
        row(&format!("redrive: one queue's {window} chart"), chart, "");
    }
    let size = std::fs::metadata(dir.join("week.db")).map_or(0, |m| m.len())
        + std::fs::metadata(dir.join("week.db-wal")).map_or(0, |m| m.len());
    println!(
        "a settled week: {rows} rows ({} per queue), written in {:.1} s; {:.1} MiB on disk, {:.1} KiB per queue",
        rows / queues,
        written.as_secs_f64(),
        size as f64 / 1_048_576.0,
        size as f64 / 1024.0 / queues as f64
    );

    bench.remove().await;
}
