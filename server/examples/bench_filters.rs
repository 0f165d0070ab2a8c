//! Browsing under every filter (issue 25): the list's p95 for every
//! combination of its filters (vhost, queue, service, group, tag, status,
//! from/to, a user who sees one vhost), without search text and with text
//! matching one message, a few hundred and every message, on the first page
//! and 200 pages deep; and the UI's first page under a vhost filter.
//!
//! Spring failures (three exception types, so groups form) over two vhosts
//! and two services are stored through the store's capture path
//! (`insert_batch`, the statement capture commits, without the broker:
//! ingest has its own benchmark), into SQLite or, with
//! `REDRIVE_BENCH_POSTGRES`, a fresh PostgreSQL database. Redrive then runs
//! as a process of its own on that store and every request goes over HTTP.
//! The baseline is the unfiltered first page in the same run.
//!
//! `cargo run --release -p server --example bench_filters -- [stages…]`
//! (default `100000 1000000`). Prints one line per cell to stderr and a
//! summary (`RESULT filters …`) to stdout.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod support;
use support::{spring, BenchVhost};

use lapin::types::{AMQPValue, LongString, ShortString};
use server::ingest::decode::{decode, Incoming};
use time::OffsetDateTime;

/// Requests per cell, as issue 25 measured (p50 / p95 over 40 requests).
const SAMPLES: usize = 40;
const LIST_BAR_MS: f64 = 20.0;
const SEARCH_BAR_MS: f64 = 100.0;
const EXCEPTIONS: [&str; 3] = [
    "java.lang.IllegalStateException",
    "org.springframework.dao.DataIntegrityViolationException",
    "java.net.SocketTimeoutException",
];

/// Failure `i`: vhost `a` or `b` by halves of ten, `trade` or `pay` by
/// halves of four, one of three exceptions.
fn failure(i: usize, vhosts: &[String; 2], at: OffsetDateTime) -> server::domain::NewMessage {
    let (body, mut props) = spring::failure(i);
    let mut headers = props.headers().clone().unwrap_or_default();
    let exception = EXCEPTIONS[i % 3];
    let trace = match headers.inner().get("x-exception-stacktrace") {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        _ => String::new(),
    };
    headers.insert(
        ShortString::from("x-exception-stacktrace"),
        AMQPValue::LongString(LongString::from(format!("{exception}: order {i}\n{trace}"))),
    );
    props = props.with_headers(headers);
    let service = if i % 4 < 2 { "trade" } else { "pay" };
    decode(
        Incoming {
            vhost: vhosts[usize::from(i % 10 >= 5)].clone(),
            queue: format!("{service}.error.queue"),
            exchange: "error.direct".into(),
            routing_key: service.into(),
            redelivered: false,
            properties: props,
            body,
        },
        at,
    )
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn get(&self, path: &str, user: (&str, &str)) -> (Duration, serde_json::Value) {
        let start = Instant::now();
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .basic_auth(user.0, Some(user.1))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        (start.elapsed(), serde_json::from_str(&text).unwrap_or_default())
    }

    async fn p95(&self, path: &str, user: (&str, &str)) -> f64 {
        let mut t = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            t.push(self.get(path, user).await.0);
        }
        t.sort();
        // Nearest rank: the 38th of 40.
        t[(SAMPLES * 95).div_ceil(100) - 1].as_secs_f64() * 1000.0
    }
}

fn start_redrive(
    bench: &BenchVhost,
    url: &str,
    vhosts: &[String; 2],
) -> (tokio::process::Child, String, std::path::PathBuf) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exe = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("redrive");
    let log = bench.dir.join("redrive.log");
    let child = tokio::process::Command::new(&exe)
        .env("REDRIVE_AMQP_URL", &bench.amqp_url)
        .env("REDRIVE_DATABASE_URL", url)
        .env("REDRIVE_LISTEN", format!("127.0.0.1:{port}"))
        .env("REDRIVE_VHOSTS", vhosts.join(","))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("the release redrive binary (cargo build --release -p server --bin redrive)");
    (child, format!("http://127.0.0.1:{port}"), log)
}

