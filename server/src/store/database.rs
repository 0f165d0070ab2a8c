//! The store's interface: one small trait per aggregate, each declared
//! beside its types (`store/<aggregate>.rs`) and implemented once for both
//! backends by the SQL in `store/<aggregate>/`, so the rest of Redrive
//! depends on what it stores, not on SQL. [`Database`] is all of them.
//! Every method answers with [`StoreError`], never an HTTP type.
//!
//! Callers hold a [`super::Store`] (`Arc<dyn Database>`); the methods of
//! every trait are callable on it as they are.

use async_trait::async_trait;

use super::*;

/// Every aggregate of one database, and its health.
#[async_trait]
pub trait Database:
    MessageStore
    + SearchIndex
    + CaptureStore
    + ReplayStore
    + JobStore
    + JobSteps
    + JobPlanStore
    + VhostAccess
    + GroupStore
    + GroupClaims
    + MessageClaims
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
