//! Test support: a random vhost on the real broker, a fresh SQLite database,
//! and Redrive started in-process on port 0.

mod browser;
mod receiver;
mod smtp;
mod users;
#[allow(unused_imports)]
pub use browser::*;
#[allow(unused_imports)]
pub use receiver::*;
pub use smtp::*;
#[allow(unused_imports)]
pub use users::*;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde_json::Value;
use testkit::postgres::ScratchDatabase;
use tokio_util::sync::CancellationToken;

use server::config::Config;

pub use testkit::{enc, random_name, MGMT};

/// A vhost of its own for one test (`testkit::Vhost`, whose failures a
/// test does not handle: they panic here); deleted on drop.
pub struct TestVhost {
    pub name: String,
    pub http: reqwest::Client,
    inner: testkit::Vhost,
}

impl TestVhost {
    pub async fn new() -> Self {
        Self::named(random_name("redrive-test")).await
    }

    /// A vhost of its own under `name`, which must be unique.
    pub async fn named(name: String) -> Self {
        let inner = testkit::Vhost::named(name)
            .await
            .expect("a vhost of the test's own");
        Self {
            name: inner.name.clone(),
            http: inner.mgmt.http.clone(),
            inner,
        }
    }

    pub fn amqp_url(&self) -> String {
        self.inner.amqp_url()
    }

    /// The testkit vhost, for what this wrapper does not repeat.
    pub fn inner(&mut self) -> &mut testkit::Vhost {
        &mut self.inner
    }

    pub async fn channel(&mut self) -> Channel {
        self.inner.channel().await.expect("an AMQP channel")
    }

    pub async fn declare_exchange(&mut self, name: &str, kind: ExchangeKind) {
        self.inner
            .declare_exchange(name, kind)
            .await
            .expect("exchange declared");
    }

    pub async fn declare_queue(&mut self, name: &str, args: FieldTable) {
        self.inner
            .declare_queue(name, args)
            .await
            .expect("queue declared");
    }

    pub async fn bind(&mut self, queue: &str, exchange: &str, key: &str) {
        self.inner.bind(queue, exchange, key).await.expect("queue bound");
    }

    /// A Spring service's error queue, `orders.error.queue`, and the
    /// original route its failures name (`orders` → `orders.in`), where
    /// their replays arrive.
    pub async fn declare_spring_route(&mut self) {
        use testkit::spring;
        self.declare_queue("orders.error.queue", FieldTable::default())
            .await;
        self.declare_exchange(spring::EXCHANGE, ExchangeKind::Direct)
            .await;
        self.declare_queue("orders.in", FieldTable::default()).await;
        self.bind("orders.in", spring::EXCHANGE, spring::ROUTING_KEY)
            .await;
    }

    /// Publishes `mandatory` with confirms, so the message is in a queue on return.
    pub async fn publish(&mut self, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
        self.inner.publish(exchange, key, body, props).await.unwrap();
    }

    /// Takes the next message from `queue`, unacked: the caller settles it,
    /// and dropping it hands it back to the queue.
    pub async fn next_delivery(&mut self, queue: &str) -> lapin::message::Delivery {
        let ch = self.channel().await;
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                random_name("test-consumer").as_str().into(),
                lapin::options::BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut consumer))
            .await
            .expect("a delivery within 10 s")
            .unwrap()
            .unwrap()
    }

    /// Takes `n` messages off `queue` (auto-acked), in queue order.
    pub async fn drain(&mut self, queue: &str, n: usize) -> Vec<lapin::message::Delivery> {
        let out = self.inner.take(queue, n).await.unwrap();
        assert_eq!(out.len(), n, "{queue} has only {} of {n} messages", out.len());
        out
    }

    pub async fn queue_info(&self, queue: &str) -> Value {
        self.inner.queue_info(queue).await.unwrap()
    }

    /// `GET /api/{path}` on the management API, as the broker answers it.
    pub async fn mgmt(&self, path: &str) -> (u16, Value) {
        self.inner.mgmt.get(path).await.unwrap()
    }

    /// Messages in the queue according to the broker (ready + unacked), read
    /// with AMQP passive declare so it is exact, not a sampled statistic.
    pub async fn depth(&mut self, queue: &str) -> u32 {
        self.inner.depth(queue).await.unwrap()
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        mgmt_delete_blocking(format!("vhosts/{}", enc(&self.name)));
    }
}

