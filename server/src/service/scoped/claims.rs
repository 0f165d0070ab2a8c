//! Owners and holds, as one user may set them: of a failure group the user
//! can see (a group spans vhosts: any of its vhosts), by a user who may
//! change state; of one message, by a user who may change its queue (as a
//! discard asks). Every change is audited.

use app::model::{
    AnnotationTarget, ApiError, AuditAction, GroupClaim, HoldRequest, MessageClaim, OwnerRequest,
};

use super::{Target, UserBackend};
use crate::domain::access::Access;
use crate::store::NewHold;

/// A broker user name as RabbitMQ accepts one, about.
const MAX_USER: usize = 255;
/// A hold's note: a line or two, such as a ticket and what it waits for.
const MAX_NOTE: usize = 1_000;
/// How long a hold "until a fix is replayed" lasts without one: a fix that
/// never ships must not hide a group (or a message) for good.
const REPLAYED_HOLD_MAX_MS: i64 = 30 * 86_400_000;

/// The owner a request names, trimmed; `None` clears it.
fn requested_owner(req: &OwnerRequest) -> Option<&str> {
    req.user.as_deref().map(str::trim).filter(|u| !u.is_empty())
}

/// What is held and how, as its audit entry names it.
fn named(what: &str, req: &HoldRequest) -> String {
    match (&req.until, req.until_replayed) {
        (Some(until), false) => format!("{what}: hold until {until}"),
        (Some(until), true) => format!("{what}: hold until a fix is replayed, or {until}"),
        (None, _) => format!("{what}: hold until a fix is replayed"),
    }
}

impl UserBackend {
    /// The owner a request names (`None` clears it): a broker user who can
    /// sign in, not a typo.
    async fn checked_owner<'r>(&self, req: &'r OwnerRequest) -> Result<Option<&'r str>, ApiError> {
        let owner = requested_owner(req);
        if let Some(user) = owner {
            if user.len() > MAX_USER || user.chars().any(char::is_control) {
                return Err(ApiError::BadRequest(format!(
                    "`user` is a broker user name of 1 to {MAX_USER} printable characters"
                )));
            }
            match self.redrive.management.principal(user).await {
                Ok(Some(_)) => {}
                Ok(None) => return Err(ApiError::BadRequest(format!("the broker has no user `{user}`"))),
                Err(e) => return Err(ApiError::Unavailable(format!("the broker's users: {e}"))),
            }
        }
        Ok(owner)
    }

    /// The hold a request asks for, by this user: until a time in the
    /// future, until a fix is replayed (30 days at most), or both.
    fn checked_hold<'r>(&'r self, req: &'r HoldRequest) -> Result<NewHold<'r>, ApiError> {
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
        Ok(NewHold {
            until,
            until_replayed: req.until_replayed,
            note,
            by: self.user(),
        })
    }

    pub(super) async fn set_group_owner(
        &self,
        id: String,
        req: OwnerRequest,
    ) -> Result<GroupClaim, ApiError> {
        self.check_annotation(&AnnotationTarget::Group(id.clone()))
            .await?;
        let result = async {
            self.writer()?;
            let owner = self.checked_owner(&req).await?;
            Ok(self
                .redrive
                .store
                .set_group_owner(&id, owner, self.user())
                .await?)
        }
        .await;
        let owner = requested_owner(&req);
        let object = format!("group {id}: owner {}", owner.unwrap_or("(none)"));
        self.audited(AuditAction::GroupOwner, Target::object(None, object), result)
            .await
    }

    pub(super) async fn hold_group(&self, id: String, req: HoldRequest) -> Result<GroupClaim, ApiError> {
        self.check_annotation(&AnnotationTarget::Group(id.clone()))
            .await?;
        let result = async {
            self.writer()?;
            let hold = self.checked_hold(&req)?;
            Ok(self.redrive.store.hold_group(&id, hold).await?)
        }
        .await;
        let object = named(&format!("group {id}"), &req);
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

    /// A change to message `id`'s claim: the user sees it (else not
    /// found), may change its queue (else forbidden), and it is audited
    /// as `action` on `object` in its vhost.
    async fn claim_message<T>(
        &self,
        id: i64,
        action: AuditAction,
        object: String,
        change: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let (vhost, queue) = self.locate(id).await?;
        let result = async {
            self.permit(|p| p.require(&vhost, Access::Write, "queue", &queue))?;
            change.await
        }
        .await;
        self.audited(action, Target::object(Some(&vhost), object), result)
            .await
    }

    pub(super) async fn set_message_owner(
        &self,
        id: i64,
        req: OwnerRequest,
    ) -> Result<MessageClaim, ApiError> {
        let owner = requested_owner(&req);
        let object = format!("message {id}: owner {}", owner.unwrap_or("(none)"));
        let change = async {
            let owner = self.checked_owner(&req).await?;
            Ok(self
                .redrive
                .store
                .set_message_owner(id, owner, self.user())
                .await?)
        };
        self.claim_message(id, AuditAction::MessageOwner, object, change)
            .await
    }

    pub(super) async fn hold_message(&self, id: i64, req: HoldRequest) -> Result<MessageClaim, ApiError> {
        let object = named(&format!("message {id}"), &req);
        let change = async {
            let hold = self.checked_hold(&req)?;
            Ok(self.redrive.store.hold_message(id, hold).await?)
        };
        self.claim_message(id, AuditAction::MessageHold, object, change)
            .await
    }

    pub(super) async fn release_message(&self, id: i64) -> Result<MessageClaim, ApiError> {
        let change = async {
            if !self.redrive.store.release_message(id).await? {
                return Err(ApiError::Conflict(format!("message {id} is not on hold")));
            }
            Ok(self
                .redrive
                .store
                .message_claim(id, crate::store::now_ms())
                .await?)
        };
        let object = format!("message {id}: hold ended");
        self.claim_message(id, AuditAction::MessageRelease, object, change)
            .await
    }
}
