//! The JSON REST API under `/api/v1`, plus `/healthz` and `/readyz`.

mod claims;
mod error;
pub(crate) mod monitoring;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;

use app::backend::Backend;
use app::model::{
    AnnotationChange, AnnotationTarget, Annotations, ApiError, GroupQuery, GroupSummary, Job, JobCommand,
    JobCreated, JobItem, JobRequest, MessageDetail, MessagePage, MessageQuery, MessageSummary, ReplayTarget,
};
pub use error::HttpError;

use crate::auth::Caller;
use crate::export::Format;
use crate::service::UserBackend;
use crate::state::AppState;

/// The signed-in user's view of Redrive, for a handler.
pub struct User(pub UserBackend);

impl FromRequestParts<AppState> for User {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        // `require_user` put the caller there; without one the route is
        // public by mistake, which must fail closed.
        let caller = parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!(path = %parts.uri.path(), "a route that needs a user was reached without one");
            HttpError(ApiError::Internal)
        })?;
        Ok(User(state.redrive.as_user(caller)))
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/messages", get(list_messages))
        .route("/messages/export", get(export))
        .route("/messages/{id}", get(message))
        .route("/messages/by-message-id/{message_id}", get(with_message_id))
        .route("/messages/{id}/body", get(body))
        .route("/messages/{id}/replay", post(replay))
        .route("/messages/{id}/discard", post(discard))
        .route("/messages/{id}/restore", post(restore))
        .route("/messages/{id}/notes", post(message_note))
        .route("/messages/{id}/tags", post(message_tag))
        .route("/messages/{id}/tags/{tag}", delete(message_untag))
        .route("/groups", get(groups))
        .route("/groups/{id}/annotations", get(group_annotations))
        .route("/groups/{id}/notes", post(group_note))
        .route("/groups/{id}/tags", post(group_tag))
        .route("/groups/{id}/tags/{tag}", delete(group_untag))
        .route("/jobs", get(jobs).post(create_job))
        .route("/jobs/{id}", get(job))
        .route("/jobs/{id}/problems", get(job_problems))
        .route("/jobs/{id}/{command}", post(control_job))
        .route("/me", get(me))
        .route("/audit", get(audit))
        .route("/audit/export", get(audit_export))
        .merge(monitoring::router())
        .merge(claims::router())
}

pub fn health_router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("`{raw}` is not a message id")))
}

async fn list_messages(
    User(u): User,
    query: Result<Query<MessageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MessagePage>, HttpError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(Json(u.list_messages(query).await?))
}

#[derive(serde::Deserialize)]
struct ExportParams {
    #[serde(default)]
    format: Option<String>,
    #[serde(flatten)]
    query: MessageQuery,
}

/// `GET /api/v1/messages/export?format=jsonl|csv&<messages filter>`: only
/// the vhosts the user can see.
async fn export(
    User(u): User,
    params: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let asked = params.format.as_deref().unwrap_or("jsonl");
    let format: Format = asked
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("unknown export format `{asked}` (jsonl or csv)")))?;
    let bytes = u.export(&params.query, format).await?;
    let disposition = format!("attachment; filename=\"redrive-export.{}\"", format.extension());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).expect("ascii header"),
            ),
        ],
        axum::body::Body::from_stream(bytes),
    )
        .into_response())
}

async fn message(User(u): User, Path(id): Path<String>) -> Result<Json<MessageDetail>, HttpError> {
    Ok(Json(u.message(parse_id(&id)?).await?))
}

/// The body exactly as delivered, as a download: whatever its content type,
/// a publisher's body never renders as a page on Redrive's origin
/// (`attachment`, `nosniff`, and a sandboxing CSP for browsers that open it anyway).
async fn body(User(u): User, Path(id): Path<String>) -> Result<Response, HttpError> {
    let id = parse_id(&id)?;
    let msg = u.stored(id).await?;
    let content_type = msg.properties()["content_type"]
        .as_str()
        .and_then(|c| HeaderValue::from_str(c).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition = format!("attachment; filename=\"message-{id}.bin\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).expect("ascii header"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox; default-src 'none'"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        msg.body,
    )
        .into_response())
}

async fn replay(
    User(u): User,
    Path(id): Path<String>,
    body: Result<Json<ReplayTarget>, JsonRejection>,
) -> Result<Json<MessageDetail>, HttpError> {
    let id = parse_id(&id)?;
    let target = match body {
        Ok(Json(t)) => t,
        // No body at all means "the original route".
        Err(JsonRejection::MissingJsonContentType(_)) => ReplayTarget::default(),
        Err(e) => return Err(ApiError::BadRequest(e.body_text()).into()),
    };
    Ok(Json(u.replay(id, target).await?))
}

async fn discard(User(u): User, Path(id): Path<String>) -> Result<Json<MessageDetail>, HttpError> {
    Ok(Json(u.discard(parse_id(&id)?).await?))
}

/// The stored messages an AMQP message id names (see `/m/{message_id}`).
async fn with_message_id(
    User(u): User,
    Path(message_id): Path<String>,
) -> Result<Json<Vec<MessageSummary>>, HttpError> {
    Ok(Json(u.with_message_id(message_id).await?))
}

async fn restore(User(u): User, Path(id): Path<String>) -> Result<Json<MessageDetail>, HttpError> {
    Ok(Json(u.restore(parse_id(&id)?).await?))
}

