//! Bulk replay/discard jobs at work: the runner that takes each running job
//! in [`runner`], replays through the pipeline in [`replay`]. Creating and
//! controlling a job are the service's (`service::jobs`); this layer only
//! carries them out.
//!
//! A message's status is the source of truth: after a restart, a message the
//! broker already confirmed is `replayed`, so the job skips it.

mod bucket;
pub mod checks;
mod gate;
mod loops;
mod pace;
mod replay;
mod runner;
mod schedule;
mod step;

use std::time::Duration;

use std::sync::Arc;

pub use runner::run;

use crate::broker::Management;
use crate::config::Config;
use crate::ingest::indexer::IndexerWake;
use crate::lease::Leases;
use crate::metrics::Metrics;
use crate::replay::Publisher;
use crate::store::Store;

/// What the runner works with: the store, the publisher, and this
/// instance's name and leases so two instances never drive one job.
#[derive(Clone)]
pub struct Jobs {
    pub config: Arc<Config>,
    pub store: Store,
    pub publisher: Publisher,
    /// Where adaptive jobs read routes, and scheduled starts permissions.
    pub management: Management,
    /// This instance's name on the replays it claims.
    pub instance: Arc<str>,
    pub leases: Leases,
    /// Told when a job writes, so search indexing gives way to it.
    pub indexer: IndexerWake,
    pub metrics: Metrics,
}

/// How long a claimed replay may go without its owner settling it before
/// it counts as abandoned: well past the longest wait for a confirm.
pub fn replay_lease(config: &Config) -> Duration {
    Duration::from_secs(30) + config.replay.confirm_timeout * 2
}
