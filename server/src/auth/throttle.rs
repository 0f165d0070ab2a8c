//! Failed sign-ins slow further attempts, per user and per source address,
//! so a password cannot be guessed at the broker's speed through Redrive.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failures allowed for one user before their attempts are delayed.
const FREE: u32 = 3;
/// Failures allowed from one address (many users may share it behind a NAT)
/// before its attempts are delayed.
const FREE_PER_ADDRESS: u32 = 50;
/// The longest delay, and how long a quiet key is remembered.
const CAP: Duration = Duration::from_secs(60);
const FORGET: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Key {
    fn free(&self) -> u32 {
        match self {
            Key::User(_) => FREE,
            Key::Addr(_) => FREE_PER_ADDRESS,
        }
    }
}

impl Failures {
    /// Locked for 1 s, 2 s, 4 s … (at most `CAP`) after each failure past the `free` ones.
    fn locked_until(&self, free: u32) -> Option<Instant> {
        let over = self.count.checked_sub(free + 1)?;
        let delay = Duration::from_secs(1u64 << over.min(6)).min(CAP);
        Some(self.last + delay)
    }
}

#[derive(Clone, Default)]
pub struct Throttle {
    failures: Arc<Mutex<HashMap<Key, Failures>>>,
}

impl Throttle {
    /// How long the caller must wait before this attempt may be checked.
    pub fn wait(&self, user: &str, addr: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let failures = self.failures.lock().expect("throttle lock");
        [Key::User(user.to_owned()), Key::Addr(addr)]
            .iter()
            .filter_map(|k| failures.get(k)?.locked_until(k.free()))
            .filter(|until| *until > now)
            .max()
            .map(|until| until - now)
    }

    pub fn failed(&self, user: &str, addr: IpAddr) {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("throttle lock");
        failures.retain(|_, f| now.duration_since(f.last) < FORGET);
        for key in [Key::User(user.to_owned()), Key::Addr(addr)] {
            let f = failures.entry(key).or_insert(Failures { count: 0, last: now });
            f.count = f.count.saturating_add(1);
            f.last = now;
        }
    }

    /// A success clears the user's count; the address keeps its own, so one
    /// valid account does not unlock guessing at others from there.
    pub fn succeeded(&self, user: &str) {
        self.failures
            .lock()
            .expect("throttle lock")
            .remove(&Key::User(user.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_failures_are_free_then_attempts_wait_longer_and_longer() {
        let t = Throttle::default();
        let addr: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..FREE {
            assert_eq!(t.wait("alice", addr), None);
            t.failed("alice", addr);
        }
        assert_eq!(t.wait("alice", addr), None, "three free failures");
        t.failed("alice", addr);
        let first = t.wait("alice", addr).expect("delayed");
        t.failed("alice", addr);
        let second = t.wait("alice", addr).expect("delayed");
        assert!(second > first, "{second:?} > {first:?}");
        // Another address guessing the same user waits as well, while
        // other users on this address do not, yet.
        assert!(t.wait("alice", "10.0.0.2".parse().unwrap()).is_some());
        assert!(t.wait("bob", addr).is_none());
        // A success clears the user.
        t.succeeded("alice");
        assert!(t.wait("alice", "10.0.0.2".parse().unwrap()).is_none());
    }

    #[test]
    fn an_address_guessing_many_users_is_slowed_down_too() {
        let t = Throttle::default();
        let addr: IpAddr = "10.0.0.9".parse().unwrap();
        for n in 0..=FREE_PER_ADDRESS {
            assert_eq!(t.wait(&format!("user{n}"), addr), None);
            t.failed(&format!("user{n}"), addr);
        }
        assert!(t.wait("somebody-else", addr).is_some());
        assert!(t.wait("somebody-else", "10.0.0.10".parse().unwrap()).is_none());
    }

    #[test]
    fn the_delay_is_capped() {
        let t = Throttle::default();
        let addr: IpAddr = "::1".parse().unwrap();
        for _ in 0..100 {
            t.failed("x", addr);
        }
        assert!(t.wait("x", addr).unwrap() <= CAP);
    }
}
