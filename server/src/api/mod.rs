//! The HTTP API (axum): search, count, aggregate, live tail, fields, the OpenAPI
//! document, health and metrics, behind the guard of `http_limits` (API tokens and
//! roles, body size, request time, concurrent searches and tails).

pub(crate) mod access;
pub(crate) mod error;
pub(crate) mod guard;
pub(crate) mod openapi;
pub mod params;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

use crate::api::error::ApiError;
use crate::clock::now_nanos;
use crate::metrics::Metrics;
use crate::search::aggregate::aggregate;
use crate::search::query::{QueryError, QueryLimits};
use crate::search::{Deadline, SearchError, count, search};
use crate::store::Store;
use guard::Guards;
use params::{
    parse_aggregate_params, parse_common, parse_list_params, parse_search_params, parse_tail_params,
};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Loaded rules and stored detections.
    pub detection: Arc<crate::detect::Shared>,
    /// The alerting engine, when `[alerting]` has channels.
    pub alerter: Option<logward_alert::Alerter>,
    /// `[limits]`: body sizes, timeouts, concurrent searches, query cost.
    pub limits: crate::limits::LimitsConfig,
    /// `[security]`: API tokens and roles.
    pub security: crate::security::SecurityConfig,
    /// The live tail's fan-out of the store's tap.
    pub tails: crate::search::tail_hub::TailHub,
}

/// The live tail: exempt from `http_request_timeout_ms` once it streams.
pub const TAIL_ROUTE: &str = "/api/v1/tail";

/// Every route, as the OpenAPI document must list it.
pub const ROUTES: &[&str] = &[
    "/api/v1/search",
    "/api/v1/count",
    "/api/v1/aggregate",
    TAIL_ROUTE,
    "/api/v1/fields",
    "/api/v1/openapi.json",
    "/healthz",
    "/metrics",
    "/api/v1/detections",
    "/api/v1/rules",
];

/// The routes of alerting (served by `logward_alert::router`), as the OpenAPI document
/// lists them. With alerting off they answer 503.
pub const ALERTING_ROUTES: &[&str] = &[
    "/api/v1/alerts",
    "/api/v1/alerts/dead-letters",
    "/api/v1/alerts/{id}",
    "/api/v1/alerts/{id}/ack",
    "/api/v1/alerts/{id}/resolve",
    "/api/v1/silences",
    "/api/v1/silences/{id}",
];

/// The handlers' state: the application's, and the guard's slots and limits.
#[derive(Clone)]
struct ApiState {
    app: AppState,
    guards: Arc<Guards>,
}

impl FromRef<ApiState> for AppState {
    fn from_ref(s: &ApiState) -> AppState {
        s.app.clone()
    }
}

impl FromRef<ApiState> for Arc<Guards> {
    fn from_ref(s: &ApiState) -> Arc<Guards> {
        s.guards.clone()
    }
}

/// Builds the router of the HTTP API with its guard, from `state.limits` and
/// `state.security`.
pub fn router(state: AppState) -> Router {
    let guards = Arc::new(Guards::new(
        &state.limits,
        &state.security,
        state.metrics.clone(),
    ));
    router_with(state, guards)
}

/// [`router`] with given guards (tests hold slots of them).
pub fn router_with(state: AppState, guards: Arc<Guards>) -> Router {
    let alerting = match &state.alerter {
        Some(a) => logward_alert::router(a.clone()),
        None => ALERTING_ROUTES
            .iter()
            .fold(Router::new(), |r, path| r.route(path, any(alerting_off))),
    };
    let body_limit = guards.limits.http_max_body_bytes;
    let api_state = ApiState {
        app: state,
        guards: guards.clone(),
    };
    Router::new()
        .route(ROUTES[0], get(search_handler))
        .route(ROUTES[1], get(count_handler))
        .route(ROUTES[2], get(aggregate_handler))
        .route(ROUTES[3], get(tail_handler))
        .route(ROUTES[4], get(fields_handler))
        .route(ROUTES[5], get(openapi_handler))
        .route(ROUTES[6], get(healthz))
        .route(ROUTES[7], get(metrics))
        .route(ROUTES[8], get(detections_handler))
        .route(ROUTES[9], get(rules_handler))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(api_state)
        .merge(alerting)
        // Extractors (the alerting routes' JSON) take what the guard let through.
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(guards, guard::guard))
}

fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Runs a blocking query in a `max_concurrent_searches` slot (held until the blocking
/// work ends, even when the request times out first) with the `search_timeout_ms`
/// budget; counts outcomes in the metrics.
async fn run_query<T: Send + 'static>(
    state: &AppState,
    guards: &Guards,
    job: impl FnOnce(&Store, &Deadline) -> Result<T, SearchError> + Send + 'static,
) -> Result<T, ApiError> {
    let slot = guards.searches.acquire(&state.metrics).await?;
    let store = state.store.clone();
    let deadline = Deadline::after(guards.search_budget());
    let result = tokio::task::spawn_blocking(move || {
        let result = job(&store, &deadline);
        drop(slot);
        result
    })
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
            Ok(body)
        }
        Err(e) => {
            match &e {
                SearchError::Timeout(_) => {
                    state.metrics.searches_timed_out.inc();
                    state.metrics.limit_hit("search_timeout_ms");
                }
                _ => {
                    state.metrics.searches_rejected.inc();
                }
            }
            Err(e.into())
        }
    }
}

