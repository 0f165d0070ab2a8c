//! What the benchmarks share beyond `testkit`: a throwaway vhost with a
//! confirming channel, a scratch directory and a database for Redrive,
//! removed when the run ends.

#[allow(
    dead_code,
    reason = "each benchmark compiles this module; not all measure CPU"
)]
pub mod cpu;

use std::path::PathBuf;

use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use testkit::postgres::ScratchDatabase;
use testkit::{enc, Vhost};

pub use testkit::process::RedriveProcess;
pub use testkit::spring;

pub struct BenchVhost {
    pub name: String,
    pub amqp_url: String,
    pub http: reqwest::Client,
    vhost: Vhost,
    /// In confirm mode, so fills can wait until the broker has every message.
    #[allow(dead_code, reason = "each benchmark compiles this module; not all publish")]
    pub channel: Channel,
    pub dir: PathBuf,
    /// Where Redrive stores in this run: `bench.db` in `dir`, or a fresh
    /// PostgreSQL database when `REDRIVE_BENCH_POSTGRES` names a server
    /// (an admin URL such as `postgres://postgres@127.0.0.1:5432/postgres`).
    pub database_url: String,
    /// PostgreSQL databases this run created, dropped by `remove`.
    databases: Vec<ScratchDatabase>,
}

/// The admin URL the benchmarks create PostgreSQL databases through.
fn postgres_admin() -> Option<String> {
    std::env::var("REDRIVE_BENCH_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
}

impl BenchVhost {
    pub async fn create() -> Self {
        let mut vhost = Vhost::create("redrive-bench").await.expect("a scratch vhost");
        let channel = vhost.confirming_channel().await.expect("broker reachable");
        let dir = std::env::temp_dir().join(&vhost.name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut bench = Self {
            name: vhost.name.clone(),
            amqp_url: vhost.amqp_url(),
            http: vhost.mgmt.http.clone(),
            vhost,
            channel,
            dir,
            database_url: String::new(),
            databases: Vec::new(),
        };
        bench.database_url = bench.scratch_database("bench").await;
        bench
    }

    /// The vhost's AMQP connection.
    #[allow(dead_code, reason = "each benchmark compiles this module; not all consume")]
    pub async fn conn(&mut self) -> &Connection {
        self.vhost.connection().await.expect("broker reachable")
    }

    /// A fresh, empty database for this run: a SQLite file in `dir`, or a
    /// PostgreSQL database (see `database_url`).
    pub async fn scratch_database(&mut self, name: &str) -> String {
        let Some(admin) = postgres_admin() else {
            return format!(
                "sqlite://{}?mode=rwc",
                self.dir.join(format!("{name}.db")).display()
            );
        };
        let db = format!("{}_{name}", self.name.replace('-', "_"));
        let db = ScratchDatabase::create(&admin, &db)
            .await
            .expect("REDRIVE_BENCH_POSTGRES reachable");
        let url = db.url();
        self.databases.push(db);
        url
    }

    #[allow(
        dead_code,
        reason = "each benchmark compiles this module; not all read statistics"
    )]
    /// A management API GET on this vhost's `path` (e.g. `queues`), as guest.
    pub fn get(&self, path: &str, query: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}/api/{path}/{}{query}", testkit::MGMT, enc(&self.name)))
            .basic_auth("guest", Some("guest"))
    }

    #[allow(dead_code, reason = "each benchmark compiles this module; not all write")]
    /// A management API PUT of `body` on this vhost's `path` (e.g.
    /// `parameters/shovel` with `suffix` `/name`), as guest.
    pub fn put(&self, path: &str, suffix: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .put(format!(
                "{}/api/{path}/{}{suffix}",
                testkit::MGMT,
                enc(&self.name)
            ))
            .basic_auth("guest", Some("guest"))
            .json(&body)
    }

    #[allow(
        dead_code,
        reason = "each benchmark compiles this module; not all start Redrive"
    )]
    /// Redrive's settings for this vhost, storing into `database_url` and
    /// finding new queues within 50 ms.
    pub fn config(&self) -> server::config::Config {
        use clap::Parser;
        server::config::Config::try_parse_from([
            "redrive".to_owned(),
            format!("--amqp-url={}", self.amqp_url),
            format!("--database-url={}", self.database_url),
            "--listen=127.0.0.1:0".into(),
            format!("--vhosts={}", self.name),
            "--discovery-interval=0.05".into(),
        ])
        .unwrap()
    }

    #[allow(
        dead_code,
        reason = "each benchmark compiles this module; not all run Redrive in a process of its own"
    )]
    /// Starts the release `redrive` built beside this example on this
    /// vhost, storing into `database_url`.
    pub async fn redrive_process(&self) -> RedriveProcess {
        self.redrive_process_on(&self.database_url).await
    }

    #[allow(
        dead_code,
        reason = "each benchmark compiles this module; not all run Redrive in a process of its own"
    )]
    /// As [`Self::redrive_process`], storing into `database_url` (several
    /// instances on one PostgreSQL database).
    pub async fn redrive_process_on(&self, database_url: &str) -> RedriveProcess {
        let exe = testkit::process::beside_examples().expect("own path");
        RedriveProcess::start(
            &exe,
            &[
                ("REDRIVE_AMQP_URL", self.amqp_url.clone()),
                ("REDRIVE_DATABASE_URL", database_url.to_owned()),
                ("REDRIVE_VHOSTS", self.name.clone()),
                ("REDRIVE_DISCOVERY_INTERVAL", "0.05".into()),
            ],
        )
        .await
        .expect("redrive starts")
    }

    pub async fn remove(self) {
        self.vhost.remove().await;
        let _ = std::fs::remove_dir_all(&self.dir);
        for db in &self.databases {
            let _ = db.drop_database().await;
        }
    }
}

/// Declares a durable queue.
#[allow(
    dead_code,
    reason = "each benchmark compiles this module; not all fill queues"
)]
pub async fn declare(ch: &Channel, queue: &str) {
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(queue.into(), durable, FieldTable::default())
        .await
        .unwrap();
}

/// Declares `queue` and puts `n` Spring failures on it, confirmed (`ch` is
/// in confirm mode).
#[allow(
    dead_code,
    reason = "each benchmark compiles this module; not all fill queues"
)]
pub async fn fill(ch: &Channel, queue: &str, n: usize) {
    declare(ch, queue).await;
    fill_range(ch, queue, 0..n).await;
}

/// Puts Spring failures numbered `range` on an existing `queue`, confirmed.
#[allow(
    dead_code,
    reason = "each benchmark compiles this module; not all fill queues"
)]
pub async fn fill_range(ch: &Channel, queue: &str, range: std::ops::Range<usize>) {
    testkit::publish_all(ch, "", queue, range.map(spring::failure))
        .await
        .expect("every fill confirmed");
}
