//! Server functions: thin wrappers over the [`Backend`](crate::backend::Backend)
//! the server provides in context.

mod client;
mod monitoring;

use leptos::prelude::*;

use leptos::server_fn::codec::Json;

pub use client::{csrf_token, CsrfClient, CsrfMeta, CsrfToken, CSRF_FIELD, CSRF_HEADER};
pub use monitoring::*;

use crate::model::{
    AnnotationChange, AnnotationTarget, Annotations, ApiError, AuditPage, AuditQuery, GroupQuery,
    GroupSummary, Job, JobCommand, JobCreated, JobItem, JobRequest, Me, MessageDetail, MessagePage,
    MessageQuery, MessageSummary, ReplayTarget,
};

/// How much of a body the message page shows; the rest is a download away.
pub const SHOWN_BODY_BYTES: usize = 256 * 1024;

/// The signed-in user's backend. Missing only when a request skipped the
/// sign-in middleware, which is a bug, not the user's doing.
#[cfg(feature = "ssr")]
pub(crate) fn backend() -> Result<crate::backend::BackendHandle, ApiError> {
    use_context::<crate::backend::BackendHandle>().ok_or_else(|| {
        leptos::logging::error!("server function called without a backend in context");
        ApiError::Internal
    })
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_messages(query: MessageQuery) -> Result<MessagePage, ApiError> {
    backend()?.list_messages(query).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn find_message_id(message_id: String) -> Result<Vec<MessageSummary>, ApiError> {
    backend()?.with_message_id(message_id).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn get_message(id: i64) -> Result<MessageDetail, ApiError> {
    let detail = backend()?.message(id).await?;
    Ok(detail.truncate_body(SHOWN_BODY_BYTES))
}

/// JSON in: the target may carry an edit with nested headers.
#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn replay_message(id: i64, target: ReplayTarget) -> Result<MessageDetail, ApiError> {
    backend()?.replay(id, target).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn discard_message(id: i64) -> Result<MessageDetail, ApiError> {
    backend()?.discard(id).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn restore_message(id: i64) -> Result<MessageDetail, ApiError> {
    backend()?.restore(id).await
}

/// JSON in: an empty query has no URL-encoded form.
#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn list_groups(query: GroupQuery) -> Result<Vec<GroupSummary>, ApiError> {
    backend()?.groups(query).await
}

/// Sets (or with an empty `user`, clears) who is on a group or a message.
/// JSON in: the target is an enum.
#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn set_owner(target: AnnotationTarget, user: String) -> Result<(), ApiError> {
    let request = crate::model::OwnerRequest {
        user: Some(user).filter(|u| !u.trim().is_empty()),
    };
    let backend = backend()?;
    match target {
        AnnotationTarget::Group(id) => backend.set_group_owner(id, request).await.map(drop),
        AnnotationTarget::Message(id) => backend.set_message_owner(id, request).await.map(drop),
    }
}

/// Puts a group or a message on hold for `hours` from now, or
/// (`until_replayed`, when `hours` is not used) until a fix is replayed
/// (the page offers a few spans; the REST API takes any time, and both).
#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn hold_for(
    target: AnnotationTarget,
    hours: u32,
    note: String,
    until_replayed: bool,
) -> Result<(), ApiError> {
    use time::format_description::well_known::Rfc3339;
    let until = match until_replayed {
        true => None,
        false => {
            let at = time::OffsetDateTime::now_utc() + time::Duration::hours(i64::from(hours));
            Some(at.format(&Rfc3339).map_err(|_| ApiError::Internal)?)
        }
    };
    let request = crate::model::HoldRequest {
        until,
        until_replayed,
        note: Some(note).filter(|n| !n.trim().is_empty()),
    };
    let backend = backend()?;
    match target {
        AnnotationTarget::Group(id) => backend.hold_group(id, request).await.map(drop),
        AnnotationTarget::Message(id) => backend.hold_message(id, request).await.map(drop),
    }
}

/// Ends a group's or a message's hold now.
#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn release_hold(target: AnnotationTarget) -> Result<(), ApiError> {
    let backend = backend()?;
    match target {
        AnnotationTarget::Group(id) => backend.release_group(id).await.map(drop),
        AnnotationTarget::Message(id) => backend.release_message(id).await.map(drop),
    }
}

/// JSON in: a job request nests a filter and a list of ids.
#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn create_job(request: JobRequest) -> Result<JobCreated, ApiError> {
    backend()?.create_job(request).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn get_job(id: i64) -> Result<Job, ApiError> {
    backend()?.job(id).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn job_problems(id: i64) -> Result<Vec<JobItem>, ApiError> {
    backend()?.job_problems(id).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_jobs() -> Result<Vec<Job>, ApiError> {
    backend()?.jobs().await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn control_job(id: i64, command: JobCommand) -> Result<Job, ApiError> {
    backend()?.control_job(id, command).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn get_annotations(target: AnnotationTarget) -> Result<Annotations, ApiError> {
    backend()?.annotations(target).await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn annotate(target: AnnotationTarget, change: AnnotationChange) -> Result<Annotations, ApiError> {
    backend()?.annotate(target, change).await
}

/// The signed-in user and what they may do; the UI hides the rest.
#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn whoami() -> Result<Me, ApiError> {
    backend()?.me().await
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn list_audit(query: AuditQuery) -> Result<AuditPage, ApiError> {
    backend()?.audit(query).await
}

/// The operator-facing text of a server function error.
pub fn error_text(e: &ApiError) -> String {
    e.to_string()
}