/// A refused request parameter: counted as a rejected search, and under its limit
/// when it broke one.
fn rejected(state: &AppState, e: QueryError) -> ApiError {
    state.metrics.searches_rejected.inc();
    if let Some((key, _)) = e.limit() {
        state.metrics.limit_hit(key);
    }
    e.into()
}

/// The configured `query_max_bytes` and `query_max_clauses` (and the fixed nesting
/// bound), checked by the one parse of each query before any slot is taken.
fn limits(state: &AppState) -> QueryLimits {
    QueryLimits::from(&state.limits)
}

async fn search_handler(
    State(state): State<AppState>,
    State(guards): State<Arc<Guards>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut params = parse_search_params(&pairs(raw.as_deref()), now_nanos(), &limits(&state))
        .map_err(|e| rejected(&state, e))?;
    params.max_response_bytes = state.limits.search_max_response_bytes;
    let body = run_query(&state, &guards, move |s, d| search(s, &params, d)).await?;
    if body.truncated {
        state.metrics.limit_hit("search_max_response_bytes");
    }
    Ok(axum::Json(body).into_response())
}

async fn count_handler(
    State(state): State<AppState>,
    State(guards): State<Arc<Guards>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let all = pairs(raw.as_deref());
    let (range, _) = parse_common(
        &all,
        &["q", "start", "end"],
        "q, start or end",
        now_nanos(),
        &limits(&state),
    )
    .map_err(|e| rejected(&state, e))?;
    let n = run_query(&state, &guards, move |s, d| count(s, &range, d)).await?;
    Ok(axum::Json(json!({ "count": n })).into_response())
}

async fn aggregate_handler(
    State(state): State<AppState>,
    State(guards): State<Arc<Guards>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = parse_aggregate_params(&pairs(raw.as_deref()), now_nanos(), &limits(&state))
        .map_err(|e| rejected(&state, e))?;
    let body = run_query(&state, &guards, move |s, d| aggregate(s, &params, d)).await?;
    Ok(axum::Json(body).into_response())
}

async fn tail_handler(
    State(state): State<AppState>,
    State(guards): State<Arc<Guards>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let last_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let params = parse_tail_params(&pairs(raw.as_deref()), last_id, &limits(&state))
        .map_err(|e| rejected(&state, e))?;
    let slot = guards.tails.acquire(&state.metrics).await?;
    let budget = crate::search::tail::TailBudget {
        search: guards.search_budget(),
        buffer_bytes: state.limits.tail_max_buffer_bytes,
        replay_bytes: state.limits.tail_max_replay_bytes,
    };
    let sse = crate::search::tail::start(
        state.store.clone(),
        state.metrics.clone(),
        &state.tails,
        params,
        budget,
        slot,
    )
    .map_err(|e| rejected(&state, e))?;
    Ok(sse.into_response())
}

async fn fields_handler(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    parse_common(
        &pairs(raw.as_deref()),
        &[],
        "no parameters",
        0,
        &limits(&state),
    )
    .map_err(|e| rejected(&state, e))?;
    let store = state.store.clone();
    let fields = tokio::task::spawn_blocking(move || crate::search::fields::field_catalog(&store))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(axum::Json(json!({ "fields": fields })).into_response())
}

async fn detections_handler(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = parse_list_params(&pairs(raw.as_deref()), now_nanos())?;
    let list = state
        .detection
        .log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .list(&params);
    Ok(axum::Json(json!({ "count": list.len(), "detections": list })).into_response())
}

async fn rules_handler(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    parse_common(
        &pairs(raw.as_deref()),
        &[],
        "no parameters",
        0,
        &limits(&state),
    )?;
    let status = state
        .detection
        .status
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut body = serde_json::to_value(&status)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    body["loaded_at"] = json!(crate::store::schema::format_nanos(status.loaded_at_nanos));
    Ok(axum::Json(body).into_response())
}

async fn openapi_handler() -> axum::Json<Value> {
    axum::Json(openapi::document())
}

/// 503 only when the store cannot commit; channels that are down are listed under
/// `alerting.down` (a down channel loses nothing: its notifications wait in the outbox).
async fn healthz(State(state): State<AppState>) -> Response {
    let mut body = match state.metrics.store_error() {
        None => json!({ "status": "ok" }),
        Some(error) => json!({ "status": "unhealthy", "error": error }),
    };
    if let Some(a) = &state.alerter {
        let health = a.health();
        body["alerting"] = json!({ "down": health.down(), "dead_letters": health.dead_letters });
    }
    let status = if state.metrics.store_error().is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, axum::Json(body)).into_response()
}

async fn alerting_off() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "alerting is off: configure [alerting] with at least one channel".to_owned(),
    )
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render_metrics(&state),
    )
        .into_response()
}

/// The server's metrics, then alerting's `logward_alert_*` lines, then the `# EOF`
/// terminator the registry ends with.
fn render_metrics(state: &AppState) -> String {
    let mut out = state.metrics.render();
    if let Some(a) = &state.alerter {
        let eof = out.ends_with("# EOF\n");
        if eof {
            out.truncate(out.len() - "# EOF\n".len());
        }
        out.push_str(&a.health().prometheus());
        if eof {
            out.push_str("# EOF\n");
        }
    }
    out
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
