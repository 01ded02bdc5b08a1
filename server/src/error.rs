//! The one place where errors become HTTP and gRPC statuses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::query::QueryError;
use crate::search::SearchError;
use crate::store::StoreError;

/// An error answer of the HTTP API: a status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Query(q) => q.into(),
            SearchError::Store(s) => s.into(),
            SearchError::Timeout(budget) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                SearchError::Timeout(budget).to_string(),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

/// The gRPC status for a store failure. Nothing is acked in these cases, so the
/// collector keeps the batch and retries.
pub fn store_status(e: &StoreError) -> tonic::Status {
    match e {
        StoreError::Closed => tonic::Status::unavailable("server is shutting down; retry"),
        StoreError::Commit {
            message,
            storage_full: true,
        } => tonic::Status::resource_exhausted(format!(
            "server storage full, batch not stored; resend later: {message}"
        )),
        other => tonic::Status::unavailable(format!("batch not stored: {other}")),
    }
}
