//! Bulk replay as an operator runs it, beside the broker's shovel in the
//! same run. Redrive runs as a process of its own (`target/release/redrive`);
//! the job is created through `POST /api/v1/jobs` with a `vhost` filter and
//! replays Spring failures to their original topic exchange (`pay.topic`,
//! `pay.success` → `trade.pay.success.queue`), its page polled every 0.2 s.
//! Two shovels are the baselines: one along the same route, one queue to
//! queue (as operators shovel a dead-letter queue). A second job replays
//! the same number with a canary (10, watched 2 s) and a ramp from 500/s
//! doubling every second, and says how long it took to reach full speed.
//!
//! `cargo build --release -p server --bin redrive --example bench_replay_route`
//! `target/release/examples/bench_replay_route [messages]` (default 50,000).
//! Needs the local RabbitMQ with the management and shovel plugins. With
//! `REDRIVE_BENCH_POSTGRES` (an admin URL) Redrive stores in PostgreSQL.

use std::time::{Duration, Instant};

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueuePurgeOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};
use serde_json::{json, Value};

mod support;
use support::{declare, spring, BenchVhost, RedriveProcess};

const EXCHANGE: &str = "pay.topic";
const KEY: &str = "pay.success";
const TARGET: &str = "trade.pay.success.queue";
const ERRORS: &str = "trade.error.queue";

async fn depth(ch: &Channel, queue: &str) -> u32 {
    testkit::depth(ch, queue).await.unwrap()
}

async fn purge(ch: &Channel, queue: &str) {
    ch.queue_purge(queue.into(), QueuePurgeOptions::default())
        .await
        .unwrap();
}

/// Spring failures `range` of the trade service, on `queue`.
async fn fill(ch: &Channel, queue: &str, range: std::ops::Range<usize>) {
    let failures = range.map(|i| {
        let (body, props) = spring::failure(i);
        let mut h = props.headers().clone().unwrap_or_default();
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        h.insert("x-original-exchange".into(), text(EXCHANGE));
        h.insert("x-original-routingKey".into(), text(KEY));
        (body, props.with_headers(h))
    });
    testkit::publish_all(ch, "", queue, failures)
        .await
        .expect("every fill confirmed");
}

/// A shovel of `n` failures from a queue of its own, to `dest`; its time.
async fn shovel(bench: &BenchVhost, n: usize, name: &str, dest: Value) -> Duration {
    let ch = &bench.channel;
    purge(ch, TARGET).await;
    declare(ch, "shovel.src").await;
    fill(ch, "shovel.src", 0..n).await;
    let mut value = json!({
        "src-protocol": "amqp091", "src-uri": bench.amqp_url, "src-queue": "shovel.src",
        "dest-protocol": "amqp091", "dest-uri": bench.amqp_url,
        "ack-mode": "on-confirm", "src-delete-after": "queue-length"
    });
    value
        .as_object_mut()
        .unwrap()
        .extend(dest.as_object().unwrap().clone());
    let started = Instant::now();
    let created = bench
        .put(
            "parameters/shovel",
            &format!("/{name}"),
            json!({ "value": value }),
        )
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "creating the shovel: {}",
        created.status()
    );
    while depth(ch, TARGET).await < n as u32 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

struct Api<'a> {
    redrive: &'a RedriveProcess,
}

