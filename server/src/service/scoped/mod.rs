//! Redrive as one signed-in user sees it: the [`Backend`] the UI and the
//! REST API call. It hides the vhosts the user has no permission in, refuses
//! what the broker would refuse the user (Redrive acts with its own
//! credentials, so it checks on the broker's behalf), and writes the audit
//! log with the real user's name.

mod backend;
mod claims;
mod masking;

use std::sync::Arc;

use app::backend::Backend;
use app::model::{AnnotationTarget, ApiError, AuditAction, AuditResult, Job, JobRequest, ReplayTarget};

use super::Redrive;
use crate::domain::access::{Denied, Tag};
use crate::domain::{Caller, Principal};
use crate::store::NewAudit;

/// What an audited action touched.
#[derive(Default)]
struct Target {
    vhost: Option<String>,
    object: Option<String>,
    exchange: Option<String>,
    routing_key: Option<String>,
}

impl Target {
    fn message(vhost: &str, id: i64) -> Self {
        Self {
            vhost: Some(vhost.to_owned()),
            object: Some(format!("message {id}")),
            ..Self::default()
        }
    }

    fn object(vhost: Option<&str>, object: String) -> Self {
        Self {
            vhost: vhost.map(str::to_owned),
            object: Some(object),
            ..Self::default()
        }
    }
}

#[derive(Clone)]
pub struct UserBackend {
    redrive: Redrive,
    caller: Caller,
}

fn forbidden(d: Denied) -> ApiError {
    ApiError::Forbidden(d.to_string())
}

impl Redrive {
    /// This Redrive as `caller` may use it.
    pub fn as_user(&self, caller: Caller) -> UserBackend {
        UserBackend {
            redrive: self.clone(),
            caller,
        }
    }
}

impl UserBackend {
    fn who(&self) -> &Principal {
        &self.caller.principal
    }

    fn user(&self) -> &str {
        self.caller.user()
    }

    /// A state change at all: not in read-only mode, not monitoring-only.
    fn writer(&self) -> Result<(), ApiError> {
        if self.redrive.config.web.read_only {
            return Err(forbidden(Denied::ReadOnly));
        }
        self.who().require_writer().map_err(forbidden)
    }

    /// A change the broker lets this user make: not read-only, not
    /// monitoring-only, and `check` passes.
    fn permit(&self, check: impl FnOnce(&Principal) -> Result<(), Denied>) -> Result<(), ApiError> {
        self.writer()?;
        check(self.who()).map_err(forbidden)
    }

    /// Not seen is not found: a vhost the user has no permission in does not exist for them.
    fn visible(&self, vhost: &str, what: String) -> Result<(), ApiError> {
        if self.who().can_see(vhost) {
            Ok(())
        } else {
            Err(ApiError::NotFound(format!("{what} not found")))
        }
    }

    fn vhosts(&self) -> Vec<String> {
        self.who().visible_vhosts()
    }

    /// The vhosts this user can see (exports filter by them).
    pub fn visible_vhosts(&self) -> Vec<String> {
        self.vhosts()
    }

    /// Every message of `query` the user can see, as an export streams it.
    pub async fn export(
        &self,
        query: &app::model::MessageQuery,
        format: crate::export::Format,
    ) -> Result<
        impl futures::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send + 'static,
        ApiError,
    > {
        let mut filter = crate::store::Filter::try_from(query)?;
        filter.visible = Some(self.vhosts());
        // An export selected by a search covers every stored match.
        self.redrive.store.searchable(&filter, None).await?;
        let mask = match self.reading() {
            masking::Reading::Plain => None,
            masking::Reading::Masked(mask) => Some(mask.clone()),
            masking::Reading::Unmasked(_) => {
                let what = Target::object(query.vhost.as_deref(), format!("export ({})", format.extension()));
                self.audited(AuditAction::UnmaskedExport, what, Ok(())).await?;
                None
            }
        };
        Ok(crate::export::stream(
            self.redrive.store.clone(),
            filter,
            format,
            mask,
        ))
    }

    /// A stored message, body and all, as the user may read it (masked),
    /// when they may see it.
    pub async fn stored(&self, id: i64) -> Result<crate::store::StoredMessage, ApiError> {
        let msg = self.redrive.store.get(id).await?;
        self.visible(msg.vhost(), format!("message {id}"))?;
        Ok(self.shown_stored(msg).await)
    }

