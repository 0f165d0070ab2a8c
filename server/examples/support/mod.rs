//! What the benchmarks share: a throwaway vhost on the local broker, with a
//! confirming channel and a scratch directory, removed when the run ends.

#[allow(
    dead_code,
    reason = "each benchmark compiles this module; not all publish failures"
)]
pub mod spring;

#[allow(
    dead_code,
    reason = "each benchmark compiles this module; not all run Redrive in a process of its own"
)]
pub mod process;

use std::path::PathBuf;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use server::broker::management::enc;

const MGMT: &str = "http://127.0.0.1:15672/api";

pub struct BenchVhost {
    pub name: String,
    pub amqp_url: String,
    pub http: reqwest::Client,
    pub conn: Connection,
    /// In confirm mode, so fills can wait until the broker has every message.
    #[allow(dead_code, reason = "each benchmark compiles this module; not all publish")]
    pub channel: Channel,
    pub dir: PathBuf,
    /// Where Redrive stores in this run: `bench.db` in `dir`, or a fresh
    /// PostgreSQL database when `REDRIVE_BENCH_POSTGRES` names a server
    /// (an admin URL such as `postgres://postgres@127.0.0.1:5432/postgres`).
    pub database_url: String,
    /// PostgreSQL databases this run created, dropped by `remove`.
    databases: Vec<String>,
}

/// The admin URL the benchmarks create PostgreSQL databases through.
fn postgres_admin() -> Option<String> {
    std::env::var("REDRIVE_BENCH_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
}

async fn admin_execute(sql: &str) {
    use sqlx::Connection;
    let admin = postgres_admin().expect("REDRIVE_BENCH_POSTGRES");
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL reachable");
    sqlx::query(sql).execute(&mut conn).await.unwrap();
    let _ = conn.close().await;
}

impl BenchVhost {
    pub async fn create() -> Self {
        let name = format!(
            "redrive-bench-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let http = reqwest::Client::new();
        let bench = |req: reqwest::RequestBuilder| req.basic_auth("guest", Some("guest")).send();
        let created = bench(http.put(api(&format!("vhosts/{}", enc(&name)))))
            .await
            .expect("management API reachable");
        assert!(
            created.status().is_success(),
            "creating vhost: {}",
            created.status()
        );
        let granted = bench(
            http.put(api(&format!("permissions/{}/guest", enc(&name))))
                .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"})),
        )
        .await
        .expect("management API reachable");
        assert!(
            granted.status().is_success(),
            "granting permissions: {}",
            granted.status()
        );
        let amqp_url = format!("amqp://guest:guest@127.0.0.1:5672/{}", enc(&name));
        let conn = Connection::connect(&amqp_url, ConnectionProperties::default())
            .await
            .expect("broker reachable");
        let channel = conn.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut bench = Self {
            name,
            amqp_url,
            http,
            conn,
            channel,
            dir,
            database_url: String::new(),
            databases: Vec::new(),
        };
        bench.database_url = bench.scratch_database("bench").await;
        bench
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
        admin_execute(&format!("CREATE DATABASE \"{db}\"")).await;
        self.databases.push(db.clone());
        let mut url = url::Url::parse(&admin).expect("a postgres URL");
        url.set_path(&db);
        url.to_string()
    }

    #[allow(
        dead_code,
        reason = "each benchmark compiles this module; not all read statistics"
    )]
    /// A management API GET on this vhost's `path` (e.g. `queues`), as guest.
    pub fn get(&self, path: &str, query: &str) -> reqwest::RequestBuilder {
        self.http
            .get(api(&format!("{path}/{}{query}", enc(&self.name))))
            .basic_auth("guest", Some("guest"))
    }

    #[allow(dead_code, reason = "each benchmark compiles this module; not all write")]
    /// A management API PUT of `body` on this vhost's `path` (e.g.
    /// `parameters/shovel` with `suffix` `/name`), as guest.
    pub fn put(&self, path: &str, suffix: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .put(api(&format!("{path}/{}{suffix}", enc(&self.name))))
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

    pub async fn remove(self) {
        let _ = self.conn.close(200, "bench done".into()).await;
        let _ = self
            .http
            .delete(api(&format!("vhosts/{}", enc(&self.name))))
            .basic_auth("guest", Some("guest"))
            .send()
            .await;
        let _ = std::fs::remove_dir_all(&self.dir);
        for db in &self.databases {
            admin_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)")).await;
        }
    }
}

fn api(path: &str) -> String {
    format!("{MGMT}/{path}")
}

/// Declares a durable queue.
#[allow(
    dead_code,
    reason = "each benchmark compiles this module; not all fill queues"
)]
pub async fn declare(ch: &Channel, queue: &str) {
    let durable = QueueDeclareOptions {
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
    for i in range {
        let (body, props) = spring::failure(i);
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            &body,
            props,
        )
        .await
        .unwrap();
    }
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
}
