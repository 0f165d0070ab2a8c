//! `/api/v1` endpoints for queues, history, policies, the advisor and alerts.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use app::backend::Backend;
use app::model::{
    AdvisorReport, AlertDelivery, AlertRule, AlertRuleRequest, ApiError, Overview, Policy, PolicyPreview,
    PolicyRequest, QueueHistory, QueuesView, ServiceHistory, WatchSwitch,
};

use super::{HttpError, User};
use crate::state::AppState;

/// `GET /metrics`: Prometheus text format, for a signed-in `monitoring` or
/// `administrator` user (Prometheus sends Basic credentials).
pub async fn metrics(User(u): User) -> Result<impl axum::response::IntoResponse, HttpError> {
    let text = u.metrics().await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/overview", get(overview))
        .route("/queues", get(queues))
        .route("/queues/{vhost}/{name}/history", get(queue_history))
        .route("/queues/{vhost}/{name}/watch", put(set_watch))
        .route("/services/{service}/history", get(service_history))
        .route("/policies", get(policies))
        .route("/policies/{vhost}/{name}", put(put_policy).delete(delete_policy))
        .route("/policies/{vhost}/{name}/preview", post(preview_policy))
        .route("/advisor", get(advisor))
        .route("/advisor/{id}/fix", post(apply_fix))
        .route("/alerts", get(alert_rules).post(create_alert_rule))
        .route("/alerts/deliveries", get(all_deliveries))
        .route("/alerts/{id}", axum::routing::delete(delete_alert_rule))
        .route("/alerts/{id}/test", post(test_alert_rule))
        .route("/alerts/{id}/deliveries", get(rule_deliveries))
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, HttpError> {
    body.map(|Json(b)| b)
        .map_err(|e| HttpError(ApiError::BadRequest(e.body_text())))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, HttpError> {
    q.map(|Query(q)| q)
        .map_err(|e| HttpError(ApiError::BadRequest(e.body_text())))
}

fn id(raw: &str, what: &str) -> Result<i64, HttpError> {
    raw.parse()
        .map_err(|_| HttpError(ApiError::BadRequest(format!("`{raw}` is not {what} id"))))
}

async fn overview(User(u): User) -> Result<Json<Overview>, HttpError> {
    Ok(Json(u.overview().await?))
}

async fn queues(User(u): User) -> Result<Json<QueuesView>, HttpError> {
    Ok(Json(u.queues().await?))
}

/// `PUT /api/v1/queues/{vhost}/{name}/watch` `{"watch": true | false | null}`.
async fn set_watch(
    User(u): User,
    Path((vhost, name)): Path<(String, String)>,
    body: Result<Json<WatchSwitch>, JsonRejection>,
) -> Result<StatusCode, HttpError> {
    let switch = json_body(body)?;
    u.set_watch(&vhost, &name, switch).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct WindowParam {
    #[serde(default = "default_window")]
    window: String,
}

fn default_window() -> String {
    "1h".into()
}

async fn queue_history(
    User(u): User,
    Path((vhost, name)): Path<(String, String)>,
    params: Result<Query<WindowParam>, QueryRejection>,
) -> Result<Json<QueueHistory>, HttpError> {
    let window = query(params)?.window;
    Ok(Json(u.queue_history(&vhost, &name, &window).await?))
}

async fn service_history(
    User(u): User,
    Path(service): Path<String>,
    params: Result<Query<WindowParam>, QueryRejection>,
) -> Result<Json<ServiceHistory>, HttpError> {
    let window = query(params)?.window;
    Ok(Json(u.service_history(&service, &window).await?))
}

#[derive(Deserialize)]
struct VhostParam {
    vhost: Option<String>,
}

async fn policies(
    User(u): User,
    params: Result<Query<VhostParam>, QueryRejection>,
) -> Result<Json<Vec<Policy>>, HttpError> {
    let vhost = query(params)?.vhost.filter(|v| !v.is_empty());
    Ok(Json(u.policies(vhost).await?))
}

async fn put_policy(
    User(u): User,
    Path((vhost, name)): Path<(String, String)>,
    body: Result<Json<PolicyRequest>, JsonRejection>,
) -> Result<Json<Policy>, HttpError> {
    let request = json_body(body)?;
    Ok(Json(u.put_policy(&vhost, &name, request).await?))
}

async fn delete_policy(
    User(u): User,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode, HttpError> {
    u.delete_policy(&vhost, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn preview_policy(
    User(u): User,
    Path((vhost, name)): Path<(String, String)>,
    body: Result<Json<PolicyRequest>, JsonRejection>,
) -> Result<Json<PolicyPreview>, HttpError> {
    let request = json_body(body)?;
    Ok(Json(u.preview_policy(&vhost, &name, request).await?))
}

async fn advisor(User(u): User) -> Result<Json<AdvisorReport>, HttpError> {
    Ok(Json(u.advisor().await?))
}

async fn apply_fix(User(u): User, Path(raw): Path<String>) -> Result<StatusCode, HttpError> {
    u.apply_fix(id(&raw, "a finding")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn alert_rules(User(u): User) -> Result<Json<Vec<AlertRule>>, HttpError> {
    Ok(Json(u.alert_rules().await?))
}

async fn create_alert_rule(
    User(u): User,
    body: Result<Json<AlertRuleRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<AlertRule>), HttpError> {
    let rule = u.create_alert_rule(json_body(body)?).await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

async fn delete_alert_rule(User(u): User, Path(raw): Path<String>) -> Result<StatusCode, HttpError> {
    u.delete_alert_rule(id(&raw, "an alert rule")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn test_alert_rule(User(u): User, Path(raw): Path<String>) -> Result<StatusCode, HttpError> {
    u.test_alert_rule(id(&raw, "an alert rule")?).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn all_deliveries(User(u): User) -> Result<Json<Vec<AlertDelivery>>, HttpError> {
    Ok(Json(u.alert_deliveries(None).await?))
}

async fn rule_deliveries(
    User(u): User,
    Path(raw): Path<String>,
) -> Result<Json<Vec<AlertDelivery>>, HttpError> {
    Ok(Json(u.alert_deliveries(Some(id(&raw, "an alert rule")?)).await?))
}