async fn create_job(
    User(u): User,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobCreated>), HttpError> {
    let Json(request) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let created = u.create_job(request).await?;
    let status = match created {
        JobCreated::Job(_) => StatusCode::CREATED,
        JobCreated::DryRun(_) => StatusCode::OK,
    };
    Ok((status, Json(created)))
}

async fn jobs(User(u): User) -> Result<Json<Vec<Job>>, HttpError> {
    Ok(Json(u.jobs().await?))
}

async fn job(User(u): User, Path(id): Path<String>) -> Result<Json<Job>, HttpError> {
    let id = id
        .parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not a job id")))?;
    Ok(Json(u.job(id).await?))
}

async fn job_problems(User(u): User, Path(id): Path<String>) -> Result<Json<Vec<JobItem>>, HttpError> {
    let id = parse_job_id(&id)?;
    Ok(Json(u.job_problems(id).await?))
}

fn parse_job_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("`{raw}` is not a job id")))
}

async fn control_job(
    User(u): User,
    Path((id, command)): Path<(String, String)>,
) -> Result<Json<Job>, HttpError> {
    let id = id
        .parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not a job id")))?;
    let command = JobCommand::parse(&command)
        .ok_or_else(|| ApiError::NotFound(format!("no job command `{command}`")))?;
    Ok(Json(u.control_job(id, command).await?))
}

#[derive(serde::Deserialize)]
struct NoteBody {
    text: String,
}

#[derive(serde::Deserialize)]
struct TagBody {
    tag: String,
}

async fn annotate(
    u: &UserBackend,
    target: AnnotationTarget,
    change: AnnotationChange,
) -> Result<Json<Annotations>, HttpError> {
    Ok(Json(u.annotate(target, change).await?))
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

async fn message_note(
    User(u): User,
    Path(id): Path<String>,
    body: Result<Json<NoteBody>, JsonRejection>,
) -> Result<Json<Annotations>, HttpError> {
    let target = AnnotationTarget::Message(parse_id(&id)?);
    annotate(&u, target, AnnotationChange::AddNote(json_body(body)?.text)).await
}

async fn message_tag(
    User(u): User,
    Path(id): Path<String>,
    body: Result<Json<TagBody>, JsonRejection>,
) -> Result<Json<Annotations>, HttpError> {
    let target = AnnotationTarget::Message(parse_id(&id)?);
    annotate(&u, target, AnnotationChange::AddTag(json_body(body)?.tag)).await
}

async fn message_untag(
    User(u): User,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Json<Annotations>, HttpError> {
    annotate(
        &u,
        AnnotationTarget::Message(parse_id(&id)?),
        AnnotationChange::RemoveTag(tag),
    )
    .await
}

async fn group_annotations(User(u): User, Path(id): Path<String>) -> Result<Json<Annotations>, HttpError> {
    Ok(Json(u.annotations(AnnotationTarget::Group(id)).await?))
}

async fn group_note(
    User(u): User,
    Path(id): Path<String>,
    body: Result<Json<NoteBody>, JsonRejection>,
) -> Result<Json<Annotations>, HttpError> {
    annotate(
        &u,
        AnnotationTarget::Group(id),
        AnnotationChange::AddNote(json_body(body)?.text),
    )
    .await
}

async fn group_tag(
    User(u): User,
    Path(id): Path<String>,
    body: Result<Json<TagBody>, JsonRejection>,
) -> Result<Json<Annotations>, HttpError> {
    annotate(
        &u,
        AnnotationTarget::Group(id),
        AnnotationChange::AddTag(json_body(body)?.tag),
    )
    .await
}

async fn group_untag(
    User(u): User,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Json<Annotations>, HttpError> {
    annotate(&u, AnnotationTarget::Group(id), AnnotationChange::RemoveTag(tag)).await
}

async fn groups(
    User(u): User,
    query: Result<Query<GroupQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<GroupSummary>>, HttpError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(Json(u.groups(query).await?))
}

/// `GET /api/v1/me`.
async fn me(User(u): User) -> Result<Json<app::model::Me>, HttpError> {
    Ok(Json(u.me().await?))
}

/// `GET /api/v1/audit?user=&action=&from=&to=&limit=&cursor=`.
async fn audit(
    User(u): User,
    query: Result<Query<app::model::AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<app::model::AuditPage>, HttpError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(Json(u.audit(query).await?))
}

/// `GET /api/v1/audit/export?<same filters>`: every matching entry as JSON Lines.
async fn audit_export(
    User(u): User,
    query: Result<Query<app::model::AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(mut query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut out = Vec::new();
    query.limit = Some(crate::store::MAX_PAGE);
    loop {
        let page = u.audit(query.clone()).await?;
        for entry in &page.items {
            serde_json::to_writer(&mut out, entry).map_err(|_| ApiError::Internal)?;
            out.push(b'\n');
        }
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"redrive-audit.jsonl\""),
            ),
        ],
        out,
    )
        .into_response())
}

/// Process up and no background task crash-looping.
async fn healthz(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let health = s.redrive.health();
    if health.problems.is_empty() {
        return (
            StatusCode::OK,
            Json(json!({"status": "ok", "restarts": health.restarts})),
        );
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(
            json!({"status": "unhealthy", "error": health.problems.join("; "), "restarts": health.restarts}),
        ),
    )
}

/// Database, broker and every capture consumer working; the consumers'
/// states are listed either way.
async fn ready(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let ready = s.redrive.readiness().await;
    if ready.problems.is_empty() {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "consumers": ready.consumers})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"status": "unavailable", "error": ready.problems.join("; "), "consumers": ready.consumers}),
            ),
        )
    }
}
