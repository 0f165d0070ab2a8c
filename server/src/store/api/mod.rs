//! The store's interface: one small trait per aggregate, each implemented
//! by one file of the SQLite backend ([`super::SqliteStore`]), so the rest
//! of Redrive depends on what it stores, not on SQL. [`Database`] is all of
//! them. Every method answers with [`StoreError`], never an HTTP type.
//!
//! Callers hold a [`super::Store`] (`Arc<dyn Database>`); the methods of
//! every trait are callable on it as they are.

mod messages;
mod operations;
mod work;

use async_trait::async_trait;

pub use messages::{CaptureStore, MessageStore, ReplayStore, SearchIndex, VhostAccess};
pub use operations::{AlertStore, AuditLog, FindingStore, LeaseStore, SampleStore, SessionStore, WatchStore};
pub use work::{AnnotationStore, GroupStore, JobSteps, JobStore};

use super::StoreError;

/// Every aggregate of one database, and its health.
#[async_trait]
pub trait Database:
    MessageStore
    + SearchIndex
    + CaptureStore
    + ReplayStore
    + JobStore
    + JobSteps
    + VhostAccess
    + GroupStore
    + AnnotationStore
    + SampleStore
    + FindingStore
    + WatchStore
    + LeaseStore
    + AlertStore
    + AuditLog
    + SessionStore
{
    async fn ping(&self) -> Result<(), StoreError>;

    /// Brings the query planner's statistics up to date where the database
    /// would not do it soon enough on its own; returns the tables analyzed.
    async fn refresh_statistics(&self) -> Result<Vec<String>, StoreError>;
}
