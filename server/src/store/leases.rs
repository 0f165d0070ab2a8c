//! Named leases: work one instance of a cluster does at a time. Their
//! SQL is in `store/leases/`, compiled once per backend.

use crate::store::StoreError;
use async_trait::async_trait;

/// Named leases: work that one instance of a cluster does at a time. A
/// lease is held until it expires; its holder renews it well before.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes `name` for `holder` for `ttl_ms`, or renews it when `holder`
    /// has it. `false` (and nothing changed) while another holder's lease
    /// is live.
    async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError>;

    /// Gives `name` up at once, when `holder` has it (a stopping instance,
    /// so another takes over without waiting for the expiry).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Ends every lease `holder` does not hold; returns how many. Only for
    /// a database no other instance can be using (SQLite, behind the
    /// instance lock), where every other holder is a process that died.
    async fn clear_leases_except(&self, holder: &str) -> Result<u64, StoreError>;
}