/// `DELETE /api/{path}` on the management API from a `Drop`.
pub fn mgmt_delete_blocking(path: String) {
    testkit::Mgmt::delete_blocking(path);
}

pub fn headers(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

pub fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

/// The environment variable that runs the suite on PostgreSQL: the URL of a
/// database to connect to as a role that may create databases (each test
/// creates its own and drops it afterwards), e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres`. Unset: SQLite files.
pub const POSTGRES_ENV: &str = "REDRIVE_TEST_POSTGRES";

/// A database of the test's own: a SQLite file in a directory of its own,
/// or a PostgreSQL database when [`POSTGRES_ENV`] is set. Removed on drop.
pub struct TestDb {
    /// The SQLite file (for a PostgreSQL database, a path nothing uses).
    pub path: PathBuf,
    postgres: Option<ScratchDatabase>,
}

/// Runs `f` to completion on a runtime of its own, on another thread, so
/// sync code (constructors, `Drop`) can wait for the database from inside a
/// test's runtime.
fn block_on_side<F>(f: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f)
        })
        .join()
        .unwrap()
    })
}

impl TestDb {
    /// The suite's database: PostgreSQL when [`POSTGRES_ENV`] is set.
    pub fn new() -> Self {
        match std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty()) {
            Some(admin) => Self::postgres(admin),
            None => Self::sqlite(),
        }
    }

    /// A SQLite file, whatever the suite runs on: for what only SQLite has
    /// (the instance lock, a file on a full disk).
    pub fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(random_name("redrive-db"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            path: dir.join("redrive.db"),
            postgres: None,
        }
    }

    fn postgres(admin: String) -> Self {
        let name = random_name("redrive_test").replace('-', "_");
        let db = block_on_side(ScratchDatabase::create(&admin, &name))
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={admin}: {e:#}"));
        Self {
            path: std::env::temp_dir().join(&name),
            postgres: Some(db),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    pub fn url(&self) -> String {
        match &self.postgres {
            Some(pg) => pg.url(),
            None => format!("sqlite://{}?mode=rwc", self.path.display()),
        }
    }

    /// Whether Redrive has created the database yet (a PostgreSQL database
    /// exists from the start).
    pub fn exists(&self) -> bool {
        self.is_postgres() || self.path.exists()
    }

    /// A connection of the test's own, as another process would hold one.
    /// Statements on it use `$1`-style parameters (both backends take them).
    /// The store as two instances hold it: two pools on PostgreSQL; on
    /// SQLite, one instance's by design, so the same pool twice.
    pub async fn two_stores(&self) -> (server::store::Store, server::store::Store) {
        let first = server::store::connect(&self.url()).await.unwrap();
        let second = if self.is_postgres() {
            server::store::connect(&self.url()).await.unwrap()
        } else {
            first.clone()
        };
        (first, second)
    }

    pub async fn raw_connection(&self) -> sqlx::AnyConnection {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.url()).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.postgres {
            Some(pg) => {
                if let Err(e) = block_on_side(pg.drop_database()) {
                    eprintln!("dropping test database {}: {e:#}", pg.name);
                }
            }
            None => {
                if let Some(dir) = self.path.parent() {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }
}

/// Redrive as a process of its own (one to SIGKILL), on the vhost and the
/// database, with `extra` environment on top.
pub fn spawn_redrive(vh: &TestVhost, db: &TestDb, extra: &[(&str, &str)]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_redrive"))
        .env("REDRIVE_AMQP_URL", vh.amqp_url())
        .env("REDRIVE_DATABASE_URL", db.url())
        .env("REDRIVE_LISTEN", "127.0.0.1:0")
        .env("REDRIVE_VHOSTS", &vh.name)
        .env("REDRIVE_DISCOVERY_INTERVAL", "0.2")
        .env("REDRIVE_SITE_ROOT", site_root())
        .env(
            "RUST_LOG",
            std::env::var("REDRIVE_TEST_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(instance_log(vh, extra))
        .envs(extra.iter().copied())
        .kill_on_drop(true)
        .spawn()
        .expect("redrive binary starts")
}

/// Where a spawned instance's log (its stdout) goes: nowhere, or with
/// `REDRIVE_TEST_LOG_DIR` set a file of its own there
/// (`<vhost>-<instance>.log`), for reading several instances apart
/// (`REDRIVE_TEST_RUST_LOG=info` for more than warnings).
fn instance_log(vh: &TestVhost, extra: &[(&str, &str)]) -> std::process::Stdio {
    let Ok(dir) = std::env::var("REDRIVE_TEST_LOG_DIR") else {
        return std::process::Stdio::null();
    };
    let name = extra
        .iter()
        .find(|(k, _)| *k == "REDRIVE_INSTANCE_NAME")
        .map_or("redrive", |(_, v)| v);
    let path = std::path::Path::new(&dir).join(format!("{}-{name}.log", vh.name));
    match std::fs::File::create(&path) {
        Ok(f) => f.into(),
        Err(e) => panic!("REDRIVE_TEST_LOG_DIR: {}: {e}", path.display()),
    }
}

/// Panics with the fix when the UI has not been built (browser tests).
pub fn require_site() {
    assert!(
        site_root().join("pkg/redrive.wasm").exists(),
        "the UI is not built: run scripts/build-site (scripts/test does)"
    );
}

pub fn site_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/site"))
}

pub fn config(vhost: &TestVhost, db: &TestDb, extra: &[&str]) -> Config {
    let mut args = vec![
        "redrive".to_owned(),
        format!("--amqp-url={}", vhost.amqp_url()),
        format!("--database-url={}", db.url()),
        "--listen=127.0.0.1:0".into(),
        format!("--vhosts={}", vhost.name),
        "--discovery-interval=0.3".into(),
        format!("--site-root={}", site_root().display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Config::try_parse_from(args).unwrap()
}

/// `redrive demo` with the local broker's settings and `args`.
pub fn demo_command(args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_redrive"));
    c.arg("demo")
        .args(args)
        .env("REDRIVE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
        .env("REDRIVE_MANAGEMENT_URL", MGMT)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    c
}

/// Redrive on `vhost` of the local broker (it need not exist yet).
pub fn config_on_vhost(vhost: &str, db: &TestDb) -> Config {
    Config::try_parse_from([
        "redrive".to_owned(),
        "--amqp-url=amqp://guest:guest@127.0.0.1:5672/%2f".into(),
        format!("--database-url={}", db.url()),
        "--listen=127.0.0.1:0".into(),
        format!("--vhosts={vhost}"),
        "--discovery-interval=0.5".into(),
        format!("--site-root={}", site_root().display()),
    ])
    .unwrap()
}

/// A client that sends Basic credentials on every request, as API users do.
pub fn client_as(user: &str, password: &str) -> reqwest::Client {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Basic {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Requests to a running Redrive as one user; answers as status and JSON.
pub struct TestClient {
    pub base: String,
    pub http: reqwest::Client,
}

impl TestClient {
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }
}

/// Redrive running in this process.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    running: Option<server::Running>,
}

impl TestApp {
    pub async fn start(config: Config) -> Self {
        log_if_asked();
        let running = server::start(config, CancellationToken::new())
            .await
            .expect("redrive starts");
        Self {
            base: format!("http://{}", running.addr),
            http: client_as("guest", "guest"),
            running: Some(running),
        }
    }

    /// The same Redrive, asked as another broker user (or nobody: `None`).
    pub fn as_user(&self, credentials: Option<(&str, &str)>) -> TestClient {
        TestClient {
            base: self.base.clone(),
            http: match credentials {
                Some((user, password)) => client_as(user, password),
                None => reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap(),
            },
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A page as the server renders it (before any JavaScript runs).
    pub async fn html(&self, path: &str) -> String {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until `count` messages of `queue` are stored and returns the page.
    pub async fn wait_for_messages(&self, queue: &str, count: usize) -> Vec<Value> {
        let path = format!("/api/v1/messages?queue={}&limit=500", enc(queue));
        let start = Instant::now();
        loop {
            let (_, page) = self.get(&path).await;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if items.len() >= count || start.elapsed() > Duration::from_secs(20) {
                assert_eq!(items.len(), count, "stored messages of {queue}");
                return items;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The queue as `GET /api/v1/queues` shows it, once it is listed.
    pub async fn queue_row(&self, vhost: &str, name: &str) -> Value {
        wait_for(Duration::from_secs(15), || async {
            let (_, q) = self.get("/api/v1/queues").await;
            q["queues"]
                .as_array()?
                .iter()
                .find(|q| q["vhost"] == vhost && q["name"] == name)
                .cloned()
        })
        .await
    }

    /// The audit entries of `action` (`user`, `result`, `detail`), newest first.
    pub async fn audited(&self, action: &str) -> Vec<(String, String, String)> {
        let (status, page) = self.get(&format!("/api/v1/audit?action={action}")).await;
        assert_eq!(status, 200, "{page}");
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                (text("user"), text("result"), text("detail"))
            })
            .collect()
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }
}

/// In-process Redrives log nothing unless `REDRIVE_TEST_LOG` holds a
/// filter (`REDRIVE_TEST_LOG=server=debug cargo test … -- --nocapture`):
/// parallel tests would interleave their logs, so it is for one test.
fn log_if_asked() {
    if let Ok(filter) = std::env::var("REDRIVE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Polls `check` until it holds; panics after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        testkit::until(timeout, check).await.is_some(),
        "condition not met within {timeout:?}"
    );
}

/// Polls `probe` until it yields a value; panics after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "nothing within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh vhost with `queues` declared (durable, no arguments), a fresh
/// database, and Redrive started on both with `extra` flags.
pub async fn with_queues(queues: &[&str], extra: &[&str]) -> (TestVhost, TestDb, TestApp) {
    let mut vh = TestVhost::new().await;
    let db = TestDb::new();
    for q in queues {
        vh.declare_queue(q, FieldTable::default()).await;
    }
    let app = TestApp::start(config(&vh, &db, extra)).await;
    (vh, db, app)
}

/// A TCP forwarder to the management API that a test can cut, to see
/// Redrive run on without it.
pub struct MgmtProxy {
    pub url: String,
    cut: CancellationToken,
}

impl MgmtProxy {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cut = CancellationToken::new();
        let token = cut.clone();
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    _ = token.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
                };
                let token = token.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:15672").await {
                        tokio::select! {
                            _ = token.cancelled() => {}
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        }
                    }
                });
            }
        });
        Self { url, cut }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.cancel();
    }
}

impl Drop for MgmtProxy {
    fn drop(&mut self) {
        self.cut.cancel();
    }
}

/// A delivery from `queue` in vhost `v`, as capture decodes it now: for
/// store-level tests that write rows without the broker.
pub fn received(
    queue: &str,
    body: Vec<u8>,
    properties: lapin::BasicProperties,
) -> server::domain::NewMessage {
    use server::ingest::decode::{decode, Incoming};
    let incoming = Incoming {
        vhost: "v".into(),
        queue: queue.to_owned(),
        exchange: String::new(),
        routing_key: queue.to_owned(),
        redelivered: false,
        properties,
        body,
    };
    decode(incoming, time::OffsetDateTime::now_utc())
}
