//! What authorisation needs to know about stored things: which vhosts,
//! queues and exchanges a selection, a job, a group or a finding touches.

/// A distinct place the messages of a selection come from.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Scope {
    pub vhost: String,
    pub queue: String,
    /// The exchange a replay goes back to when none is given.
    pub exchange: Option<String>,
}
