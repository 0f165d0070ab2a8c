//! The watched set and the operator's switches.
//!
//! Kept in the database so capture starts from it at boot, before (and
//! without) the management API: a broker whose management plugin is down
//! still has its failure queues drained.

use crate::store::StoreError;
use app::model::CaptureMode;
use async_trait::async_trait;
use std::collections::HashMap;

/// A switch from consume to tap under way (see `ingest::switch`): the
/// marker that cuts the queue and its tap at the same message, and which
/// side has passed it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CaptureSwitch {
    pub vhost: String,
    pub name: String,
    pub marker: String,
    pub source_done: bool,
    pub tap_done: bool,
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
    /// reason), keeping `since` of queues that stay.
    async fn sync_watched(&self, vhost: &str, queues: &HashMap<String, String>) -> Result<(), StoreError>;

    /// Forgets the watched queues of vhosts that no longer exist.
    async fn forget_watched_vhosts_except(&self, vhosts: &[String]) -> Result<(), StoreError>;

    /// The operator's switches of `vhost`, by queue name (`true`: capture).
    async fn watch_overrides(&self, vhost: &str) -> Result<HashMap<String, bool>, StoreError>;

    /// Every operator switch: vhost → queue → capture.
    async fn all_watch_overrides(&self) -> Result<HashMap<String, HashMap<String, bool>>, StoreError>;

    /// Operators' capture modes: vhost → queue → mode. A queue without one
    /// takes `REDRIVE_CAPTURE_MODE`.
    async fn capture_modes(&self) -> Result<HashMap<String, HashMap<String, CaptureMode>>, StoreError>;

    async fn set_capture_mode(
        &self,
        vhost: &str,
        name: &str,
        mode: CaptureMode,
        actor: &str,
    ) -> Result<(), StoreError>;

    /// Every switch under way.
    async fn capture_switches(&self) -> Result<Vec<CaptureSwitch>, StoreError>;

    /// Records a switch to tap before its marker is published (replacing an
    /// earlier one of the queue whose marker was never published).
    async fn begin_capture_switch(&self, vhost: &str, name: &str, marker: &str) -> Result<(), StoreError>;

    /// Records that `side` passed the marker; forgets the switch once both have.
    async fn capture_switch_passed(
        &self,
        vhost: &str,
        name: &str,
        marker: &str,
        side: SwitchSide,
    ) -> Result<(), StoreError>;

    /// Forgets a switch (the queue went back to consume, or is gone).
    async fn forget_capture_switch(&self, vhost: &str, name: &str) -> Result<(), StoreError>;

    /// Sets (`Some`) or clears (`None`, back to the rules) an operator's switch.
    async fn set_watch_override(
        &self,
        vhost: &str,
        name: &str,
        watch: Option<bool>,
        actor: &str,
    ) -> Result<(), StoreError>;
}
