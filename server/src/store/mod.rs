//! Durable storage of failed messages and their history.
//!
//! The rest of Redrive sees one trait per aggregate ([`Database`] is all of
//! them) through a [`Store`]. Two backends implement them: SQLite (the
//! default, one instance) and PostgreSQL (several instances on one
//! database).
//!
//! Each aggregate is a file pair found by its name: `store/jobs.rs` holds
//! its types and its trait, `store/jobs/` its SQL. The SQL is the same on
//! both backends, so it is written once and compiled into each by
//! `shared_sql!`. What a backend must
//! provide for it (its pool and write discipline, the few places its
//! dialect differs, its full-text index) is one trait,
//! [`backend::SqlBackend`]. Types and pure logic live here, once.

mod access;
mod alerts;
mod annotations;
mod audit;
mod backend;
pub mod browse;
mod capture;
mod contents;
mod database;
mod filter;
pub mod findings;
mod groups;
mod id_runs;
mod job_batches;
mod job_plans;
mod jobs;
mod leases;
mod messages;
#[cfg(test)]
mod plan_matrix;
// Both backends compile the aggregates' SQL (see above): intended.
#[allow(clippy::duplicate_mod)]
mod postgres;
mod replays;
mod rows;
pub mod samples;
mod search;
mod sessions;
#[allow(clippy::duplicate_mod)]
mod sqlite;
mod watched;

use std::sync::Arc;

use app::model::{HistoryAction, MessageStatus};

pub use access::Scope;
pub use access::VhostAccess;
pub use alerts::AlertStore;
pub use annotations::AnnotationStore;
pub use audit::{AuditFilter, AuditLog, NewAudit};
pub use capture::{AckState, CaptureBatch, CaptureStore, Committed};
pub use contents::{take_trace, trace_template, TraceTemplate};
pub use database::Database;
pub use filter::Filter;
pub use findings::FindingStore;
pub use groups::{GroupClaims, GroupStore, NewHold};
pub use job_batches::{ClaimBatch, ClaimRequest, Claimed, JobReplay, JobReplayOutcome, JobSteps};
pub use job_plans::{JobPlanStore, PhaseRecord, CANCELLABLE};
pub use jobs::{first_phase, ApprovalRule, ExpiredApproval, JobSpec, JobStore, NewJob, SELECTABLE};
pub use leases::LeaseStore;
pub use messages::{MessageClaims, MessageStore};
pub use replays::{ReplayStore, Settlement};
pub use rows::{rfc3339, StoredMessage};
pub use samples::SampleStore;
pub use search::SearchIndex;
pub use sessions::{Session, SessionStore};
pub use watched::{
    CaptureSwitch, DefaultApplied, SwitchDirection, SwitchSide, WatchStore, WatchedQueue, DEFAULT_ACTOR,
};

/// The store as the rest of Redrive holds it: every aggregate of one
/// database, cheap to clone.
pub type Store = Arc<dyn Database>;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of `url`, from its scheme; `None` for anything else.
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Opens the database `url` names (creating and migrating it as needed).
/// The scheme picks the backend.
pub async fn connect(url: &str) -> anyhow::Result<Store> {
    match Backend::of(url) {
        Some(Backend::Sqlite) => Ok(Arc::new(sqlite::SqliteStore::connect(url).await?)),
        Some(Backend::Postgres) => Ok(Arc::new(postgres::PgStore::connect(url).await?)),
        None => anyhow::bail!(
            "REDRIVE_DATABASE_URL must start with sqlite: (one instance, the default) or postgres:// \
             (several instances)"
        ),
    }
}

/// Refuses a database whose schema is newer than this build's
/// migrations (`applied` is the highest version it records): migrating
/// would be a no-op, and the newer columns' meaning unknown.
fn refuse_newer_schema(migrator: &sqlx::migrate::Migrator, applied: Option<i64>) -> anyhow::Result<()> {
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(newer) = applied.filter(|v| *v > known) {
        anyhow::bail!(
            "this database was written by a newer Redrive (schema version {newer}; this build knows up to \
             {known}). Run the newer Redrive, or point REDRIVE_DATABASE_URL at another database; nothing \
             was changed."
        );
    }
    Ok(())
}

