//! `REDRIVE_MASK` as one user reads through it: masked values replaced in
//! every message they are shown, unless the broker gives them the unmask
//! tag; then each view that reveals a masked value is audited instead.

use std::sync::Arc;

use app::model::{ApiError, AuditAction, GroupSummary, MessageDetail, MessageSummary, ReplayTarget};
use base64::{engine::general_purpose::STANDARD as B64, Engine};

use super::{Target, UserBackend};
use crate::domain::mask::{MaskError, Shown};
use crate::domain::Mask;
use crate::store::StoredMessage;

/// How one user reads messages under the masking rules.
pub(super) enum Reading<'a> {
    /// No rules: nothing to mask or to audit.
    Plain,
    /// Masked: the user does not hold the unmask tag.
    Masked(&'a Arc<Mask>),
    /// As stored, audited when it reveals a masked value.
    Unmasked(&'a Arc<Mask>),
}

impl UserBackend {
    pub(super) fn reading(&self) -> Reading<'_> {
        let config = &self.redrive.config.mask;
        if config.mask.is_empty() {
            Reading::Plain
        } else if self.who().has_named(&config.unmask_tag) {
            Reading::Unmasked(&config.mask)
        } else {
            Reading::Masked(&config.mask)
        }
    }

    /// The rules to mask with for this user, if any.
    pub(super) fn mask(&self) -> Option<&Mask> {
        match self.reading() {
            Reading::Masked(mask) => Some(mask.as_ref()),
            _ => None,
        }
    }

    /// A message's detail as this user may read it.
    pub(super) async fn shown_detail(&self, mut detail: MessageDetail) -> MessageDetail {
        let (mask, masking) = match self.reading() {
            Reading::Plain => return detail,
            Reading::Masked(mask) => (mask, true),
            Reading::Unmasked(mask) => (mask, false),
        };
        let mut body = B64.decode(&detail.body_base64).unwrap_or_default();
        let mut copy = detail.clone();
        let masked = mask.apply(Shown {
            body: &mut body,
            headers: &mut copy.headers,
            reason: &mut copy.summary.reason,
            stack_trace: &mut copy.stack_trace,
        });
        if !masked {
            return detail;
        }
        if !masking {
            let target = Target::message(&detail.summary.vhost, detail.summary.id);
            let _ = self.audited(AuditAction::UnmaskedView, target, Ok(())).await;
            return detail;
        }
        copy.masked = true;
        copy.body_size = body.len();
        copy.body_base64 = B64.encode(&body);
        copy.body_text = String::from_utf8(body).ok();
        detail = copy;
        detail
    }

    /// A stored message's body as this user may download it.
    pub(super) async fn shown_stored(&self, mut msg: StoredMessage) -> StoredMessage {
        match self.reading() {
            Reading::Plain => {}
            Reading::Masked(mask) => {
                msg.mask(mask);
            }
            Reading::Unmasked(mask) => {
                // A throwaway copy tells whether the body reveals anything.
                if mask.body(&msg.body).is_some() {
                    let target = Target::message(msg.vhost(), msg.id());
                    let _ = self.audited(AuditAction::UnmaskedView, target, Ok(())).await;
                }
            }
        }
        msg
    }

    /// List rows as this user may read them (their reasons).
    pub(super) fn shown_summaries(&self, items: &mut [MessageSummary]) {
        if let Some(mask) = self.mask() {
            for item in items {
                if let Some(r) = item.reason.as_deref().and_then(|r| mask.reason(r)) {
                    item.reason = Some(r);
                }
            }
        }
    }

    /// Failure groups as this user may read them: a title is a template of
    /// the exception's message, ids and numbers taken out; what the text
    /// rules match in the rest is masked.
    pub(super) fn shown_groups(&self, groups: &mut [GroupSummary]) {
        if let Some(mask) = self.mask() {
            for g in groups {
                if let Some(t) = mask.text(&g.reason) {
                    g.reason = t;
                }
            }
        }
    }

    /// The replay `target` asks for, with every value the user was shown
    /// masked and left so in an edit put back from the stored message: the copy carries
    /// the real values unless the user typed new ones.
    pub(super) async fn unmasked_edit(
        &self,
        id: i64,
        mut target: ReplayTarget,
    ) -> Result<ReplayTarget, ApiError> {
        let (Some(mask), Some(edit)) = (self.mask(), target.edit.as_mut()) else {
            return Ok(target);
        };
        let msg = self.redrive.store.get(id).await?;
        let refused = |e: MaskError| ApiError::BadRequest(e.to_string());
        if let Some(body) = edit.body.as_mut() {
            *body = mask.restore_body(&msg.body, body).map_err(refused)?;
        }
        if let Some(headers) = edit.headers.as_mut() {
            *headers = mask
                .restore_headers(&msg.headers(), headers, msg.reason())
                .map_err(refused)?;
        }
        Ok(target)
    }
}
