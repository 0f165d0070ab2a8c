//! What one consumer does: which queue it reads, which queue its messages
//! are filed under, and where it stands in a switch of capture mode.

use std::sync::Mutex;

use app::model::CaptureMode;

use crate::domain::Origin;

/// The header that names a switch's marker (see `ingest::switch`).
pub const MARKER_HEADER: &str = "x-redrive-tap-marker";

/// One consumer's job. Shared with the discovery loop, which sets the
/// marker a running consumer of a queue being switched to tap stops at.
#[derive(Debug)]
pub struct Plan {
    pub vhost: String,
    /// The queue consumed: the watched queue itself, or its tap.
    pub source: String,
    /// The watched queue its messages are filed under.
    pub filed: String,
    /// `Consume`: the source is the watched queue; `Tap`: it is its tap.
    pub mode: CaptureMode,
    /// When this consumer was planned.
    pub since: std::time::Instant,
    marks: Mutex<Marks>,
}

#[derive(Debug, Default, Clone)]
struct Marks {
    /// Consume side of a switch to tap: capture up to this marker, then stop.
    stop_at: Option<String>,
    /// Tap side of a switch to tap: the copies before this marker were
    /// captured from the queue itself; drop them, then capture.
    skip_until: Option<String>,
    /// Whether this process saw the broker confirm `stop_at`'s marker.
    marker_sent: bool,
    /// Back from tap: the originals that may have a stored copy are those
    /// before this marker, published once the tap was unbound.
    adopt_until: Option<String>,
}

/// What a consumer does with a marker it meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtMarker {
    /// The consume side reached its cut: commit what came before, stop.
    Stop,
    /// The tap side reached its cut: capture from the next delivery on.
    Resume,
    /// Back from tap: no original after this has a copy; pairing ends.
    EndPairing,
    /// A marker of no switch this consumer is in (a second copy of one
    /// published again after a restart): dropped.
    Stale,
}

impl Plan {
    /// A consumer of the watched queue itself.
    pub fn consume(vhost: &str, queue: &str) -> Self {
        Self::new(vhost, queue, queue, CaptureMode::Consume)
    }

    /// A consumer of `tap`, filing its copies under `queue`.
    pub fn tap(vhost: &str, queue: &str, tap: &str) -> Self {
        Self::new(vhost, tap, queue, CaptureMode::Tap)
    }

    fn new(vhost: &str, source: &str, filed: &str, mode: CaptureMode) -> Self {
        Self {
            vhost: vhost.to_owned(),
            source: source.to_owned(),
            filed: filed.to_owned(),
            mode,
            since: std::time::Instant::now(),
            marks: Mutex::default(),
        }
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.marks.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stop_at(&self, marker: &str) {
        self.marks().stop_at = Some(marker.to_owned());
    }

    pub fn skip_until(&self, marker: &str) {
        self.marks().skip_until = Some(marker.to_owned());
    }

    pub fn adopt_until(&self, marker: &str) {
        self.marks().adopt_until = Some(marker.to_owned());
    }

    /// Records that the broker confirmed the marker this consumer stops at.
    pub fn marker_sent(&self) {
        self.marks().marker_sent = true;
    }

    /// Whether the marker this consumer stops at still has to be published
    /// (by this process: after a restart it is published again, and a
    /// second copy is dropped wherever Redrive meets it).
    pub fn marker_unsent(&self) -> bool {
        let marks = self.marks();
        marks.stop_at.is_some() && !marks.marker_sent
    }

    /// Whether this consumer is the consume side of a switch under way.
    pub fn stopping_at_marker(&self) -> bool {
        self.marks().stop_at.is_some()
    }

    /// Whether deliveries are copies to drop (the tap side before its cut).
    pub fn skipping(&self) -> bool {
        self.marks().skip_until.is_some()
    }

    /// What to do with the marker `id`; a tap that passes its cut stops skipping.
    pub fn meet(&self, id: &str) -> AtMarker {
        let mut marks = self.marks();
        if marks.stop_at.as_deref() == Some(id) {
            AtMarker::Stop
        } else if marks.skip_until.as_deref() == Some(id) {
            marks.skip_until = None;
            AtMarker::Resume
        } else if marks.adopt_until.as_deref() == Some(id) {
            marks.adopt_until = None;
            AtMarker::EndPairing
        } else {
            AtMarker::Stale
        }
    }

    /// How this consumer's messages reach the store.
    pub fn origin(&self, adopting: bool) -> Origin {
        match (self.mode, adopting) {
            (CaptureMode::Tap, _) => Origin::Tapped,
            (CaptureMode::Consume, true) => Origin::Adopted,
            (CaptureMode::Consume, false) => Origin::Consumed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tap_resumes_once_at_its_own_marker_and_ignores_others() {
        let plan = Plan::tap("v", "q", "redrive.tap.q");
        plan.skip_until("m1");
        assert!(plan.skipping());
        assert_eq!(plan.meet("m0"), AtMarker::Stale);
        assert!(plan.skipping());
        assert_eq!(plan.meet("m1"), AtMarker::Resume);
        assert!(!plan.skipping());
        assert_eq!(
            plan.meet("m1"),
            AtMarker::Stale,
            "a second copy of the marker is dropped"
        );
    }

    #[test]
    fn the_consume_side_stops_at_its_marker() {
        let plan = Plan::consume("v", "q");
        assert_eq!(plan.meet("m1"), AtMarker::Stale);
        plan.stop_at("m1");
        assert!(plan.stopping_at_marker());
        assert_eq!(plan.meet("m1"), AtMarker::Stop);
        assert_eq!(plan.origin(true), Origin::Adopted);
        assert_eq!(Plan::tap("v", "q", "t").origin(false), Origin::Tapped);
    }

    #[test]
    fn pairing_ends_once_at_its_own_marker() {
        let plan = Plan::consume("v", "q");
        plan.adopt_until("m2");
        assert_eq!(plan.meet("m1"), AtMarker::Stale);
        assert_eq!(plan.meet("m2"), AtMarker::EndPairing);
        assert_eq!(
            plan.meet("m2"),
            AtMarker::Stale,
            "a redelivered marker is dropped"
        );
    }
}
