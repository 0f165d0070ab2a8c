//! Server functions: thin wrappers over the [`Backend`](crate::backend::Backend)
//! the server provides in context.

mod client;
mod monitoring;

use leptos::prelude::*;

use leptos::server_fn::codec::Json;

pub use client::{csrf_token, CsrfClient, CsrfMeta, CsrfToken, CSRF_FIELD, CSRF_HEADER};
pub use monitoring::*;

use crate::model::{
    AnnotationChange, AnnotationTarget, Annotations, AuditPage, AuditQuery, GroupQuery, GroupSummary, Job,
    JobCommand, JobCreated, JobItem, JobRequest, Me, MessageDetail, MessagePage, MessageQuery, ReplayTarget,
};

/// How much of a body the message page shows; the rest is a download away.
pub const SHOWN_BODY_BYTES: usize = 256 * 1024;

#[cfg(feature = "ssr")]
pub(crate) fn backend() -> Result<crate::backend::BackendHandle, ServerFnError> {
    use_context::<crate::backend::BackendHandle>()
        .ok_or_else(|| ServerFnError::new("backend missing from context"))
}

#[cfg(feature = "ssr")]
pub(crate) fn fail(e: crate::model::ApiError) -> ServerFnError {
    ServerFnError::new(e.to_string())
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_messages(query: MessageQuery) -> Result<MessagePage, ServerFnError> {
    backend()?.list_messages(query).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn get_message(id: i64) -> Result<MessageDetail, ServerFnError> {
    let detail = backend()?.message(id).await.map_err(fail)?;
    Ok(detail.truncate_body(SHOWN_BODY_BYTES))
}

/// JSON in: the target may carry an edit with nested headers.
#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn replay_message(id: i64, target: ReplayTarget) -> Result<MessageDetail, ServerFnError> {
    backend()?.replay(id, target).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn discard_message(id: i64) -> Result<MessageDetail, ServerFnError> {
    backend()?.discard(id).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn restore_message(id: i64) -> Result<MessageDetail, ServerFnError> {
    backend()?.restore(id).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_groups(query: GroupQuery) -> Result<Vec<GroupSummary>, ServerFnError> {
    backend()?.groups(query).await.map_err(fail)
}

/// JSON in: a job request nests a filter and a list of ids.
#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn create_job(request: JobRequest) -> Result<JobCreated, ServerFnError> {
    backend()?.create_job(request).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn get_job(id: i64) -> Result<Job, ServerFnError> {
    backend()?.job(id).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn job_problems(id: i64) -> Result<Vec<JobItem>, ServerFnError> {
    backend()?.job_problems(id).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn list_jobs() -> Result<Vec<Job>, ServerFnError> {
    backend()?.jobs().await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn control_job(id: i64, command: JobCommand) -> Result<Job, ServerFnError> {
    backend()?.control_job(id, command).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn get_annotations(target: AnnotationTarget) -> Result<Annotations, ServerFnError> {
    backend()?.annotations(target).await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn annotate(
    target: AnnotationTarget,
    change: AnnotationChange,
) -> Result<Annotations, ServerFnError> {
    backend()?.annotate(target, change).await.map_err(fail)
}

/// The signed-in user and what they may do; the UI hides the rest.
#[server(prefix = "/rpc", client = crate::api::CsrfClient)]
pub async fn whoami() -> Result<Me, ServerFnError> {
    backend()?.me().await.map_err(fail)
}

#[server(prefix = "/rpc", client = crate::api::CsrfClient, input = Json)]
pub async fn list_audit(query: AuditQuery) -> Result<AuditPage, ServerFnError> {
    backend()?.audit(query).await.map_err(fail)
}

/// The operator-facing text of a server function error.
pub fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(msg) => msg.clone(),
        other => other.to_string(),
    }
}
