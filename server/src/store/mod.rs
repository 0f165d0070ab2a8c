//! Durable storage of failed messages and their history.
//!
//! The rest of Redrive sees the traits of [`api`], one per aggregate, through
//! a [`Store`]. Two backends implement them: SQLite (the default, one
//! instance) and PostgreSQL (several instances on one database).
//!
//! Most of the SQL is the same on both, so it is written once, in `sql/`,
//! and compiled into each backend (`#[path]` modules), where `Db`, `Conn`
//! and `Engine` name that backend's sqlx database, connection and store.
//! Each backend supplies the rest itself: connecting and migrating, its
//! write turn, the full-text index, and a few dialect items (how ids are
//! allocated and passed as a list). Types and pure logic live here, once.

mod access;
mod alerts;
mod annotations;
mod api;
mod audit;
pub mod browse;
mod capture;
mod contents;
mod filter;
pub mod findings;
mod job_batches;
mod jobs;
#[cfg(test)]
mod plan_matrix;
// Both backends compile the files of `sql/` (see above): intended.
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
pub use api::{
    AlertStore, AnnotationStore, AuditLog, CaptureStore, Database, FindingStore, GroupStore, JobSteps,
    JobStore, LeaseStore, MessageStore, ReplayStore, SampleStore, SearchIndex, SessionStore, VhostAccess,
    WatchStore,
};
pub use audit::{AuditFilter, NewAudit};
pub use capture::{AckState, Committed};
pub use contents::{take_trace, trace_template, TraceTemplate};
pub use filter::Filter;
pub use job_batches::{ClaimBatch, ClaimRequest, Claimed, JobReplay, JobReplayOutcome};
pub use jobs::{JobSpec, NewJob, SELECTABLE};
pub use replays::Settlement;
pub use rows::StoredMessage;
pub use sessions::Session;
pub use watched::WatchedQueue;

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

/// Declares the modules of `sql/` inside a backend (see the module
/// comment); each then names that backend's `Db`, `Conn` and `Engine`.
/// The paths are relative to the backend's directory.
macro_rules! shared_sql {
    () => {
        #[path = "../sql/access.rs"]
        mod access;
        #[path = "../sql/alerts.rs"]
        mod alerts;
        #[path = "../sql/annotations.rs"]
        mod annotations;
        #[path = "../sql/audit.rs"]
        mod audit;
        #[path = "../sql/browse.rs"]
        mod browse;
        #[path = "../sql/findings.rs"]
        mod findings;
        #[path = "../sql/groups.rs"]
        mod groups;
        #[path = "../sql/history.rs"]
        mod history;
        #[path = "../sql/indexer.rs"]
        mod indexer;
        #[path = "../sql/ingest.rs"]
        mod ingest;
        #[path = "../sql/job_batches.rs"]
        mod job_batches;
        #[path = "../sql/jobs.rs"]
        mod jobs;
        #[path = "../sql/leases.rs"]
        mod leases;
        #[path = "../sql/messages.rs"]
        mod messages;
        #[path = "../sql/replays.rs"]
        mod replays;
        #[path = "../sql/samples.rs"]
        mod samples;
        #[path = "../sql/select.rs"]
        mod select;
        #[path = "../sql/sessions.rs"]
        mod sessions;
        #[path = "../sql/walk.rs"]
        mod walk;
        #[path = "../sql/watched.rs"]
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