    /// Records an attempt and passes its result on; a refusal is recorded as such.
    async fn audited<T>(
        &self,
        action: AuditAction,
        target: Target,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let (outcome, detail) = match &result {
            Ok(_) => (AuditResult::Ok, None),
            Err(ApiError::Forbidden(why)) => (AuditResult::Refused, Some(why.clone())),
            Err(e) => (AuditResult::Failed, Some(e.to_string())),
        };
        let entry = NewAudit {
            user: self.user().to_owned(),
            source: self.caller.source.clone(),
            action,
            vhost: target.vhost,
            object: target.object,
            exchange: target.exchange,
            routing_key: target.routing_key,
            result: outcome,
            detail,
        };
        if let Err(e) = self.redrive.store.append_audit(&entry).await {
            tracing::error!(error = %e, action = action.as_str(), user = %entry.user, "could not write an audit entry");
        }
        result
    }

    /// The message's vhost and queue, when the user may see it.
    async fn locate(&self, id: i64) -> Result<(String, String), ApiError> {
        let msg = self.redrive.store.get(id).await?;
        let (vhost, queue) = (msg.vhost().to_owned(), msg.queue().to_owned());
        self.visible(&vhost, format!("message {id}"))?;
        Ok((vhost, queue))
    }

    async fn check_replay(&self, id: i64, target: &ReplayTarget) -> Result<Target, ApiError> {
        super::validate_target(target)?;
        let msg = self.redrive.store.get(id).await?;
        self.visible(msg.vhost(), format!("message {id}"))?;
        // One queue only goes through the default exchange, keyed by the queue.
        let single = target
            .to_queue
            .clone()
            .or_else(|| target.to_original_queue.then(|| msg.original_queue()).flatten());
        let (exchange, routing_key) = match single {
            Some(queue) => (String::new(), Some(queue)),
            None => (
                target
                    .exchange
                    .clone()
                    .or_else(|| msg.original_exchange().map(str::to_owned))
                    .unwrap_or_default(),
                target
                    .routing_key
                    .clone()
                    .or_else(|| msg.original_routing_key().map(str::to_owned)),
            ),
        };
        Ok(Target {
            vhost: Some(msg.vhost().to_owned()),
            object: Some(format!("message {id}")),
            exchange: Some(exchange),
            routing_key,
        })
    }

    async fn check_job(&self, req: &JobRequest) -> Result<crate::store::Filter, ApiError> {
        super::jobs::validate(req)?;
        let mut filter = super::jobs::selection(req)?;
        filter.visible = Some(self.vhosts());
        if !req.dry_run {
            self.writer()?;
            let scopes = self.redrive.store.scopes(&filter).await?;
            let exchange = req.exchange.as_deref();
            crate::jobs::checks::require_job(self.who(), req.action, exchange, &req.plan, &scopes)
                .map_err(forbidden)?;
        }
        Ok(filter)
    }

    /// `/metrics` covers every vhost, so it is for the users the broker
    /// shows every vhost's statistics: `monitoring` and `administrator`.
    pub async fn metrics(&self) -> Result<String, ApiError> {
        let who = self.who();
        if !(who.is_admin() || who.has(Tag::Monitoring)) {
            return Err(ApiError::Forbidden(Denied::Tag("monitoring").to_string()));
        }
        self.redrive.metrics_text().await
    }

    /// A job is visible when every vhost its messages are in is.
    async fn job_visible(&self, job: &Job) -> Result<bool, ApiError> {
        let vhosts = self.redrive.store.job_vhosts(job.id).await?;
        Ok(vhosts.iter().all(|v| self.who().can_see(v)))
    }

    async fn visible_job(&self, id: i64) -> Result<Job, ApiError> {
        let job = self.redrive.store.job(id).await?;
        if self.job_visible(&job).await? {
            Ok(job)
        } else {
            Err(ApiError::NotFound(format!("job {id} not found")))
        }
    }

    async fn check_annotation(&self, target: &AnnotationTarget) -> Result<(), ApiError> {
        match target {
            AnnotationTarget::Message(id) => self.locate(*id).await.map(|_| ()),
            // A group spans vhosts; its notes are visible to those who see any of its messages.
            AnnotationTarget::Group(id) => {
                let vhosts = self.redrive.store.group_vhosts(id).await?;
                if vhosts.iter().any(|v| self.who().can_see(v)) {
                    Ok(())
                } else {
                    Err(ApiError::NotFound(format!("group {id} not found")))
                }
            }
        }
    }
}

/// The handle the UI's server functions use for this user.
pub fn handle(redrive: &Redrive, caller: Caller) -> Arc<dyn Backend> {
    Arc::new(redrive.as_user(caller))
}
