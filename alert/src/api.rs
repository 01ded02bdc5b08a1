//! The HTTP API: alerts, ack/resolve, silences and dead letters, as an axum `Router` the
//! server merges into its own. Errors are `{"error": "…"}` with 400 or 404.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use time::OffsetDateTime;

use crate::alerter::Alerter;
use crate::error::Error;
use crate::silence::NewSilence;
use crate::store::AlertQuery;

/// An API error as JSON.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
            Error::Invalid(m) | Error::Config(m) => ApiError(StatusCode::BAD_REQUEST, m),
            e @ Error::Io { .. } => {
                tracing::error!(error = %e, "alerting storage failed");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "alerting storage is unavailable".to_owned(),
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError(StatusCode::BAD_REQUEST, e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError(StatusCode::BAD_REQUEST, e.body_text())
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok<T: serde::Serialize>(v: T) -> ApiResult {
    Ok(Json(v).into_response())
}

/// The routes, with the alerter as state; `merge` it into the server's router.
pub fn router(alerter: Alerter) -> Router {
    Router::new()
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/dead-letters", get(dead_letters))
        .route("/api/v1/alerts/{id}", get(get_alert))
        .route("/api/v1/alerts/{id}/ack", post(ack))
        .route("/api/v1/alerts/{id}/resolve", post(resolve))
        .route("/api/v1/silences", get(list_silences).post(create_silence))
        .route("/api/v1/silences/{id}", delete(expire_silence))
        .with_state(alerter)
}

async fn list_alerts(
    State(a): State<Alerter>,
    q: Result<Query<AlertQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q?;
    let alerts = a.alerts(&q);
    ok(json!({ "alerts": alerts }))
}

async fn get_alert(State(a): State<Alerter>, Path(id): Path<String>) -> ApiResult {
    match a.alert(&id) {
        Some(alert) => ok(alert),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no alert '{id}'"))),
    }
}

async fn ack(State(a): State<Alerter>, Path(id): Path<String>) -> ApiResult {
    ok(a.acknowledge(&id, OffsetDateTime::now_utc())?)
}

async fn resolve(State(a): State<Alerter>, Path(id): Path<String>) -> ApiResult {
    ok(a.resolve(&id, OffsetDateTime::now_utc())?)
}

async fn dead_letters(State(a): State<Alerter>) -> ApiResult {
    ok(json!({ "dead_letters": a.dead_letters() }))
}

async fn list_silences(State(a): State<Alerter>) -> ApiResult {
    let now = OffsetDateTime::now_utc();
    let list: Vec<serde_json::Value> = a
        .silences()
        .into_iter()
        .map(|s| {
            let state = s.state(now);
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["state"] = json!(state);
            v
        })
        .collect();
    ok(json!({ "silences": list }))
}

async fn create_silence(
    State(a): State<Alerter>,
    body: Result<Json<NewSilence>, JsonRejection>,
) -> ApiResult {
    let Json(req) = body?;
    let s = a.create_silence(req, OffsetDateTime::now_utc())?;
    Ok((StatusCode::CREATED, Json(s)).into_response())
}

async fn expire_silence(State(a): State<Alerter>, Path(id): Path<String>) -> ApiResult {
    ok(a.expire_silence(&id, OffsetDateTime::now_utc())?)
}
