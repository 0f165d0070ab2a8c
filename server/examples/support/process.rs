//! Redrive as a child process, so a benchmark measures Redrive's own memory
//! and not the publisher's or the HTTP client's.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::BenchVhost;

pub struct RedriveProcess {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
}

impl RedriveProcess {
    /// Starts the release `redrive` binary built beside this example
    /// (`cargo build --release -p server --bin redrive`) on `bench`'s vhost,
    /// storing into `bench.db` in its scratch directory, and waits for
    /// `/healthz`.
    pub async fn start(bench: &BenchVhost) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let exe = std::env::current_exe()
            .expect("own path")
            .parent()
            .and_then(Path::parent)
            .expect("examples directory")
            .join("redrive");
        let db = bench.dir.join("bench.db");
        let child = Command::new(&exe)
            .env("REDRIVE_AMQP_URL", &bench.amqp_url)
            .env(
                "REDRIVE_DATABASE_URL",
                format!("sqlite://{}?mode=rwc", db.display()),
            )
            .env("REDRIVE_LISTEN", format!("127.0.0.1:{port}"))
            .env("REDRIVE_VHOSTS", &bench.name)
            .env("REDRIVE_DISCOVERY_INTERVAL", "0.05")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e} (build it with --bin redrive)", exe.display()));
        let me = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let start = Instant::now();
        while http.get(format!("{}/healthz", me.base)).send().await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "redrive did not answer /healthz"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        me
    }

    /// A `/proc/<pid>/status` field of the Redrive process, in MB
    /// (`VmHWM:` is its peak resident memory so far).
    pub fn status_mb(&self, field: &str) -> f64 {
        let Some(pid) = self.child.id() else {
            return 0.0;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// SIGTERM, and waits for the graceful exit.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}
