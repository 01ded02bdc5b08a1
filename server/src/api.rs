//! The HTTP API (axum): search, health and metrics.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::query::parse_search_params;
use crate::search::{SearchResponse, search};
use crate::store::Store;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

/// Builds the router of the HTTP API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/search", get(search_handler))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn search_handler(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<SearchResponse>, ApiError> {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let now = now_nanos();
    let params = parse_search_params(&pairs, now).inspect_err(|_| {
        state.metrics.searches_rejected.inc();
    })?;
    let store = state.store.clone();
    let result = tokio::task::spawn_blocking(move || search(&store, &params))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("search task failed: {e}"),
            )
        })?;
    match result {
        Ok(body) => {
            state.metrics.searches.inc();
            Ok(axum::Json(body))
        }
        Err(e) => {
            state.metrics.searches_rejected.inc();
            Err(e.into())
        }
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.metrics.store_error() {
        None => axum::Json(serde_json::json!({ "status": "ok" })).into_response(),
        Some(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unhealthy", "error": error })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The current time in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}
