//! The store's errors as the service reports them. The store names no
//! HTTP or API type; this is the one place its errors become the API's.

use app::model::ApiError;

use crate::store::StoreError;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) | StoreError::Missing(_) => ApiError::NotFound(e.to_string()),
            StoreError::Invalid(_) => ApiError::BadRequest(e.to_string()),
            StoreError::WrongState { .. } | StoreError::Conflict(_) => ApiError::Conflict(e.to_string()),
            // The cause is logged, never sent: it can name tables and paths.
            StoreError::Database(err) => {
                tracing::error!(error = %err, "database error");
                ApiError::Internal
            }
            StoreError::Corrupt(what) => {
                tracing::error!(%what, "stored data does not read");
                ApiError::Internal
            }
        }
    }
}
