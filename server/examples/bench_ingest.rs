//! Ingest throughput, side by side with a baseline from the same run: a bare
//! lapin consumer that acks each batch without storing anything.
//!
//! `cargo run --release -p server --example bench_ingest -- [messages] [body bytes]`
//! Needs the local RabbitMQ with the management plugin; uses a throwaway vhost.

use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use server::broker::management::enc;
use server::config::Config;
use tokio_util::sync::CancellationToken;

const MGMT: &str = "http://guest:guest@127.0.0.1:15672/api";

async fn fill(ch: &Channel, queue: &str, n: u32, body: &[u8]) {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    for i in 0..n {
        let props = BasicProperties::default()
            .with_message_id(format!("m-{i}").into())
            .with_delivery_mode(2);
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .unwrap();
    }
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
}

/// Baseline: consume and ack (multiple, every 200) with nothing stored.
async fn raw_consume(ch: &Channel, queue: &str, n: u32) -> Duration {
    ch.basic_qos(500, BasicQosOptions::default()).await.unwrap();
    let start = Instant::now();
    let mut c = ch
        .basic_consume(
            queue.into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut got = 0;
    while let Some(d) = c.next().await {
        let d = d.unwrap();
        got += 1;
        if got % 200 == 0 || got == n {
            d.ack(BasicAckOptions { multiple: true }).await.unwrap();
        }
        if got == n {
            break;
        }
    }
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let size: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let body = vec![b'x'; size];
    let vhost = format!(
        "redrive-bench-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let http = reqwest::Client::new();
    http.put(format!("{MGMT}/vhosts/{}", enc(&vhost)))
        .send()
        .await
        .unwrap();
    http.put(format!("{MGMT}/permissions/{}/guest", enc(&vhost)))
        .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
        .send()
        .await
        .unwrap();
    let url = format!("amqp://guest:guest@127.0.0.1:5672/{}", enc(&vhost));
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();

    fill(&ch, "baseline.dlq", n, &body).await;
    let raw = raw_consume(&conn.create_channel().await.unwrap(), "baseline.dlq", n).await;

    let dir = std::env::temp_dir().join(&vhost);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("bench.db");
    fill(&ch, "bench.dlq", n, &body).await;
    let config = Config::try_parse_from([
        "redrive".to_owned(),
        format!("--amqp-url={url}"),
        format!("--database-url=sqlite://{}?mode=rwc", db.display()),
        "--listen=127.0.0.1:0".into(),
        format!("--vhosts={vhost}"),
        "--discovery-interval=0.05".into(),
    ])
    .unwrap();
    let start = Instant::now();
    let running = server::start(config, CancellationToken::new()).await.unwrap();
    let store = server::store::Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    while store.count().await.unwrap() < i64::from(n) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let redrive = start.elapsed();
    running.stop().await.unwrap();

    let rate = |d: Duration| f64::from(n) / d.as_secs_f64();
    println!("{n} messages of {size} B, prefetch 500, ack every 200");
    println!("{:<34} {:>10} {:>12}", "", "seconds", "msg/s");
    println!(
        "{:<34} {:>10.2} {:>12.0}",
        "baseline: lapin consume + ack",
        raw.as_secs_f64(),
        rate(raw)
    );
    println!(
        "{:<34} {:>10.2} {:>12.0}",
        "redrive: consume + store + ack",
        redrive.as_secs_f64(),
        rate(redrive)
    );
    println!("redrive / baseline: {:.0}%", 100.0 * rate(redrive) / rate(raw));

    let _ = conn.close(200, "bench done".into()).await;
    http.delete(format!("{MGMT}/vhosts/{}", enc(&vhost)))
        .send()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
