//! The watched set and the operator's switches.
//!
//! Kept in the database so capture starts from it at boot, before (and
//! without) the management API: a broker whose management plugin is down
//! still has its failure queues drained.

use crate::store::StoreError;
use app::model::CaptureMode;
use async_trait::async_trait;
use std::collections::HashMap;

/// Who set a queue's mode that came from `REDRIVE_CAPTURE_MODE`.
pub const DEFAULT_ACTOR: &str = "REDRIVE_CAPTURE_MODE";

/// A switch of capture mode under way (see `ingest::switch`). While one is
/// recorded, only the instance holding the `capture-switch` lease runs
/// anything on the queue or its tap.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CaptureSwitch {
    pub vhost: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub direction: SwitchDirection,
    /// To tap: the marker that cuts the queue and its tap at the same message.
    pub marker: String,
    /// To tap: whether the marker may be out (set just before publishing).
    pub marker_sent: bool,
    pub source_done: bool,
    pub tap_done: bool,
}

/// Which way a queue's capture mode is switching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum SwitchDirection {
    /// From consume: cut at a marker (`ingest::switch`).
    ToTap,
    /// From tap: the tap retired, then the queue's originals paired with
    /// the stored copies.
    ToConsume,
}

/// What applying `REDRIVE_CAPTURE_MODE` at start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultApplied {
    /// Applied: the switches it recorded, by vhost and queue (none when
    /// the default is the one applied last).
    Switched(Vec<(String, String, SwitchDirection)>),
    /// Nothing applied yet: a queue that takes the default is still
    /// switching to the last one. Recording the new default now would
    /// leave that queue in the old mode for good (a queue switching takes
    /// no other switch), so the caller asks again once the switch ends.
    Waiting,
}

impl SwitchDirection {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The switch that takes a queue captured in `from` to `to`, if any.
    pub fn between(from: CaptureMode, to: CaptureMode) -> Option<Self> {
        match (from, to) {
            (CaptureMode::Consume, CaptureMode::Tap) => Some(Self::ToTap),
            (CaptureMode::Tap, CaptureMode::Consume) => Some(Self::ToConsume),
            _ => None,
        }
    }

    /// The mode the queue is in once the switch ends.
    pub fn target(self) -> CaptureMode {
        match self {
            Self::ToTap => CaptureMode::Tap,
            Self::ToConsume => CaptureMode::Consume,
        }
    }
}

impl TryFrom<String> for SwitchDirection {
    type Error = strum::ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A side of a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchSide {
    /// The service's queue, which Redrive consumed until the marker.
    Source,
    /// The tap, whose copies up to the marker were already stored.
    Tap,
}

/// A queue Redrive captures, with why.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WatchedQueue {
    pub vhost: String,
    pub name: String,
    pub reason: String,
}

/// The watched set capture starts from at boot, and operators' switches.
#[async_trait]
pub trait WatchStore: Send + Sync {
    async fn watched_queues(&self) -> Result<Vec<WatchedQueue>, StoreError>;

    /// Makes the stored watched set of `vhost` exactly `queues` (name →
    /// reason), keeping `since` of queues that stay. A queue newly watched
    /// without a mode gets `default` ([`DEFAULT_ACTOR`]'s), so every
    /// instance reads its mode from the database.
    async fn sync_watched(
        &self,
        vhost: &str,
        queues: &HashMap<String, String>,
        default: CaptureMode,
    ) -> Result<(), StoreError>;

    /// Applies `REDRIVE_CAPTURE_MODE` at start: when it differs from the
    /// last one applied, the queues whose mode came from the default take
    /// the new one, and each watched one's switch is recorded with it (as
    /// an operator's change is). Such a queue still switching to the last
    /// default defers the whole change ([`DefaultApplied::Waiting`]).
    async fn apply_capture_default(&self, default: CaptureMode) -> Result<DefaultApplied, StoreError>;

    /// Forgets the watched queues of vhosts that no longer exist.
    async fn forget_watched_vhosts_except(&self, vhosts: &[String]) -> Result<(), StoreError>;

    /// The operator's switches of `vhost`, by queue name (`true`: capture).
    async fn watch_overrides(&self, vhost: &str) -> Result<HashMap<String, bool>, StoreError>;

    /// Every operator switch: vhost → queue → capture.
    async fn all_watch_overrides(&self) -> Result<HashMap<String, HashMap<String, bool>>, StoreError>;

    /// Operators' capture modes: vhost → queue → mode. A queue without one
    /// takes `REDRIVE_CAPTURE_MODE`.
    async fn capture_modes(&self) -> Result<HashMap<String, HashMap<String, CaptureMode>>, StoreError>;

    /// Sets `name`'s mode. When Redrive captures the queue in the other mode
    /// now (its stored mode, or `default` without one), the switch is
    /// recorded in the same transaction, so no instance sees the new mode
    /// without it. A change while a switch of the queue is under way is
    /// refused (`Conflict`), unless it asks for the mode already coming.
    async fn set_capture_mode(
        &self,
        vhost: &str,
        name: &str,
        mode: CaptureMode,
        default: CaptureMode,
        actor: &str,
    ) -> Result<Option<SwitchDirection>, StoreError>;

    /// Every switch under way.
    async fn capture_switches(&self) -> Result<Vec<CaptureSwitch>, StoreError>;

    /// Records a switch to tap found without a record (a queue consumed
    /// while its mode says tap), before anything of it is done.
    async fn begin_capture_switch(&self, vhost: &str, name: &str, marker: &str) -> Result<(), StoreError>;

    /// Records that the switch's marker is about to be published: from now
    /// on a resumed switch must assume it may be out.
    async fn capture_marker_sending(&self, vhost: &str, name: &str, marker: &str) -> Result<(), StoreError>;

    /// Records that `side` passed the marker; forgets the switch once both have.
    async fn capture_switch_passed(
        &self,
        vhost: &str,
        name: &str,
        marker: &str,
        side: SwitchSide,
    ) -> Result<(), StoreError>;

    /// Forgets a switch of the queue (`only` one going that way, if given):
    /// its tap was retired, or the queue is gone or no longer captured.
    async fn forget_capture_switch(
        &self,
        vhost: &str,
        name: &str,
        only: Option<SwitchDirection>,
    ) -> Result<(), StoreError>;

    /// Sets (`Some`) or clears (`None`, back to the rules) an operator's switch.
    async fn set_watch_override(
        &self,
        vhost: &str,
        name: &str,
        watch: Option<bool>,
        actor: &str,
    ) -> Result<(), StoreError>;
}
