//! `/api/v1/groups/{id}/owner` and `/hold`: who is on a failure group, and
//! holding it out of the counts and alerts while a fix ships.

use axum::extract::rejection::JsonRejection;
use axum::extract::Path;
use axum::routing::post;
use axum::{Json, Router};

use app::backend::Backend;
use app::model::{GroupClaim, GroupHoldRequest, GroupOwnerRequest};

use super::{json_body, HttpError, User};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/groups/{id}/owner", post(set_owner))
        .route("/groups/{id}/hold", post(hold).delete(release))
}

async fn set_owner(
    User(u): User,
    Path(id): Path<String>,
    body: Result<Json<GroupOwnerRequest>, JsonRejection>,
) -> Result<Json<GroupClaim>, HttpError> {
    Ok(Json(u.set_group_owner(id, json_body(body)?).await?))
}

async fn hold(
    User(u): User,
    Path(id): Path<String>,
    body: Result<Json<GroupHoldRequest>, JsonRejection>,
) -> Result<Json<GroupClaim>, HttpError> {
    Ok(Json(u.hold_group(id, json_body(body)?).await?))
}

async fn release(User(u): User, Path(id): Path<String>) -> Result<Json<GroupClaim>, HttpError> {
    Ok(Json(u.release_group(id).await?))
}
