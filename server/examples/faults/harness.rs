//! What every fault scenario needs: a vhost of its own with Spring's error
//! topology, Spring-format failures numbered in their body, Redrive as a
//! child process, and counts read from the database as an outsider would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Value};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection as _};
use tokio::process::{Child, Command};

pub const MGMT: &str = "http://127.0.0.1:15672";
/// Spring's error topology, as the course's services declare it.
pub const ERROR_EXCHANGE: &str = "error.direct";
pub const ERROR_QUEUE: &str = "error.queue";
/// Where replays go: the exchange and queue the failures came from.
pub const WORK_EXCHANGE: &str = "orders";
pub const WORK_QUEUE: &str = "orders.work";
pub const WORK_KEY: &str = "order.created";

fn enc(s: &str) -> String {
    server::broker::management::enc(s)
}

fn random(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// A vhost of the scenario's own, deleted by `cleanup`.
pub struct Broker {
    pub vhost: String,
    http: reqwest::Client,
    conn: Option<Connection>,
}

/// Deletes vhosts an interrupted earlier run left behind.
pub async fn remove_stale_vhosts() -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let vhosts: Vec<Value> = http
        .get(format!("{MGMT}/api/vhosts"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .context("management API (is rabbitmq_management enabled?)")?
        .json()
        .await?;
    for v in vhosts {
        if let Some(name) = v["name"].as_str().filter(|n| n.starts_with("redrive-faults-")) {
            http.delete(format!("{MGMT}/api/vhosts/{}", enc(name)))
                .basic_auth("guest", Some("guest"))
                .send()
                .await?;
        }
    }
    Ok(())
}

impl Broker {
    /// A fresh vhost with `error.direct` → `error.queue` (key `error`) and
    /// `orders` → `orders.work`.
    pub async fn new() -> anyhow::Result<Self> {
        let vhost = random("redrive-faults");
        let http = reqwest::Client::new();
        let mut b = Self {
            vhost,
            http,
            conn: None,
        };
        b.mgmt_put(&format!("vhosts/{}", enc(&b.vhost)), json!({}))
            .await?;
        b.mgmt_put(
            &format!("permissions/{}/guest", enc(&b.vhost)),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .await?;
        let ch = b.channel().await?;
        for (exchange, queue, key) in [
            (ERROR_EXCHANGE, ERROR_QUEUE, "error"),
            (WORK_EXCHANGE, WORK_QUEUE, WORK_KEY),
        ] {
            let durable = ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            };
            ch.exchange_declare(
                exchange.into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
            let durable = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            ch.queue_declare(queue.into(), durable, FieldTable::default())
                .await?;
            ch.queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(b)
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", enc(&self.vhost))
    }

    async fn mgmt_put(&self, path: &str, body: Value) -> anyhow::Result<()> {
        let r = self
            .http
            .put(format!("{MGMT}/api/{path}"))
            .basic_auth("guest", Some("guest"))
            .json(&body)
            .send()
            .await
            .context("management API (is rabbitmq_management enabled?)")?;
        if !r.status().is_success() {
            bail!("PUT {path}: {}", r.status());
        }
        Ok(())
    }

    pub async fn channel(&mut self) -> anyhow::Result<Channel> {
        if self.conn.as_ref().is_none_or(|c| !c.status().connected()) {
            let conn = Connection::connect(&self.amqp_url(), ConnectionProperties::default()).await?;
            self.conn = Some(conn);
        }
        Ok(self
            .conn
            .as_ref()
            .expect("just connected")
            .create_channel()
            .await?)
    }

    /// Publishes `count` Spring failures numbered `first..`, persistent and
    /// confirmed, to `error.direct`.
    pub async fn publish_failures(&mut self, first: u32, count: u32, body_pad: usize) -> anyhow::Result<()> {
        let ch = self.channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        for seq in first..first + count {
            let (body, props) = spring_failure(Some(seq), body_pad);
            ch.basic_publish(
                ERROR_EXCHANGE.into(),
                "error".into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await?;
            if seq % 500 == 0 && !ch.wait_for_confirms().await?.is_empty() {
                bail!("a test publish was returned");
            }
        }
        if !ch.wait_for_confirms().await?.is_empty() {
            bail!("a test publish was returned");
        }
        let _ = ch.close(200, "published".into()).await;
        Ok(())
    }

    /// Messages in `queue` (ready and unacked), exact, by passive declare.
    pub async fn depth(&mut self, queue: &str) -> anyhow::Result<u32> {
        let ch = self.channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let q = ch
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await?;
        let _ = ch.close(200, "depth".into()).await;
        Ok(q.message_count())
    }

    /// Takes every message off `queue` and counts copies per sequence number.
    pub async fn drain_seqs(&mut self, queue: &str) -> anyhow::Result<HashMap<u32, u32>> {
        let ch = self.channel().await?;
        let mut seen = HashMap::new();
        while let Some(msg) = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await?
        {
            if let Some(seq) = seq_of(&msg.delivery.data) {
                *seen.entry(seq).or_insert(0) += 1;
            }
        }
        Ok(seen)
    }

    /// Closes every connection Redrive holds to this vhost, as an operator
    /// (or a broker under memory pressure) would. Returns how many. The
    /// management API lists a new connection after a moment, so this waits
    /// (up to 10 s) until it sees one.
    pub async fn close_redrive_connections(&self) -> anyhow::Result<usize> {
        let url = format!("{MGMT}/api/vhosts/{}/connections", enc(&self.vhost));
        let started = Instant::now();
        loop {
            let conns: Vec<Value> = self
                .http
                .get(&url)
                .basic_auth("guest", Some("guest"))
                .send()
                .await?
                .json()
                .await?;
            let mut closed = 0;
            for c in conns {
                let client = c["client_properties"]["connection_name"]
                    .as_str()
                    .unwrap_or_default();
                let name = c["name"].as_str().unwrap_or_default();
                if !client.starts_with("redrive-") || name.is_empty() {
                    continue;
                }
                self.http
                    .delete(format!("{MGMT}/api/connections/{}", enc(name)))
                    .basic_auth("guest", Some("guest"))
                    .header("X-Reason", "fault injection")
                    .send()
                    .await?;
                closed += 1;
            }
            if closed > 0 {
                return Ok(closed);
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("the management API lists no Redrive connection in {}", self.vhost);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn cleanup(self) {
        if let Some(c) = &self.conn {
            let _ = c.close(200, "done".into()).await;
        }
        let _ = self
            .http
            .delete(format!("{MGMT}/api/vhosts/{}", enc(&self.vhost)))
            .basic_auth("guest", Some("guest"))
            .send()
            .await;
    }
}

/// A 2 KB stack trace, as Spring's `x-exception-stacktrace` carries one.
fn stack_trace() -> String {
    let mut t = String::from(
        "org.springframework.amqp.rabbit.support.ListenerExecutionFailedException: Listener method threw exception\n",
    );
    for i in 0..24 {
        t.push_str(&format!(
            "\tat com.example.orders.OrderListener.handle{i}(OrderListener.java:{})\n",
            40 + i
        ));
    }
    t.push_str("Caused by: java.lang.IllegalStateException: inventory service unavailable\n");
    t
}

/// A Spring RepublishMessageRecoverer failure. `seq` numbers it in the body;
/// `None` makes every copy identical (Spring sets no message id).
pub fn spring_failure(seq: Option<u32>, pad: usize) -> (Vec<u8>, BasicProperties) {
    let body = json!({"seq": seq, "orderId": "A-1001", "pad": "x".repeat(pad)});
    let mut headers = FieldTable::default();
    let s = |v: &str| AMQPValue::LongString(v.into());
    headers.insert(
        "x-exception-message".into(),
        s("Listener method threw exception: inventory service unavailable"),
    );
    headers.insert("x-exception-stacktrace".into(), s(&stack_trace()));
    headers.insert("x-original-exchange".into(), s(WORK_EXCHANGE));
    headers.insert("x-original-routingKey".into(), s(WORK_KEY));
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    (serde_json::to_vec(&body).expect("json"), props)
}

fn seq_of(body: &[u8]) -> Option<u32> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["seq"].as_u64().and_then(|n| u32::try_from(n).ok())
}

/// Redrive's database, read through a connection of its own.
pub struct Db {
    pub path: PathBuf,
}

/// What the database holds of the scenario's messages.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stored {
    pub rows: u64,
    pub distinct: u64,
    /// Replays flagged "outcome unknown" for the operator.
    pub flagged: u64,
    /// Rows flagged as a possible redelivered copy of another row (an ack
    /// was in flight when the fault struck).
    pub possible_copies: u64,
    pub replayed: u64,
    /// Rows still `replaying`: a replay not yet settled, or left by a dead
    /// instance until the lease sweep flags it.
    pub replaying: u64,
}

impl Db {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            path: dir.join("redrive.db"),
        }
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.path.display())
    }

    /// A read-only connection of the harness's own, once the file exists.
    async fn open(&self) -> Option<sqlx::SqliteConnection> {
        if !self.path.exists() {
            return None;
        }
        SqliteConnectOptions::new()
            .filename(&self.path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(5))
            .connect()
            .await
            .ok()
    }

    /// Rows stored, cheaply (for polling).
    pub async fn rows(&self) -> u64 {
        let Some(mut conn) = self.open().await else {
            return 0;
        };
        let n: Result<i64, _> = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(&mut conn)
            .await;
        let _ = conn.close().await;
        n.ok().and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
    }

    pub async fn stored(&self) -> Stored {
        let Some(mut conn) = self.open().await else {
            return Stored::default();
        };
        let row: Result<(i64, i64, i64, i64, i64, i64), _> = sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT json_extract(CAST(body AS TEXT), '$.seq')),
                    COALESCE(SUM(replay_uncertain), 0), COALESCE(SUM(status = 'replayed'), 0),
                    COALESCE(SUM(status = 'replaying'), 0), COUNT(possible_copy_of)
             FROM messages JOIN message_contents ON message_contents.message_id = messages.id",
        )
        .fetch_one(&mut conn)
        .await;
        let _ = conn.close().await;
        let (rows, distinct, flagged, replayed, replaying, possible_copies) = row.unwrap_or_default();
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Stored {
            rows: n(rows),
            distinct: n(distinct),
            flagged: n(flagged),
            replayed: n(replayed),
            replaying: n(replaying),
            possible_copies: n(possible_copies),
        }
    }

    /// Bodies of every stored row, for byte-exact checks.
    pub async fn bodies(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut conn = SqliteConnectOptions::new()
            .filename(&self.path)
            .read_only(true)
            .connect()
            .await?;
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT body FROM message_contents")
            .fetch_all(&mut conn)
            .await?;
        Ok(rows.into_iter().map(|(b,)| b).collect())
    }
}

/// Redrive as a child process on a port of its own.
pub struct Redrive {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
    peak_rss_kb: u64,
}

/// Environment of one Redrive process.
pub struct Launch<'a> {
    pub broker: &'a Broker,
    pub db: &'a Db,
    pub management_url: &'a str,
    pub extra: &'a [(&'a str, &'a str)],
}

