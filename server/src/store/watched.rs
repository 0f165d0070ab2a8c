//! The watched set and the operator's switches.
//!
//! Kept in the database so capture starts from it at boot, before (and
//! without) the management API: a broker whose management plugin is down
//! still has its failure queues drained.

use crate::store::StoreError;
use async_trait::async_trait;
use std::collections::HashMap;

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

    /// Sets (`Some`) or clears (`None`, back to the rules) an operator's switch.
    async fn set_watch_override(
        &self,
        vhost: &str,
        name: &str,
        watch: Option<bool>,
        actor: &str,
    ) -> Result<(), StoreError>;
}
