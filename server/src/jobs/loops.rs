//! Loop detection for a running replay job.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How often the loop check looks for copies that came back.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// Replays needed in the window before the loop check may pause a job.
pub const MIN_SAMPLE: i64 = 5;

/// Replays that come straight back mean the cause is not fixed: replaying
/// more only grows the error queue. Counts this run's confirmed replays per
/// settlement in memory, so a check costs one look at the (few) copies
/// that came back, never a rescan of the job.
pub struct LoopWatch {
    window: Duration,
    threshold: f64,
    started_ms: i64,
    /// (settled at, replays confirmed), oldest first.
    settled: VecDeque<(i64, i64)>,
    next_check: Instant,
}

impl LoopWatch {
    pub fn new(window: Duration, threshold: f64) -> Self {
        Self {
            window,
            threshold,
            started_ms: crate::store::now_ms(),
            settled: VecDeque::new(),
            next_check: Instant::now(),
        }
    }

    pub fn settled(&mut self, replayed: i64) {
        if replayed > 0 {
            self.settled.push_back((crate::store::now_ms(), replayed));
        }
    }

    pub fn due(&mut self) -> bool {
        if Instant::now() < self.next_check {
            return false;
        }
        self.next_check = Instant::now() + CHECK_EVERY;
        true
    }

    /// Replays confirmed within the window (this run only), and its start.
    pub fn window(&mut self) -> (i64, i64) {
        let since = (crate::store::now_ms() - self.window.as_millis() as i64).max(self.started_ms);
        while self.settled.front().is_some_and(|(at, _)| *at < since) {
            self.settled.pop_front();
        }
        (self.settled.iter().map(|(_, n)| n).sum(), since)
    }

    pub fn verdict(&self, replayed: i64, back: i64) -> Option<String> {
        if (back as f64) <= self.threshold * replayed as f64 {
            return None;
        }
        Some(format!(
            "paused: {back} of the last {replayed} replayed messages ({:.0}%) failed again within {}s; \
             a replay loop? Fix the consumer, then resume.",
            100.0 * back as f64 / replayed as f64,
            self.window.as_secs()
        ))
    }
}
