//! Retention: discarded messages stay restorable for `REDRIVE_RETENTION_DAYS`,
//! audit entries are kept `REDRIVE_AUDIT_RETENTION_DAYS`, idle sessions end
//! after `REDRIVE_SESSION_IDLE`. A background purge deletes what expired and
//! says so in the log (deleting audit entries is itself worth a log line).

use tokio_util::sync::CancellationToken;

use app::model::{AuditAction, AuditResult};

use crate::config::Config;
use crate::lease::{Lease, Leases};
use crate::store::{now_ms, NewAudit, Store};

const DAY_MS: f64 = 86_400_000.0;

pub async fn run(store: Store, config: std::sync::Arc<Config>, leases: Leases, shutdown: CancellationToken) {
    let every = config
        .store
        .purge_interval
        .min(std::time::Duration::from_secs(600));
    loop {
        // Held across the pause, so one instance keeps purging; idempotent
        // anyway, but a purge is audited, and once is the truth.
        if leases
            .hold_for(Lease::Retention, every * 2 + crate::lease::TTL)
            .await
        {
            purge(&store, &config).await;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

async fn purge(store: &Store, config: &Config) {
    let cutoff = now_ms() - (config.store.retention_days * DAY_MS) as i64;
    match store.purge_discarded(cutoff).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(
                purged = n,
                days = config.store.retention_days,
                "purged expired discarded messages"
            );
            let detail = format!(
                "{n} discarded message(s) older than {} days (REDRIVE_RETENTION_DAYS)",
                config.store.retention_days
            );
            let entry = NewAudit::attempt("redrive", None, AuditAction::Purge, AuditResult::Ok, Some(detail));
            if let Err(e) = store.append_audit(&entry).await {
                tracing::error!(error = %e, "could not audit a purge");
            }
        }
        Err(e) => tracing::warn!(error = %e, "purge of discarded messages failed; retrying later"),
    }
    let cutoff = now_ms() - (config.store.audit_retention_days * DAY_MS) as i64;
    match store.purge_audit(cutoff).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            deleted = n,
            days = config.store.audit_retention_days,
            "deleted audit entries past their retention (REDRIVE_AUDIT_RETENTION_DAYS)"
        ),
        Err(e) => tracing::warn!(error = %e, "audit retention failed; retrying later"),
    }
    let idle = i64::try_from(config.web.session_idle.as_millis()).unwrap_or(i64::MAX);
    if let Err(e) = store.expire_sessions(idle).await {
        tracing::warn!(error = %e, "expiring idle sessions failed; retrying later");
    }
}
