//! A job's rate cap as a token bucket: tokens accrue at the capped rate up
//! to a tenth of a second's worth, so a capped job publishes in small bursts
//! the pipeline can batch, and never averages above its cap.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// `rate` messages per second (validated positive and finite).
    pub fn new(rate: f64, now: Instant) -> Self {
        Self {
            rate,
            capacity: (rate / 10.0).max(1.0),
            tokens: 1.0,
            at: now,
        }
    }

    /// The most it lets through at once.
    pub fn burst(&self) -> usize {
        self.capacity as usize
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.at = now;
    }

    /// Takes a token if one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be there.
    pub fn next_at(&self) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        self.at + Duration::from_secs_f64(missing / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes greedily over `secs` simulated seconds in 1 ms steps.
    fn taken(rate: f64, secs: u64) -> u64 {
        let start = Instant::now();
        let mut b = TokenBucket::new(rate, start);
        let mut n = 0;
        for ms in 0..secs * 1000 {
            let now = start + Duration::from_millis(ms);
            while b.try_take(now) {
                n += 1;
            }
        }
        n
    }

    #[test]
    fn never_averages_above_the_cap() {
        for (rate, secs) in [(1.0, 10), (7.5, 4), (100.0, 3), (5000.0, 2)] {
            let n = taken(rate, secs) as f64;
            let cap = rate * secs as f64 + (rate / 10.0).max(1.0);
            assert!(n <= cap, "{rate}/s over {secs}s: {n} > {cap}");
            assert!(n >= rate * secs as f64 * 0.95, "{rate}/s over {secs}s: only {n}");
        }
    }

    #[test]
    fn says_when_the_next_token_comes() {
        let start = Instant::now();
        let mut b = TokenBucket::new(2.0, start);
        assert!(b.try_take(start));
        assert!(!b.try_take(start));
        assert_eq!(b.next_at(), start + Duration::from_millis(500));
        assert!(b.try_take(start + Duration::from_millis(500)));
        assert_eq!(b.burst(), 1);
        assert_eq!(TokenBucket::new(1000.0, start).burst(), 100);
    }
}
