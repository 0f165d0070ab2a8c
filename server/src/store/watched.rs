//! The watched set and the operator's switches.
//!
//! Kept in the database so capture starts from it at boot, before (and
//! without) the management API: a broker whose management plugin is down
//! still has its failure queues drained.

/// A queue Redrive captures, with why.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WatchedQueue {
    pub vhost: String,
    pub name: String,
    pub reason: String,
}