/// Nothing else running while cells are timed. On PostgreSQL: the
/// planner's statistics taken (Redrive's indexer does it once caught up,
/// where autovacuum would not soon), and the load's pages written out (a
/// checkpoint spread over minutes doubled every cell's time on this
/// machine).
async fn settle(url: &str) {
    use sqlx::Connection;
    if !url.starts_with("postgres") {
        return;
    }
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let start = Instant::now();
    loop {
        let analyzed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_user_tables
             WHERE relname IN ('messages', 'message_search')
               AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if analyzed == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "Redrive analyzed its tables"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Err(e) = sqlx::query("CHECKPOINT").execute(&mut conn).await {
        eprintln!("CHECKPOINT: {e} (timing without it)");
    }
    conn.close().await.unwrap();
}

#[tokio::main]
async fn main() {
    let stages: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let stages = if stages.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        stages
    };
    let mut a = BenchVhost::create().await;
    let b = BenchVhost::create().await;
    let vhosts = [a.name.clone(), b.name.clone()];
    let url = a.scratch_database("filters").await;
    let store = server::store::connect(&url).await.unwrap();
    // A user who may see vhost `a` only.
    let one = ("redrive-bench-one", "bench-one-pw");
    let mgmt = |path: String, body: serde_json::Value| {
        a.http
            .put(format!("http://127.0.0.1:15672/api/{path}"))
            .basic_auth("guest", Some("guest"))
            .json(&body)
            .send()
    };
    mgmt(
        "users/redrive-bench-one".into(),
        serde_json::json!({"password": one.1, "tags": "monitoring"}),
    )
    .await
    .unwrap();
    let enc = server::broker::management::enc;
    mgmt(
        format!("permissions/{}/redrive-bench-one", enc(&vhosts[0])),
        serde_json::json!({"configure": "", "write": "", "read": ".*"}),
    )
    .await
    .unwrap();
    let guest = ("guest", "guest");
    let base = OffsetDateTime::now_utc() - time::Duration::hours(2);
    let mut stored = 0;
    for stage in stages {
        let fill = Instant::now();
        while stored < stage {
            let next = (stored + 1_000).min(stage);
            // Received in order, one every 7.2 ms (a million in two hours).
            let batch: Vec<_> = (stored..next)
                .map(|i| failure(i, &vhosts, base + time::Duration::microseconds(i as i64 * 7_200)))
                .collect();
            store
                .insert_batch(&batch, Duration::from_secs(1800))
                .await
                .unwrap();
            stored = next;
        }
        eprintln!("{stage}: stored in {:.0} s", fill.elapsed().as_secs_f64());
        // The pay service's groups in vhost b; one of them tagged `hot`.
        let pay = app::model::MessageQuery {
            vhost: Some(vhosts[1].clone()),
            service: Some("pay".into()),
            limit: Some(1),
            ..Default::default()
        };
        let page = store.list_within(&pay, None).await.unwrap();
        let group = page.items[0].group_id.clone().expect("grouped");
        let hot = app::model::AnnotationChange::AddTag("hot".into());
        let target = app::model::AnnotationTarget::Group(group.clone());
        if !store
            .annotations(&target)
            .await
            .unwrap()
            .tags
            .contains(&"hot".to_owned())
        {
            store.annotate(&target, &hot, "bench").await.unwrap();
        }
        let (mut child, base_url, log) = start_redrive(&a, &url, &vhosts);
        let http = Http {
            client: reqwest::Client::new(),
            base: base_url,
        };
        let start = Instant::now();
        while http
            .client
            .get(format!("{}/healthz", http.base))
            .send()
            .await
            .is_err()
        {
            assert!(start.elapsed() < Duration::from_secs(60));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Searchable before timing (the indexer catches up in the background).
        loop {
            let (_, p) = http.get("/api/v1/messages?limit=1&q=settle", guest).await;
            if p["unsearchable"].as_i64() == Some(0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        settle(&url).await;
        let (_, first) = http.get("/api/v1/messages?limit=1", guest).await;
        let newest = first["items"][0]["id"].as_i64().unwrap();
        let from = (base + time::Duration::minutes(3))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let to = (base + time::Duration::minutes(6))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let one_order = format!("ord-{:08}", stage / 2);
        let texts = [
            ("none", None),
            ("one", Some(one_order.as_str())),
            ("few", Some("SKU-0042")),
            ("every", Some("orders_customer_fk")),
        ];
        let baseline = http.p95("/api/v1/messages?limit=50", guest).await;
        let mut worst: BTreeMap<&str, (f64, String)> = BTreeMap::new();
        let mut over = 0;
        let mut cells = 0;
        for bits in 0u32..256 {
            let on = |bit: u32| bits & (1 << bit) != 0;
            let mut query = String::from("limit=50");
            let mut name = Vec::new();
            // The one-vhost user filters on the vhost it sees.
            let vhost = if on(7) { &vhosts[0] } else { &vhosts[1] };
            for (bit, key, value) in [
                (0, "vhost", vhost.as_str()),
                (1, "queue", "pay.error.queue"),
                (2, "service", "pay"),
                (3, "group", group.as_str()),
                (4, "tag", "hot"),
                (5, "status", "failed"),
            ] {
                if on(bit) {
                    query.push_str(&format!("&{key}={}", server::broker::management::enc(value)));
                    name.push(key);
                }
            }
            if on(6) {
                query.push_str(&format!(
                    "&from={}&to={}",
                    server::broker::management::enc(&from),
                    server::broker::management::enc(&to)
                ));
                name.push("from/to");
            }
            let user = if on(7) {
                name.push("visible");
                one
            } else {
                guest
            };
            for (kind, text) in texts {
                let q = text.map_or(String::new(), |t| format!("&q={t}"));
                let first = http.p95(&format!("/api/v1/messages?{query}{q}"), user).await;
                let deep = http
                    .p95(
                        &format!("/api/v1/messages?{query}{q}&cursor={}", newest - 200 * 50),
                        user,
                    )
                    .await;
                let bar = if text.is_some() {
                    SEARCH_BAR_MS
                } else {
                    LIST_BAR_MS
                };
                for (page, ms) in [("first", first), ("deep", deep)] {
                    cells += 1;
                    over += usize::from(ms > bar);
                    let cell = format!(
                        "{} text={kind} {page}",
                        if name.is_empty() {
                            "no filter".into()
                        } else {
                            name.join("+")
                        }
                    );
                    eprintln!("{stage} {ms:>8.1} ms  {cell}");
                    let entry = worst.entry(kind).or_insert((0.0, String::new()));
                    if ms > entry.0 {
                        *entry = (ms, cell);
                    }
                }
            }
        }
        let ui = http.p95(&format!("/?vhost={}", vhosts[1]), guest).await;
        let slow = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("slow statement")
            .count();
        println!("RESULT filters {stage} {cells} {over} {baseline:.1} {ui:.1} {slow}");
        for (kind, (ms, cell)) in &worst {
            println!("RESULT filters_worst {stage} {kind} {ms:.1} {cell}");
        }
        let _ = child.kill().await;
    }
    let _ = a
        .http
        .delete("http://127.0.0.1:15672/api/users/redrive-bench-one")
        .basic_auth("guest", Some("guest"))
        .send()
        .await;
    a.remove().await;
    b.remove().await;
}
