//! Owners and holds of failure groups, as one user may set them: on a
//! group the user can see (a group spans vhosts: any of its vhosts), by a
//! user who may change state, audited.

use app::model::{AnnotationTarget, ApiError, AuditAction, GroupClaim, GroupHoldRequest, GroupOwnerRequest};

use super::{Target, UserBackend};
use crate::store::NewHold;

/// A broker user name as RabbitMQ accepts one, about.
const MAX_USER: usize = 255;
/// A hold's note: a line or two, such as a ticket and what it waits for.
const MAX_NOTE: usize = 1_000;
/// How long a hold "until a fix is replayed" lasts without one: a fix that
/// never ships must not hide a group for good.
const REPLAYED_HOLD_MAX_MS: i64 = 30 * 86_400_000;

impl UserBackend {
    pub(super) async fn set_group_owner(
        &self,
        id: String,
        req: GroupOwnerRequest,
    ) -> Result<GroupClaim, ApiError> {
        self.check_annotation(&AnnotationTarget::Group(id.clone()))
            .await?;
        let owner = req.user.as_deref().map(str::trim).filter(|u| !u.is_empty());
        let object = format!("group {id}: owner {}", owner.unwrap_or("(none)"));
        let result = async {
            self.writer()?;
            if let Some(user) = owner {
                if user.len() > MAX_USER || user.chars().any(char::is_control) {
                    return Err(ApiError::BadRequest(format!(
                        "`user` is a broker user name of 1 to {MAX_USER} printable characters"
                    )));
                }
                // Assigned to someone who can sign in, not to a typo.
                match self.redrive.management.principal(user).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return Err(ApiError::BadRequest(format!("the broker has no user `{user}`"))),
                    Err(e) => return Err(ApiError::Unavailable(format!("the broker's users: {e}"))),
                }
            }
            Ok(self
                .redrive
                .store
                .set_group_owner(&id, owner, self.user())
                .await?)
        }
        .await;
        self.audited(AuditAction::GroupOwner, Target::object(None, object), result)
            .await
    }

    pub(super) async fn hold_group(&self, id: String, req: GroupHoldRequest) -> Result<GroupClaim, ApiError> {
        self.check_annotation(&AnnotationTarget::Group(id.clone()))
            .await?;
        let object = match (&req.until, req.until_replayed) {
            (Some(until), false) => format!("group {id}: hold until {until}"),
            (Some(until), true) => format!("group {id}: hold until a fix is replayed, or {until}"),
            (None, _) => format!("group {id}: hold until a fix is replayed"),
        };
        let result = async {
            self.writer()?;
            let now = crate::store::now_ms();
            let until = match (&req.until, req.until_replayed) {
                (Some(until), _) => {
                    crate::service::plan::future_ms("until", until, now, "a hold ends in the future")?
                }
                (None, true) => now + REPLAYED_HOLD_MAX_MS,
                (None, false) => {
                    return Err(ApiError::BadRequest(
                        "a hold needs `until` (RFC 3339), `\"until_replayed\": true`, or both".into(),
                    ))
                }
            };
            let note = req.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
            if note.is_some_and(|n| n.chars().count() > MAX_NOTE) {
                return Err(ApiError::BadRequest(format!(
                    "`note` is at most {MAX_NOTE} characters"
                )));
            }
            let hold = NewHold {
                until,
                until_replayed: req.until_replayed,
                note,
                by: self.user(),
            };
            Ok(self.redrive.store.hold_group(&id, hold).await?)
        }
        .await;
        self.audited(AuditAction::GroupHold, Target::object(None, object), result)
            .await
    }

    pub(super) async fn release_group(&self, id: String) -> Result<GroupClaim, ApiError> {
        self.check_annotation(&AnnotationTarget::Group(id.clone()))
            .await?;
        let result = async {
            self.writer()?;
            if !self.redrive.store.release_group(&id).await? {
                return Err(ApiError::Conflict(format!("group {id} is not on hold")));
            }
            Ok(self
                .redrive
                .store
                .group_claim(&id, crate::store::now_ms())
                .await?)
        }
        .await;
        let object = format!("group {id}: hold ended");
        self.audited(AuditAction::GroupRelease, Target::object(None, object), result)
            .await
    }
}
