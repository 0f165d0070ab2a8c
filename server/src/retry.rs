//! How long each of Redrive's retries waits, in one place. Every retry loop
//! takes its delays from one of these policies (backon's exponential
//! backoff) instead of doubling a duration by hand, so the cadence of a
//! retry is read and changed here.
//!
//! Loops that must stop on shutdown or report state between attempts
//! (capture's commit, a consumer's reconnect) iterate a policy's delays;
//! plain retries of one call use [`backon::Retryable`] with it.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// A write whose outcome must be recorded (a replay's verdict, a job's
/// step): 50 ms doubling to 5 s, jittered (up to twice that), for about a
/// minute of waiting.
/// Past that the caller gives up and the lease sweep settles what is left
/// (as outcome unknown), so a dead database cannot hold a job forever.
pub fn recorded_write() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .with_total_delay(Some(Duration::from_secs(60)))
}

/// A capture batch's commit: 100 ms doubling to 5 s (5–10 s with jitter),
/// for as long as Redrive runs. Nothing is lost meanwhile: the deliveries
/// stay unacked and the broker holds the rest.
pub fn capture_commit() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
}

/// A capture consumer's reconnect: 200 ms doubling to 2.5 s, jittered so
/// the consumers of one vhost do not reconnect in lockstep after a broker
/// restart. backon's jitter adds up to the delay again, so a wait at the
/// cap is 2.5–5 s: a broker that is back is found within about 5 s.
pub fn reconnect() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_millis(2500))
        .with_jitter()
        .without_max_times()
}

/// A job restarted after its task failed: 1 s doubling to 30 s. Not
/// jittered: the job's note tells the operator when it retries.
pub fn job_restart() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(30))
        .without_max_times()
}

/// An alert webhook delivery: 1 s doubling to 10 minutes. Not jittered:
/// the next attempt's time is stored with the delivery.
pub fn webhook() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(600))
        .without_max_times()
}

/// The waits of a loop that retries until it is stopped (capture's commit,
/// a consumer's reconnect): the policy's delays, and its last one again
/// should the policy ever run out, so the loop needs no fallback of its own.
pub struct Waits {
    backoff: <ExponentialBuilder as BackoffBuilder>::Backoff,
    last: Duration,
}

impl Waits {
    pub fn new(policy: ExponentialBuilder) -> Self {
        Self {
            backoff: policy.build(),
            last: Duration::ZERO,
        }
    }

    pub fn next_wait(&mut self) -> Duration {
        if let Some(wait) = self.backoff.next() {
            self.last = wait;
        }
        self.last
    }
}

/// The wait before retry number `retry` (0 is the first retry) of a
/// policy, for retries whose count is kept elsewhere (in the store, or
/// across task restarts). `None` once the policy has given up.
pub fn delay(policy: ExponentialBuilder, retry: usize) -> Option<Duration> {
    policy.build().nth(retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_retries_double_up_to_their_cap() {
        let secs = |p: fn() -> ExponentialBuilder, n| delay(p(), n).unwrap().as_secs();
        let job: Vec<u64> = (0..8).map(|n| secs(job_restart, n)).collect();
        assert_eq!(job, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(secs(webhook, 0), 1);
        assert_eq!(secs(webhook, 3), 8);
        assert_eq!(secs(webhook, 30), 600);
    }

    #[test]
    fn a_recorded_write_gives_up_after_about_a_minute() {
        let waits: Vec<Duration> = recorded_write().build().collect();
        let total: Duration = waits.iter().sum();
        assert!(total <= Duration::from_secs(60), "{total:?}");
        assert!(total >= Duration::from_secs(50), "{total:?}");
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(10)));
    }

    #[test]
    fn capture_and_reconnect_never_give_up() {
        assert!(capture_commit().build().nth(10_000).is_some());
        assert!(reconnect().build().nth(10_000).is_some());
        let mut waits = Waits::new(reconnect());
        assert!(waits.next_wait() >= Duration::from_millis(200));
    }
}
