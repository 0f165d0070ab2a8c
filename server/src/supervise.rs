//! Background tasks are supervised: a task that panics or returns before
//! shutdown is logged and restarted after a pause, and a task that keeps
//! dying makes `/healthz` fail. No task is ever silently gone.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::domain::now_ms;

/// Pause before a dead task is started again.
const RESTART_AFTER: Duration = Duration::from_secs(1);
/// A task that died this often within `CRASH_WINDOW_MS` is reported unhealthy.
const CRASH_LIMIT: usize = 3;
const CRASH_WINDOW_MS: i64 = 5 * 60_000;

/// Crash times per task, read by `/healthz`.
#[derive(Clone, Default)]
pub struct TaskHealth(Arc<Mutex<BTreeMap<&'static str, Vec<i64>>>>);

impl TaskHealth {
    fn record(&self, name: &'static str) {
        let mut crashes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let list = crashes.entry(name).or_default();
        list.push(now_ms());
        list.retain(|t| now_ms() - t < CRASH_WINDOW_MS);
    }

    /// Tasks that died `CRASH_LIMIT` times or more in the window, with the count.
    pub fn crash_looping(&self) -> Vec<(&'static str, usize)> {
        let crashes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        crashes
            .iter()
            .map(|(name, at)| {
                (
                    *name,
                    at.iter().filter(|t| now_ms() - **t < CRASH_WINDOW_MS).count(),
                )
            })
            .filter(|(_, n)| *n >= CRASH_LIMIT)
            .collect()
    }

    /// Crashes per task in the window (for `/healthz`'s body).
    pub fn restarts(&self) -> BTreeMap<&'static str, usize> {
        let crashes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        crashes
            .iter()
            .map(|(name, at)| {
                (
                    *name,
                    at.iter().filter(|t| now_ms() - **t < CRASH_WINDOW_MS).count(),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// Runs `make()` as a task until `shutdown`, restarting it whenever it
/// panics or returns early.
pub fn spawn<F, Fut>(
    name: &'static str,
    health: TaskHealth,
    shutdown: CancellationToken,
    make: F,
) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let outcome = tokio::spawn(make()).await;
            if shutdown.is_cancelled() {
                return;
            }
            match outcome {
                Ok(()) => tracing::error!(
                    task = name,
                    "background task ended before shutdown; restarting it"
                ),
                Err(e) => tracing::error!(task = name, error = %e, "background task died; restarting it"),
            }
            health.record(name);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RESTART_AFTER) => {}
            }
        }
    })
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM (what a container runtime or
/// `kill` sends): the one shutdown signal of every long-running command.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
