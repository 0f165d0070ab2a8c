//! Bulk replay throughput, side by side with the broker's own way of moving
//! messages in the same run: a dynamic shovel with `ack-mode: on-confirm`
//! and `src-delete-after: queue-length` (what the management UI's "move
//! messages" creates), over the same Spring failures.
//!
//! `cargo run --release -p server --example bench_replay -- [messages]`
//! Needs the local RabbitMQ with the management and shovel plugins. With
//! `REDRIVE_BENCH_POSTGRES` (an admin URL) Redrive stores in PostgreSQL.

use std::time::{Duration, Instant};

use lapin::options::{QueueBindOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

mod support;
use support::cpu::{Cpu, CpuMeter};
use support::{declare, fill, spring, BenchVhost};

async fn depth(ch: &Channel, queue: &str) -> u32 {
    testkit::depth(ch, queue).await.unwrap()
}

async fn wait_for_depth(ch: &Channel, queue: &str, n: u32) {
    while depth(ch, queue).await < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Baseline: the shovel moves `n` failures to the original exchange
/// (`orders.in` is emptied first), and the CPU the move took.
async fn shovel(bench: &BenchVhost, n: usize, name: &str) -> (Duration, Cpu) {
    let ch = &bench.channel;
    ch.queue_purge("orders.in".into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    fill(ch, "shovel.src", n).await;
    let uri = bench.amqp_url.clone();
    let meter = CpuMeter::start();
    let started = Instant::now();
    let created = bench
        .put(
            "parameters/shovel",
            &format!("/{name}"),
            json!({"value": {
                "src-protocol": "amqp091", "src-uri": uri, "src-queue": "shovel.src",
                "dest-protocol": "amqp091", "dest-uri": uri,
                "dest-exchange": spring::EXCHANGE, "dest-exchange-key": spring::ROUTING_KEY,
                "ack-mode": "on-confirm", "src-delete-after": "queue-length"
            }}),
        )
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "creating the shovel: {} (is rabbitmq_shovel enabled?)",
        created.status()
    );
    wait_for_depth(ch, "orders.in", n as u32).await;
    (started.elapsed(), meter.read())
}

/// Redrive: captures the failures, then one bulk replay job over all of them.
async fn redrive(bench: &BenchVhost, n: usize) -> (Duration, Duration, Cpu) {
    let ch = &bench.channel;
    fill(ch, "orders.error.queue", n).await;
    let config = bench.config();
    let captured = Instant::now();
    let running = server::start(config, CancellationToken::new()).await.unwrap();
    let base = format!("http://{}/api/v1", running.addr);
    let api = reqwest::Client::new();
    let get = |path: String| {
        let api = api.clone();
        async move {
            api.get(path)
                .basic_auth("guest", Some("guest"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // `exact`: a page counts only up to 10,000 unless asked.
    let q = format!("{base}/messages?queue=orders.error.queue&limit=1&exact=true");
    while get(q.clone()).await["total"].as_u64().unwrap_or(0) < n as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ingest = captured.elapsed();
    // The search index catches up after the capture; replaying while it
    // does would time the capture's leftovers, not the replay (an operator
    // looks at a backlog before replaying it).
    let settle = format!("{base}/messages?limit=1&q=bench-settle");
    while get(settle.clone()).await["unsearchable"].as_i64() != Some(0) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "captured {n} in {:.1}s, searchable after {:.1}s; replaying",
        ingest.as_secs_f64(),
        captured.elapsed().as_secs_f64()
    );

    let meter = CpuMeter::start();
    let started = Instant::now();
    let job: Value = api
        .post(format!("{base}/jobs"))
        .basic_auth("guest", Some("guest"))
        .json(&json!({"action": "replay", "filter": {"queue": "orders.error.queue"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("{base}/jobs/{}", job["id"]);
    let done = loop {
        let j = get(url.clone()).await;
        if j["state"] != "running" {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let replay = started.elapsed();
    let cpu = meter.read();
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["done"], n, "{done}");
    assert_eq!(depth(ch, "orders.in").await as usize, n);
    running.shutdown.cancel();
    running.stop().await.unwrap();
    (ingest, replay, cpu)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let bench = BenchVhost::create().await;
    let ch = &bench.channel;
    ch.exchange_declare(
        spring::EXCHANGE.into(),
        ExchangeKind::Direct,
        lapin::options::ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare(ch, "orders.in").await;
    ch.queue_bind(
        "orders.in".into(),
        spring::EXCHANGE.into(),
        spring::ROUTING_KEY.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    // The shovel runs before and after Redrive, and the baseline is the
    // mean of the two: this machine's speed drifts by a third within
    // minutes (shared cores), which a single run on one side takes for a
    // difference between the two.
    let (before, shovel_cpu) = shovel(&bench, n, "bench-move-before").await;
    ch.queue_purge("orders.in".into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    let (_, replayed, cpu) = redrive(&bench, n).await;
    let (after, _) = shovel(&bench, n, "bench-move-after").await;
    let moved = (before + after) / 2;

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("bulk replay of {n} Spring failures (1 KiB JSON + exception headers and stack trace)");
    println!("{:<46} {:>9} {:>10}", "", "seconds", "msg/s");
    for (what, d) in [("before", before), ("after", after), ("mean of both", moved)] {
        println!(
            "{:<46} {:>9.2} {:>10.0}",
            format!("baseline: shovel move, on-confirm ({what})"),
            d.as_secs_f64(),
            rate(d)
        );
    }
    println!(
        "{:<46} {:>9.2} {:>10.0}",
        "redrive: bulk replay job, confirms + mandatory",
        replayed.as_secs_f64(),
        rate(replayed)
    );
    // What the three processes on this machine's cores spent: the shovel
    // moves within the broker, a replay adds Redrive and its database.
    println!("CPU during the shovel move (before): {shovel_cpu}");
    println!(
        "CPU during the replay: {cpu}; on this machine's cores no schedule beats {:.0} msg/s \
         ({:.2}x the shovel)",
        cpu.ceiling(n as f64),
        cpu.ceiling(n as f64) / rate(moved)
    );
    println!(
        "RESULT replay {:.0} {:.0} {:.2}",
        rate(replayed),
        rate(moved),
        rate(replayed) / rate(moved)
    );
    bench.remove().await;
}
