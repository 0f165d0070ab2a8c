//! What a user needs for a job, checked on the broker's behalf (Redrive
//! publishes with its own credentials): when the job is created, and again
//! when a scheduled job starts, with the user's permissions at that moment.

use app::model::{JobAction, ReplayPlan};

use crate::domain::access::{Access, Denied, Principal};
use crate::store::Scope;

/// Every place the job's messages come from and go to must allow it: write
/// on each destination exchange for a replay (the default exchange,
/// `amq.default`, when it goes to single queues), write on each source
/// queue for a discard.
pub fn require_job(
    who: &Principal,
    action: JobAction,
    exchange: Option<&str>,
    plan: &ReplayPlan,
    scopes: &[Scope],
) -> Result<(), Denied> {
    let single_queue = plan.to_queue.is_some() || plan.to_original_queue;
    for scope in scopes {
        match action {
            JobAction::Replay => {
                let target = match (single_queue, exchange) {
                    (true, _) => "",
                    (false, Some(x)) => x,
                    (false, None) => scope.exchange.as_deref().unwrap_or_default(),
                };
                who.require(&scope.vhost, Access::Write, "exchange", target)?;
            }
            JobAction::Discard => who.require(&scope.vhost, Access::Write, "queue", &scope.queue)?,
        }
    }
    Ok(())
}