impl Api<'_> {
    async fn get(&self, path: &str) -> Value {
        let url = format!("{}/api/v1{path}", self.redrive.base);
        let r = self
            .redrive
            .http
            .get(url)
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/api/v1{path}", self.redrive.base);
        let r = self
            .redrive
            .http
            .post(url)
            .basic_auth("guest", Some("guest"))
            .json(&body);
        r.send().await.unwrap().json().await.unwrap()
    }

    /// Waits until `n` failed messages are stored and searchable.
    async fn captured(&self, n: usize) {
        let q = "/messages?status=failed&limit=1&exact=true";
        while self.get(q).await["total"].as_u64().unwrap_or(0) < n as u64 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        while self.get("/messages?limit=1&q=bench-settle").await["unsearchable"].as_i64() != Some(0) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a job as an operator's page would watch it (every 0.2 s); its
    /// time, and when it first showed full speed.
    async fn job(&self, body: Value, n: usize) -> (Duration, Option<Duration>) {
        let started = Instant::now();
        let job = self.post("/jobs", body).await;
        let url = format!("/jobs/{}", job["id"]);
        let mut full_speed = None;
        let done = loop {
            let j = self.get(&url).await;
            if full_speed.is_none() && j["phase"] == "full_speed" {
                full_speed = Some(started.elapsed());
            }
            if j["state"] != "running" {
                break j;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(done["state"], "completed", "{done}");
        assert_eq!(done["done"], n, "{done}");
        (started.elapsed(), full_speed)
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let bench = BenchVhost::create().await;
    let ch = &bench.channel;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        EXCHANGE.into(),
        ExchangeKind::Topic,
        durable,
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_declare(
        "error.direct".into(),
        ExchangeKind::Direct,
        durable,
        FieldTable::default(),
    )
    .await
    .unwrap();
    for (queue, exchange, key) in [(TARGET, EXCHANGE, KEY), (ERRORS, "error.direct", "trade")] {
        declare(ch, queue).await;
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let route = || json!({"dest-exchange": EXCHANGE, "dest-exchange-key": KEY});
    let direct = || json!({"dest-queue": TARGET});

    // Shovels before and after; each baseline is the mean of its two runs
    // (this machine's speed drifts within minutes).
    let route_before = shovel(&bench, n, "route-before", route()).await;
    let queue_before = shovel(&bench, n, "queue-before", direct()).await;
    purge(ch, TARGET).await;

    let exe = testkit::process::beside_examples().expect("the redrive binary");
    let env = [
        ("REDRIVE_AMQP_URL", bench.amqp_url.clone()),
        ("REDRIVE_DATABASE_URL", bench.database_url.clone()),
        ("REDRIVE_VHOSTS", bench.name.clone()),
        ("REDRIVE_DISCOVERY_INTERVAL", "0.2".to_owned()),
    ];
    let redrive = RedriveProcess::start(&exe, &env).await.expect("redrive starts");
    let api = Api { redrive: &redrive };
    fill(ch, ERRORS, 0..n).await;
    api.captured(n).await;
    let plain = json!({"action": "replay", "filter": {"vhost": bench.name}});
    let (replayed, _) = api.job(plain, n).await;
    assert_eq!(depth(ch, TARGET).await as usize, n);
    purge(ch, TARGET).await;

    fill(ch, ERRORS, n..2 * n).await;
    api.captured(n).await;
    let careful = json!({
        "action": "replay", "filter": {"vhost": bench.name, "status": "failed"},
        "canary": {"count": 10, "watch_seconds": 2, "max_failed_again": 0},
        "ramp": {"from": 500, "double_every_seconds": 1}
    });
    let (planned, full_speed) = api.job(careful, n).await;
    drop(redrive);

    let route_after = shovel(&bench, n, "route-after", route()).await;
    let queue_after = shovel(&bench, n, "queue-after", direct()).await;
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let by_route = rate((route_before + route_after) / 2);
    let by_queue = rate((queue_before + queue_after) / 2);

    println!("bulk replay of {n} Spring failures as an operator runs it (separate process, vhost filter, topic route)");
    println!("{:<56} {:>10}", "", "msg/s");
    for (what, d) in [
        ("baseline: shovel along the route (before)", route_before),
        ("baseline: shovel along the route (after)", route_after),
        ("baseline: shovel queue to queue (before)", queue_before),
        ("baseline: shovel queue to queue (after)", queue_after),
        ("redrive: job via POST /api/v1/jobs", replayed),
        ("redrive: canary 10 (2 s watch) + ramp from 500/s", planned),
    ] {
        println!("{what:<56} {:>10.0}", rate(d));
    }
    if let Some(t) = full_speed {
        println!(
            "the planned job showed full speed {:.1}s after it was created",
            t.as_secs_f64()
        );
    }
    println!(
        "RESULT replay-route {:.0} {by_route:.0} {:.2}",
        rate(replayed),
        rate(replayed) / by_route
    );
    println!(
        "RESULT replay-queue {:.0} {by_queue:.0} {:.2}",
        rate(replayed),
        rate(replayed) / by_queue
    );
    bench.remove().await;
}
