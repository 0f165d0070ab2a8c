//! Browsing a large store. Spring failures are ingested through Redrive in
//! stages (10k, 100k, 1M stored by default); at each stage the REST API and
//! the UI are timed as an operator uses them: the list's first page, a
//! filtered list (queue + status), a deep cursor page, a message's detail,
//! full-text search for a word every message has and for one order, and the
//! first HTML of the messages page. The baseline is how operators browse
//! today: the management API's `get` of 1,000 messages (`ack_requeue_true`),
//! against Redrive reading 1,000 stored messages (two pages of 500).
//!
//! `cargo run --release -p server --example bench_browse -- [max messages]`
//! Needs the local RabbitMQ with the management plugin and the release
//! `redrive` binary (`cargo build --release -p server --bin redrive`); uses a
//! throwaway vhost. Redrive runs in a process of its own, so its peak RSS is
//! its own, not the publisher's or the HTTP client's.

use std::time::{Duration, Instant};

mod support;
use support::{declare, fill, fill_range, BenchVhost};

const QUEUE: &str = "orders.dlq";
/// Publishing stays at most this far ahead of ingest, so the broker never
/// holds gigabytes of backlog (that would measure the broker's paging).
const AHEAD: usize = 20_000;
const SAMPLES: usize = 40;

struct Timings(Vec<Duration>);

