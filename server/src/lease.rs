//! Work that one instance of a cluster does at a time: samples and
//! findings, the alert outbox, retention, and each running job. Each is a
//! named lease in the database (see `store::LeaseStore`): the holder renews
//! it every [`RENEW_EVERY`]; when the holder dies, the lease expires after
//! [`TTL`] and another instance takes the work over.
//!
//! On SQLite only one instance runs (`instance`), so every lease is this
//! instance's; the leases are what lets several share one PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;

/// How long a lease lasts without renewal: long enough to ride out a slow
/// commit, short enough that a dead holder's work resumes within seconds.
pub const TTL: Duration = Duration::from_secs(15);
/// How often a holder renews: three chances before it expires.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// What a lease stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lease {
    /// Sampling the broker, the advisor's findings and alert evaluation.
    Monitor,
    /// Sending due webhook deliveries.
    AlertOutbox,
    /// Purging expired messages, audit entries and sessions.
    Retention,
    /// Driving one bulk job.
    Job(i64),
    /// Switching queues from consume to tap (see `ingest::switch`): one
    /// instance cuts a queue and its tap at a marker.
    CaptureSwitch,
}

impl Lease {
    pub fn name(self) -> String {
        match self {
            Lease::Monitor => "monitor".into(),
            Lease::AlertOutbox => "alert-outbox".into(),
            Lease::Retention => "retention".into(),
            Lease::Job(id) => format!("job/{id}"),
            Lease::CaptureSwitch => "capture-switch".into(),
        }
    }
}

/// This instance's side of the leases.
#[derive(Clone)]
pub struct Leases {
    store: Store,
    holder: Arc<str>,
}

impl Leases {
    pub fn new(store: Store, holder: Arc<str>) -> Self {
        Self { store, holder }
    }

    /// Takes or renews `lease` for `ttl`. `false` when another instance
    /// holds it, or when the database cannot say: work that cannot prove
    /// it holds its lease must not run.
    pub async fn hold_for(&self, lease: Lease, ttl: Duration) -> bool {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        match self
            .store
            .acquire_lease(&lease.name(), &self.holder, ttl_ms)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(lease = lease.name(), error = %e, "could not renew a lease; pausing its work");
                false
            }
        }
    }

    /// [`Leases::hold_for`] with the default [`TTL`].
    pub async fn hold(&self, lease: Lease) -> bool {
        self.hold_for(lease, TTL).await
    }

    /// Gives `lease` up so another instance need not wait for its expiry.
    pub async fn release(&self, lease: Lease) {
        if let Err(e) = self.store.release_lease(&lease.name(), &self.holder).await {
            tracing::warn!(lease = lease.name(), error = %e, "could not release a lease; it expires by itself");
        }
    }
}
