//! Polling for a condition an outsider can only observe.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 20 ms until it holds or `timeout` passes; how long
/// it took, if it held.
pub async fn until<F, Fut>(timeout: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
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
