//! Mapping of [`ApiError`] to HTTP: `{"error": "..."}` with a fitting status.

use app::model::ApiError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Newtype so axum's `IntoResponse` can be implemented for the shared error.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

pub fn status_of(e: &ApiError) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            status_of(&self.0),
            Json(serde_json::json!({ "error": self.0.to_string() })),
        )
            .into_response()
    }
}