/// Compiles the aggregates' SQL for one backend: `shared_sql!(Store)` in
/// the backend's module, where `Store` implements
/// [`backend::SqlBackend`], the whole contract. Inside the shared files,
/// `Engine` is that store, `Db` and `Conn` its sqlx database and
/// connection, and `Search` its full-text index. The paths are relative
/// to the backend's directory.
macro_rules! shared_sql {
    ($backend:ty) => {
        type Engine = $backend;
        type Db = <$backend as $crate::store::backend::SqlBackend>::Db;
        type Conn = $crate::store::backend::ConnOf<$backend>;
        type Search = <$backend as $crate::store::backend::SqlBackend>::Search;

        #[path = "../access/sql.rs"]
        mod access;
        #[path = "../alerts/sql.rs"]
        mod alerts;
        #[path = "../annotations/sql.rs"]
        mod annotations;
        #[path = "../audit/sql.rs"]
        mod audit;
        #[path = "../browse/sql.rs"]
        mod browse;
        #[path = "../findings/sql.rs"]
        mod findings;
        #[path = "../groups/claims.rs"]
        mod group_claims;
        #[path = "../groups/sql.rs"]
        mod groups;
        #[path = "../messages/history.rs"]
        mod history;
        #[path = "../search/sql.rs"]
        mod indexer;
        #[path = "../capture/sql.rs"]
        mod ingest;
        #[path = "../job_batches/sql.rs"]
        mod job_batches;
        #[path = "../job_plans/sql.rs"]
        mod job_plans;
        #[path = "../jobs/sql.rs"]
        mod jobs;
        #[path = "../leases/sql.rs"]
        mod leases;
        #[path = "../messages/claims.rs"]
        mod message_claims;
        #[path = "../messages/sql.rs"]
        mod messages;
        #[path = "../replays/sql.rs"]
        mod replays;
        #[path = "../samples/sql.rs"]
        mod samples;
        #[path = "../filter/sql.rs"]
        mod select;
        #[path = "../sessions/sql.rs"]
        mod sessions;
        #[path = "../browse/walk.rs"]
        mod walk;
        #[path = "../watched/sql.rs"]
        mod watched;
    };
}
use shared_sql;

/// A write transaction holding its backend's write turn (`Turn`, dropped
/// when it ends). Derefs to the connection, so `&mut *tx` runs statements
/// in it.
pub(crate) struct WriteTx<DB: sqlx::Database, Turn = ()> {
    tx: sqlx::Transaction<'static, DB>,
    _turn: Turn,
}

impl<DB: sqlx::Database, Turn> WriteTx<DB, Turn> {
    fn new(tx: sqlx::Transaction<'static, DB>, turn: Turn) -> Self {
        Self { tx, _turn: turn }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl<DB: sqlx::Database, Turn> std::ops::Deref for WriteTx<DB, Turn> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: sqlx::Database, Turn> std::ops::DerefMut for WriteTx<DB, Turn> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

/// Storage failures. `Database` is internal: logged, never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("message {0} not found")]
    NotFound(i64),
    /// Something else that does not exist, named (`job 7`, `group ab12`).
    #[error("{0} not found")]
    Missing(String),
    /// A request the store cannot take as it is (a bad cursor, limit, time,
    /// status or tag); the text says what a valid one looks like.
    #[error("{0}")]
    Invalid(String),
    #[error("message {id} is {status}, expected {expected}")]
    WrongState {
        id: i64,
        status: MessageStatus,
        expected: &'static str,
    },
    /// A stored value that does not read back (e.g. a job plan written by a
    /// newer Redrive): internal, like `Database`.
    #[error("stored data does not read: {0}")]
    Corrupt(String),
    /// A change that cannot be made in the state things are in now (the
    /// text says what to wait for).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // PostgreSQL refuses text with the NUL character (SQLSTATE 22021),
        // which a request can carry; that is the request's fault, not the
        // database's. (Capture replaces NUL before it gets here.)
        let refused_nul = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code == "22021");
        if refused_nul {
            return Self::Invalid("text must not contain the NUL character".into());
        }
        Self::Database(e)
    }
}

/// One entry of a message's history, as written.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub action: HistoryAction,
    pub actor: &'a str,
    pub target: Option<String>,
    pub ok: bool,
    pub detail: Option<String>,
    /// Set on a confirmed replay: the `x-redrive-replay-id` the copy carries.
    pub replay_id: Option<String>,
}

pub const MAX_PAGE: u32 = 500;
/// Messages a page with search text indexes on the spot, at most, when the
/// indexer is behind (a burst): about 100 ms of tokenising.
const SEARCH_CATCH_UP: usize = 2000;
const DEFAULT_PAGE: u32 = 50;

pub use crate::domain::now_ms;

pub(crate) fn expected_label(from: &[MessageStatus]) -> &'static str {
    match from {
        [MessageStatus::Failed] => "failed",
        [MessageStatus::Discarded] => "discarded",
        [MessageStatus::Replaying] => "replaying",
        _ => "another status",
    }
}
