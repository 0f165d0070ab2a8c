//! The JSON REST API under `/api/v1`, plus `/healthz` and `/readyz`.

mod error;
mod monitoring;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;

use app::backend::Backend;
use app::model::{
    AnnotationChange, AnnotationTarget, Annotations, ApiError, GroupQuery, GroupSummary, Job, JobCommand,
    JobCreated, JobItem, JobRequest, MessageDetail, MessagePage, MessageQuery, ReplayTarget,
};
pub use error::HttpError;

use crate::export::{self, Format};
use crate::http::AppState;
use crate::store::Filter;

/// Until sign-in exists (a later issue), API actions are attributed to this actor.
pub(crate) const API_ACTOR: &str = "api";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/messages", get(list_messages))
        .route("/messages/export", get(export))
        .route("/messages/{id}", get(message))
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
        .merge(monitoring::router())
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
    State(s): State<AppState>,
    query: Result<Query<MessageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MessagePage>, HttpError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(Json(s.redrive.list_messages(query).await?))
}

#[derive(serde::Deserialize)]
struct ExportParams {
    #[serde(default)]
    format: Option<String>,
    #[serde(flatten)]
    query: MessageQuery,
}

/// `GET /api/v1/messages/export?format=jsonl|csv&<messages filter>`.
async fn export(
    State(s): State<AppState>,
    params: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let format = match params.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => Format::JsonLines,
        "csv" => Format::Csv,
        other => {
            return Err(
                ApiError::BadRequest(format!("unknown export format `{other}` (jsonl or csv)")).into(),
            )
        }
    };
    let filter = Filter::try_from(&params.query)?;
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
        export::body(s.redrive.store.clone(), filter, format),
    )
        .into_response())
}

async fn message(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MessageDetail>, HttpError> {
    Ok(Json(s.redrive.message(parse_id(&id)?).await?))
}

/// The body exactly as delivered, with the message's own content type.
async fn body(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, HttpError> {
    let msg = s
        .redrive
        .store
        .get(parse_id(&id)?)
        .await
        .map_err(ApiError::from)?;
    let content_type = msg.properties()["content_type"]
        .as_str()
        .and_then(|c| HeaderValue::from_str(c).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok(([(header::CONTENT_TYPE, content_type)], msg.body).into_response())
}

async fn replay(
    State(s): State<AppState>,
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
    Ok(Json(s.redrive.replay(id, target, API_ACTOR).await?))
}

async fn discard(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MessageDetail>, HttpError> {
    Ok(Json(s.redrive.discard(parse_id(&id)?, API_ACTOR).await?))
}

async fn restore(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MessageDetail>, HttpError> {
    Ok(Json(s.redrive.restore(parse_id(&id)?, API_ACTOR).await?))
}

async fn create_job(
    State(s): State<AppState>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobCreated>), HttpError> {
    let Json(request) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let created = s.redrive.create_job(request, API_ACTOR).await?;
    let status = match created {
        JobCreated::Job(_) => StatusCode::CREATED,
        JobCreated::DryRun(_) => StatusCode::OK,
    };
    Ok((status, Json(created)))
}

async fn jobs(State(s): State<AppState>) -> Result<Json<Vec<Job>>, HttpError> {
    Ok(Json(Backend::jobs(&s.redrive).await?))
}

async fn job(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Job>, HttpError> {
    let id = id
        .parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not a job id")))?;
    Ok(Json(s.redrive.store.job(id).await?))
}

async fn job_problems(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<JobItem>>, HttpError> {
    let id = parse_job_id(&id)?;
    Ok(Json(s.redrive.job_problems(id).await?))
}

fn parse_job_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("`{raw}` is not a job id")))
}

async fn control_job(
    State(s): State<AppState>,
    Path((id, command)): Path<(String, String)>,
) -> Result<Json<Job>, HttpError> {
    let id = id
        .parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not a job id")))?;
    let command = match command.as_str() {
        "pause" => JobCommand::Pause,
        "resume" => JobCommand::Resume,
        "cancel" => JobCommand::Cancel,
        other => return Err(ApiError::NotFound(format!("no job command `{other}`")).into()),
    };
    Ok(Json(s.redrive.control_job(id, command).await?))
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
    s: &AppState,
    target: AnnotationTarget,
    change: AnnotationChange,
) -> Result<Json<Annotations>, HttpError> {
    Ok(Json(s.redrive.annotate(target, change, API_ACTOR).await?))
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

async fn message_note(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<NoteBody>, JsonRejection>,
) -> Result<Json<Annotations>, HttpError> {
    let target = AnnotationTarget::Message(parse_id(&id)?);
    annotate(&s, target, AnnotationChange::AddNote(json_body(body)?.text)).await
}

async fn message_tag(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<TagBody>, JsonRejection>,
) -> Result<Json<Annotations>, HttpError> {
    let target = AnnotationTarget::Message(parse_id(&id)?);
    annotate(&s, target, AnnotationChange::AddTag(json_body(body)?.tag)).await
}

async fn message_untag(
    State(s): State<AppState>,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Json<Annotations>, HttpError> {
    annotate(
        &s,
        AnnotationTarget::Message(parse_id(&id)?),
        AnnotationChange::RemoveTag(tag),
    )
    .await
}

async fn group_annotations(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Annotations>, HttpError> {
    Ok(Json(s.redrive.annotations(AnnotationTarget::Group(id)).await?))
}

async fn group_note(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<NoteBody>, JsonRejection>,
) -> Result<Json<Annotations>, HttpError> {
    annotate(
        &s,
        AnnotationTarget::Group(id),
        AnnotationChange::AddNote(json_body(body)?.text),
    )
    .await
}

async fn group_tag(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<TagBody>, JsonRejection>,
) -> Result<Json<Annotations>, HttpError> {
    annotate(
        &s,
        AnnotationTarget::Group(id),
        AnnotationChange::AddTag(json_body(body)?.tag),
    )
    .await
}

async fn group_untag(
    State(s): State<AppState>,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Json<Annotations>, HttpError> {
    annotate(&s, AnnotationTarget::Group(id), AnnotationChange::RemoveTag(tag)).await
}

async fn groups(
    State(s): State<AppState>,
    query: Result<Query<GroupQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<GroupSummary>>, HttpError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(Json(s.redrive.groups(query).await?))
}

/// Ready when both the database and the broker answer.
/// Process up and no background task crash-looping.
async fn healthz(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let looping = s.redrive.tasks.crash_looping();
    let restarts = s.redrive.tasks.restarts();
    if looping.is_empty() {
        return (
            StatusCode::OK,
            Json(json!({"status": "ok", "restarts": restarts})),
        );
    }
    let error = looping
        .iter()
        .map(|(task, n)| format!("background task {task} died {n} times in 5 minutes"))
        .collect::<Vec<_>>()
        .join("; ");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "unhealthy", "error": error, "restarts": restarts})),
    )
}

/// Database, broker and every capture consumer working; the consumers'
/// states are listed either way.
async fn ready(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let mut problems = s.redrive.capture.problems();
    if let Err(e) = s.redrive.store.ping().await {
        tracing::warn!(error = %e, "readiness: database");
        problems.push("database unreachable".to_owned());
    }
    if let Err(e) = s.redrive.management.ping().await {
        problems.push(format!("broker: {e}"));
    }
    if let Err(e) = s.redrive.publisher.ping().await {
        problems.push(format!("broker (AMQP): {e}"));
    }
    let consumers = s.redrive.capture.consumers();
    if problems.is_empty() {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "consumers": consumers})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": problems.join("; "), "consumers": consumers})),
        )
    }
}
