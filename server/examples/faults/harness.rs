//! What every fault scenario needs: a vhost of its own with Spring's error
//! topology, Spring-format failures numbered in their body, Redrive as a
//! child process, and counts read from the database as an outsider would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use lapin::options::BasicGetOptions;
use lapin::Channel;
use serde_json::Value;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection as _};
use testkit::process::RedriveProcess;
use testkit::spring::{self, Failure};
use testkit::{enc, Vhost};

pub use testkit::until;
pub use testkit::MGMT;

/// Spring's error topology, as the course's services declare it.
pub const ERROR_EXCHANGE: &str = "error.direct";
pub const ERROR_QUEUE: &str = "error.queue";
/// Where replays go: the exchange and queue the failures came from.
pub const WORK_EXCHANGE: &str = spring::EXCHANGE;
pub const WORK_QUEUE: &str = "orders.work";
pub const WORK_KEY: &str = spring::ROUTING_KEY;

/// A vhost of the scenario's own, deleted by `cleanup`.
pub struct Broker {
    pub vhost: String,
    scratch: Vhost,
}

/// Deletes vhosts an interrupted earlier run left behind.
pub async fn remove_stale_vhosts() -> anyhow::Result<()> {
    testkit::Mgmt::default()
        .remove_vhosts_named("redrive-faults-")
        .await?;
    Ok(())
}

impl Broker {
    /// A fresh vhost with `error.direct` → `error.queue` (key `error`) and
    /// `orders` → `orders.work`.
    pub async fn new() -> anyhow::Result<Self> {
        let mut scratch = Vhost::create("redrive-faults").await?;
        scratch
            .declare_route(ERROR_EXCHANGE, ERROR_QUEUE, "error")
            .await?;
        scratch.declare_route(WORK_EXCHANGE, WORK_QUEUE, WORK_KEY).await?;
        Ok(Self {
            vhost: scratch.name.clone(),
            scratch,
        })
    }

    pub fn amqp_url(&self) -> String {
        self.scratch.amqp_url()
    }

    pub async fn channel(&mut self) -> anyhow::Result<Channel> {
        self.scratch.channel().await
    }

    /// Publishes `count` Spring failures numbered `first..`, persistent and
    /// confirmed, to `error.direct`.
    pub async fn publish_failures(&mut self, first: u32, count: u32, body_len: usize) -> anyhow::Result<()> {
        let failures =
            (first..first + count).map(|seq| Failure::numbered(u64::from(seq)).body_len(body_len).build());
        self.scratch.publish_all(ERROR_EXCHANGE, "error", failures).await
    }

    /// Messages in `queue` (ready and unacked), exact, by passive declare.
    pub async fn depth(&mut self, queue: &str) -> anyhow::Result<u32> {
        self.scratch.depth(queue).await
    }

    /// Takes every message off `queue` and counts copies per sequence number.
    pub async fn drain_seqs(&mut self, queue: &str) -> anyhow::Result<HashMap<u32, u32>> {
        let ch = self.channel().await?;
        let mut seen = HashMap::new();
        while let Some(msg) = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await?
        {
            if let Some(seq) = spring::seq_of(&msg.delivery.data).and_then(|n| u32::try_from(n).ok()) {
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
        let url = format!("vhosts/{}/connections", enc(&self.vhost));
        let started = Instant::now();
        loop {
            let (_, conns) = self.scratch.mgmt.get(&url).await?;
            let conns: Vec<Value> = serde_json::from_value(conns).unwrap_or_default();
            let mut closed = 0;
            for c in conns {
                let client = c["client_properties"]["connection_name"]
                    .as_str()
                    .unwrap_or_default();
                let name = c["name"].as_str().unwrap_or_default();
                if !client.starts_with("redrive-") || name.is_empty() {
                    continue;
                }
                self.scratch
                    .mgmt
                    .delete(&format!("connections/{}", enc(name)))
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

    /// Whether `queue` is bound to `exchange` (the management API's view).
    pub async fn bound(&self, queue: &str, exchange: &str) -> anyhow::Result<bool> {
        let path = format!(
            "queues/{}/{}/bindings",
            testkit::enc(&self.vhost),
            testkit::enc(queue)
        );
        let (status, list) = self.scratch.mgmt.get(&path).await?;
        Ok(status == 200
            && list
                .as_array()
                .is_some_and(|b| b.iter().any(|b| b["source"] == exchange)))
    }

    pub async fn cleanup(self) {
        self.scratch.remove().await;
    }
}

/// A Spring failure numbered `seq` (`None`: every copy the same bytes) with
/// a body of about `body_len` bytes.
pub fn spring_failure(seq: Option<u32>, body_len: usize) -> (Vec<u8>, lapin::BasicProperties) {
    let failure = match seq {
        Some(seq) => Failure::numbered(u64::from(seq)),
        None => Failure::anonymous(),
    };
    failure.body_len(body_len).build()
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
    process: RedriveProcess,
    pub base: String,
    pub http: reqwest::Client,
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
        let exe = testkit::process::beside_examples()?;
        let mut env = vec![
            ("REDRIVE_AMQP_URL", launch.broker.amqp_url()),
            ("REDRIVE_DATABASE_URL", launch.db.url()),
            ("REDRIVE_MANAGEMENT_URL", launch.management_url.to_owned()),
            ("REDRIVE_VHOSTS", launch.broker.vhost.clone()),
            ("REDRIVE_DISCOVERY_INTERVAL", "1".to_owned()),
        ];
        env.extend(launch.extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let process = RedriveProcess::start(&exe, &env).await?;
        Ok(Self {
            base: process.base.clone(),
            http: process.http.clone(),
            process,
        })
    }

    /// The process's peak resident memory so far, in kB.
    pub fn sample_rss(&mut self) -> u64 {
        self.process.sample_rss()
    }

    pub async fn sigkill(self) -> u64 {
        self.process.sigkill().await
    }

    /// SIGTERM, then the exit status and how long the exit took.
    pub async fn sigterm(self) -> anyhow::Result<(u64, Option<i32>, Duration)> {
        self.process.sigterm().await
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