impl Timings {
    fn ms(&self, pct: usize) -> f64 {
        let mut v = self.0.clone();
        v.sort();
        v[(v.len() * pct / 100).min(v.len() - 1)].as_secs_f64() * 1000.0
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn get(&self, path: &str) -> (Duration, String) {
        let start = Instant::now();
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        (start.elapsed(), body)
    }

    /// `SAMPLES` timings of the paths `path(i)` gives.
    async fn time(&self, path: impl Fn(usize) -> String) -> Timings {
        let mut t = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES {
            t.push(self.get(&path(i)).await.0);
        }
        Timings(t)
    }

    /// How many messages Redrive has stored (asked over HTTP: a second
    /// database handle in this process would count in its peak RSS).
    async fn stored(&self) -> usize {
        let (_, page) = self.get("/api/v1/messages?limit=1&exact=true").await;
        let page: serde_json::Value = serde_json::from_str(&page).unwrap();
        page["total"].as_u64().unwrap() as usize
    }

    /// Waits until every stored message is searchable: the indexer yields to
    /// capture during the ingest and catches up after it (and a search
    /// indexes what is pending), so browsing is timed at rest.
    async fn settle_index(&self) {
        loop {
            let (_, page) = self.get("/api/v1/messages?limit=1&q=bench-settle").await;
            let page: serde_json::Value = serde_json::from_str(&page).unwrap();
            if page["unsearchable"].as_i64() == Some(0) {
                return;
            }
        }
    }

    /// Reads 1,000 stored messages as two pages of 500.
    async fn thousand(&self) -> Duration {
        let start = Instant::now();
        let (_, first) = self.get("/api/v1/messages?limit=500").await;
        let first: serde_json::Value = serde_json::from_str(&first).unwrap();
        let cursor = first["next_cursor"].as_str().unwrap();
        self.get(&format!("/api/v1/messages?limit=500&cursor={cursor}"))
            .await;
        start.elapsed()
    }
}

/// The management API's `get` of 1,000 messages from a queue holding 1,000,
/// requeued (what the management UI's "Get messages" does).
async fn management_get(bench: &BenchVhost) -> Duration {
    let queue = "browse.baseline";
    fill(&bench.channel, queue, 1_000).await;
    let url = format!(
        "http://127.0.0.1:15672/api/queues/{}/{queue}/get",
        server::broker::management::enc(&bench.name)
    );
    let body = serde_json::json!({"count": 1000, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000});
    let mut t = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let res = bench
            .http
            .post(&url)
            .basic_auth("guest", Some("guest"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let got: Vec<serde_json::Value> = res.json().await.unwrap();
        assert_eq!(got.len(), 1000);
        t.push(start.elapsed());
    }
    Duration::from_secs_f64(Timings(t).ms(50) / 1000.0)
}

fn db_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("bench.db"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let max: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let bench = BenchVhost::create().await;
    let baseline = management_get(&bench).await;

    declare(&bench.channel, QUEUE).await;
    let redrive = bench.redrive_process().await;
    let client = Client {
        http: reqwest::Client::new(),
        base: redrive.base.clone(),
    };
    let vhost = server::broker::management::enc(&bench.name);

    println!("browsing stored Spring failures; {SAMPLES} requests per figure, milliseconds");
    println!(
        "{:>9} {:>9} | {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "stored", "ingest/s", "list", "queue", "deep", "detail", "search", "one", "ui"
    );
    let mut stored = 0;
    let mut thousand = Duration::ZERO;
    for stage in [10_000, 100_000, 1_000_000, max] {
        if stage > max || stage <= stored {
            continue;
        }
        let start = Instant::now();
        let mut published = stored;
        while published < stage {
            let next = (published + 5_000).min(stage);
            fill_range(&bench.channel, QUEUE, published..next).await;
            published = next;
            while client.stored().await + AHEAD < published {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while client.stored().await < stage {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ingest = (stage - stored) as f64 / start.elapsed().as_secs_f64();
        let caught_up = Instant::now();
        client.settle_index().await;
        eprintln!(
            "{stage}: search index caught up {:.1} s after the ingest",
            caught_up.elapsed().as_secs_f64()
        );
        stored = stage;

        let n = stored as i64;
        let list = client.time(|_| "/api/v1/messages".into()).await;
        let queue = client
            .time(|_| format!("/api/v1/messages?vhost={vhost}&queue={QUEUE}&status=failed"))
            .await;
        let deep = client
            .time(|i| format!("/api/v1/messages?cursor={}", n / 10 + i as i64))
            .await;
        let detail = client
            .time(|i| format!("/api/v1/messages/{}", 1 + (i as i64 * 7919) % n))
            .await;
        let search = client
            .time(|_| "/api/v1/messages?q=orders_customer_fk".into())
            .await;
        let one = client
            .time(|i| format!("/api/v1/messages?q=ord-{:08}", (i * 7919) % stored))
            .await;
        let ui = client.time(|_| "/".into()).await;
        thousand = client.thousand().await;
        let p95: Vec<f64> = [list, queue, deep, detail, search, one, ui]
            .iter()
            .map(|t| t.ms(95))
            .collect();
        let cells: String = p95.iter().map(|ms| format!(" {ms:>7.1}")).collect();
        println!("{stored:>9} {ingest:>9.0} |{cells}   (p95)");
        let fields: String = p95.iter().map(|ms| format!(" {ms:.1}")).collect();
        println!("RESULT browse {stored} {ingest:.0}{fields}");
    }
    let bytes = db_bytes(&bench.dir) as f64 / stored as f64;
    // Peak RSS would count memory-mapped files as well as the heap; the
    // split at the end shows which is which.
    let status = |field| redrive.status_kb(field) as f64 / 1024.0;
    let (rss, anon, file) = (status("VmHWM:"), status("RssAnon:"), status("RssFile:"));
    let _ = redrive.sigterm().await;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "read 1,000 messages: redrive (two pages of 500, {stored} stored) {:.1} ms; \
         management API get 1,000 (ack_requeue_true) {:.1} ms",
        ms(thousand),
        ms(baseline)
    );
    println!(
        "database: {bytes:.0} bytes per stored message; peak RSS of the Redrive process: {rss:.0} MB \
         (at the end: {anon:.0} MB heap and other anonymous memory, {file:.0} MB mapped files)"
    );
    println!(
        "RESULT browse_thousand {:.1} {:.1} {:.2}",
        ms(thousand),
        ms(baseline),
        ms(baseline) / ms(thousand)
    );
    println!("RESULT footprint {stored} {bytes:.0} {rss:.0}");
    bench.remove().await;
}