impl Redrive {
    pub async fn start(launch: Launch<'_>) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let exe = std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .context("examples directory")?
            .join("redrive");
        let mut cmd = Command::new(&exe);
        cmd.env("REDRIVE_AMQP_URL", launch.broker.amqp_url())
            .env("REDRIVE_DATABASE_URL", launch.db.url())
            .env("REDRIVE_MANAGEMENT_URL", launch.management_url)
            .env("REDRIVE_LISTEN", format!("127.0.0.1:{port}"))
            .env("REDRIVE_VHOSTS", &launch.broker.vhost)
            .env("REDRIVE_DISCOVERY_INTERVAL", "1")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in launch.extra {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let me = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            peak_rss_kb: 0,
        };
        let start = Instant::now();
        while me.http.get(format!("{}/healthz", me.base)).send().await.is_err() {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("redrive did not answer /healthz within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(me)
    }

    /// Records the process's peak resident memory so far (VmHWM).
    pub fn sample_rss(&mut self) -> u64 {
        if let Some(pid) = self.child.id() {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0);
            self.peak_rss_kb = self.peak_rss_kb.max(hwm);
        }
        self.peak_rss_kb
    }

    pub async fn sigkill(mut self) -> u64 {
        let rss = self.sample_rss();
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        rss
    }

    /// SIGTERM, then the exit status and how long the exit took.
    pub async fn sigterm(mut self) -> anyhow::Result<(u64, Option<i32>, Duration)> {
        let rss = self.sample_rss();
        let pid = self.child.id().context("already exited")?;
        let started = Instant::now();
        Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await?;
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("no exit within 60 s of SIGTERM")??;
        Ok((rss, status.code(), started.elapsed()))
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .basic_auth("guest", Some("guest"))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {v}");
        }
        Ok(v)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth("guest", Some("guest"))
            .send()
            .await?
            .json()
            .await?)
    }
}

/// Polls until `check` holds or `timeout` passes; the time it took, if it held.
pub async fn until<F, Fut>(timeout: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
