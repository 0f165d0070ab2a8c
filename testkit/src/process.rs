//! Redrive as a child process on a port of its own: to measure its own
//! memory (not the load generator's), and to SIGKILL or SIGTERM it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

pub struct RedriveProcess {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    pub http: reqwest::Client,
    peak_rss_kb: u64,
}

/// The `redrive` binary built beside the running example (`cargo build
/// --release -p server --bin redrive --examples`).
pub fn beside_examples() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .context("the examples directory")?
        .join("redrive"))
}

impl RedriveProcess {
    /// Starts `exe` with `env` on a free port (`REDRIVE_LISTEN`; logs at
    /// `error` unless `env` sets `RUST_LOG`) and waits up to 30 s for
    /// `/healthz` to answer.
    pub async fn start(exe: &Path, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = Command::new(exe);
        cmd.env("RUST_LOG", "error")
            .env("REDRIVE_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} (build it with --bin redrive)", exe.display()))?;
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

    /// A `/proc/<pid>/status` field of the process in kB (`VmHWM:` is its
    /// peak resident memory so far); 0 once it has exited.
    pub fn status_kb(&self, field: &str) -> u64 {
        let Some(pid) = self.child.id() else {
            return 0;
        };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// The peak resident memory seen so far, in kB, sampled now too.
    pub fn sample_rss(&mut self) -> u64 {
        self.peak_rss_kb = self.peak_rss_kb.max(self.status_kb("VmHWM:"));
        self.peak_rss_kb
    }

    /// Kills the process outright; its peak memory.
    pub async fn sigkill(mut self) -> u64 {
        let rss = self.sample_rss();
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        rss
    }

    /// SIGTERM; the peak memory, the exit status and how long the exit took.
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
}
