//! A prefetch window sized by bytes as well as by count.
//!
//! The broker's prefetch counts messages, so a window of 500 deliveries of
//! 20 MiB each would let it push 10 GB at Redrive before the first commit.
//! The window shrinks as soon as a large message shows that the current
//! count could exceed the in-flight byte budget, and grows back only after a
//! run of deliveries shows that messages are small again, so a queue of mixed
//! sizes does not make the consumer re-subscribe on every message. It starts
//! small for the same reason: before the first delivery nothing is known of
//! the sizes, and the opening burst is what the broker sends unasked.

/// Small deliveries needed before the opening window grows.
const OPEN_AFTER: u32 = 32;
/// Small deliveries needed before a window that had to shrink grows again:
/// longer, so a queue with a large message every so often stays shrunk.
const GROW_AFTER_MIN: u32 = 256;
/// The window before the first delivery.
const OPENING: u16 = 2;

#[derive(Debug)]
pub(super) struct Window {
    max: u16,
    budget: usize,
    current: u16,
    /// Largest body since the last resize.
    largest: usize,
    /// Deliveries since the last resize.
    seen: u32,
    /// Whether a large message ever shrank the window.
    shrunk: bool,
}

impl Window {
    /// A window of `max` deliveries at most, holding `budget` bytes at most.
    pub(super) fn new(max: u16, budget: usize) -> Self {
        Self {
            max: max.max(1),
            budget: budget.max(1),
            current: max.clamp(1, OPENING),
            largest: 0,
            seen: 0,
            shrunk: false,
        }
    }

    /// The prefetch count to subscribe with now.
    pub(super) fn current(&self) -> u16 {
        self.current
    }

    /// Deliveries of `size` bytes that fit the budget, within `1..=max`.
    fn fit(&self, size: usize) -> u16 {
        let n = self.budget / size.max(1);
        u16::try_from(n).unwrap_or(u16::MAX).clamp(1, self.max)
    }

    /// Records a delivery of `size` bytes. Returns the new prefetch count when
    /// the consumer should re-subscribe with it.
    pub(super) fn observe(&mut self, size: usize) -> Option<u16> {
        self.largest = self.largest.max(size);
        self.seen += 1;
        let fit = self.fit(self.largest);
        let grow_after = if self.shrunk {
            (u32::from(self.current) * 4).max(GROW_AFTER_MIN)
        } else {
            OPEN_AFTER
        };
        let shrink = fit < self.current;
        let grow = fit >= self.current.saturating_mul(2) && self.seen >= grow_after;
        if !shrink && !grow {
            return None;
        }
        self.shrunk |= shrink;
        self.current = fit;
        self.largest = 0;
        self.seen = 0;
        Some(fit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn small_messages_open_the_full_window_once() {
        let mut w = Window::new(500, 64 * MIB);
        assert_eq!(w.current(), OPENING);
        let resizes: Vec<u16> = (0..10_000).filter_map(|_| w.observe(1024)).collect();
        assert_eq!(resizes, vec![500]);
        assert_eq!(w.current(), 500);
    }

    /// A window opened to 500 at 1 KiB.
    fn open() -> Window {
        let mut w = Window::new(500, 64 * MIB);
        while w.observe(1024).is_none() {}
        w
    }

    #[test]
    fn a_large_message_shrinks_the_window_at_once() {
        let mut w = open();
        assert_eq!(w.observe(1024), None);
        assert_eq!(w.observe(20 * MIB), Some(3));
        assert_eq!(w.observe(20 * MIB), None, "already small enough");
        assert_eq!(w.observe(100 * MIB), Some(1), "never below one");
        assert_eq!(w.observe(100 * MIB), None);
    }

    #[test]
    fn the_window_grows_back_only_after_a_run_of_small_messages() {
        let mut w = open();
        assert_eq!(w.observe(20 * MIB), Some(3));
        for _ in 1..GROW_AFTER_MIN {
            assert_eq!(w.observe(1024), None);
        }
        assert_eq!(w.observe(1024), Some(500));
        // A fresh consumer opens after a much shorter run.
        let mut fresh = Window::new(500, 64 * MIB);
        let opened = (1..=OPEN_AFTER).find(|_| fresh.observe(1024).is_some());
        assert_eq!(opened, Some(OPEN_AFTER));
    }

    #[test]
    fn a_mixed_queue_does_not_resize_back_and_forth() {
        let mut w = open();
        let mut resizes = 0;
        for i in 0..10_000 {
            let size = if i % 50 == 0 { 16 * MIB } else { 2048 };
            resizes += usize::from(w.observe(size).is_some());
        }
        assert_eq!(resizes, 1, "one shrink, then stable at {}", w.current());
        assert_eq!(w.current(), 4);
    }

    #[test]
    fn odd_settings_are_clamped() {
        let mut w = Window::new(0, 0);
        assert_eq!(w.current(), 1);
        assert_eq!(w.observe(0), None);
        assert_eq!(w.observe(usize::MAX), None);
    }
}
