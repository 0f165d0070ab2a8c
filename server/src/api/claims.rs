//! `/api/v1/groups/{id}/owner` and `/hold`, and the same for one message
//! under `/api/v1/messages/{id}/`: who is on a failure group or a message,
//! and holding it out of the counts and alerts while a fix ships.

use axum::extract::rejection::JsonRejection;
use axum::extract::Path;
use axum::routing::post;
use axum::{Json, Router};

use app::backend::Backend;
use app::model::{GroupClaim, HoldRequest, MessageClaim, OwnerRequest};

use super::{json_body, parse_id, HttpError, User};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/groups/{id}/owner", post(set_group_owner))
        .route("/groups/{id}/hold", post(hold_group).delete(release_group))
        .route("/messages/{id}/owner", post(set_message_owner))
        .route("/messages/{id}/hold", post(hold_message).delete(release_message))
}

async fn set_group_owner(
    User(u): User,
    Path(id): Path<String>,
    body: Result<Json<OwnerRequest>, JsonRejection>,
) -> Result<Json<GroupClaim>, HttpError> {
    Ok(Json(u.set_group_owner(id, json_body(body)?).await?))
}

async fn hold_group(
    User(u): User,
    Path(id): Path<String>,
    body: Result<Json<HoldRequest>, JsonRejection>,
) -> Result<Json<GroupClaim>, HttpError> {
    Ok(Json(u.hold_group(id, json_body(body)?).await?))
}

async fn release_group(User(u): User, Path(id): Path<String>) -> Result<Json<GroupClaim>, HttpError> {
    Ok(Json(u.release_group(id).await?))
}

async fn set_message_owner(
    User(u): User,
    Path(id): Path<String>,
    body: Result<Json<OwnerRequest>, JsonRejection>,
) -> Result<Json<MessageClaim>, HttpError> {
    let id = parse_id(&id)?;
    Ok(Json(u.set_message_owner(id, json_body(body)?).await?))
}

async fn hold_message(
    User(u): User,
    Path(id): Path<String>,
    body: Result<Json<HoldRequest>, JsonRejection>,
) -> Result<Json<MessageClaim>, HttpError> {
    let id = parse_id(&id)?;
    Ok(Json(u.hold_message(id, json_body(body)?).await?))
}

async fn release_message(User(u): User, Path(id): Path<String>) -> Result<Json<MessageClaim>, HttpError> {
    Ok(Json(u.release_message(parse_id(&id)?).await?))
}
