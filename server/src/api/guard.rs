//! The guard in front of every route of the HTTP API: authentication and roles first
//! (`security::api_auth`), then the `[limits]` of one request — body size and total
//! time — and the slots that bound concurrent searches and live tails. Every refusal is
//! counted in `/metrics` and answered with JSON that names the limit and its value.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, timeout_at};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::api::access::{ApiAuth, AuthFailure};
use crate::api::error::ApiError;
use crate::limits::LimitsConfig;
use crate::metrics::Metrics;
use crate::security::SecurityConfig;

/// How long a search waits for a free `max_concurrent_searches` slot before its 429.
pub const SEARCH_SLOT_WAIT: Duration = Duration::from_secs(1);

/// What the guard and the handlers share: the tokens, the limits and the slots.
pub struct Guards {
    pub auth: ApiAuth,
    pub limits: LimitsConfig,
    pub metrics: Arc<Metrics>,
    /// `max_concurrent_searches`: search, count and aggregate.
    pub searches: Slots,
    /// `max_tail_clients`: open live tails.
    pub tails: Slots,
}

impl Guards {
    pub fn new(limits: &LimitsConfig, security: &SecurityConfig, metrics: Arc<Metrics>) -> Self {
        Guards {
            auth: ApiAuth::new(&security.api_tokens),
            limits: limits.clone(),
            metrics,
            searches: Slots::new(
                "max_concurrent_searches",
                limits.max_concurrent_searches,
                SEARCH_SLOT_WAIT,
                "searches are running at once",
            ),
            tails: Slots::new(
                "max_tail_clients",
                limits.max_tail_clients,
                Duration::ZERO,
                "live tails are open",
            ),
        }
    }

    /// The time budget of one search, count, aggregation or tail resume.
    pub fn search_budget(&self) -> Duration {
        Duration::from_millis(self.limits.search_timeout_ms)
    }
}

/// A fixed number of slots, each held by one running request; when all are taken a
/// request waits at most `wait`, then gets a 429.
pub struct Slots {
    sem: Arc<Semaphore>,
    key: &'static str,
    size: usize,
    wait: Duration,
    what: &'static str,
}

impl Slots {
    /// `key` is the `[limits]` key of `size`; `what` ends the 429's message.
    pub fn new(key: &'static str, size: usize, wait: Duration, what: &'static str) -> Self {
        Slots {
            sem: Arc::new(Semaphore::new(size)),
            key,
            size,
            wait,
            what,
        }
    }

    /// Takes a slot, held until the permit is dropped; a 429 with `Retry-After`,
    /// counted in `logward_limit_rejections_total`, when none frees up in time.
    pub async fn acquire(&self, metrics: &Metrics) -> Result<OwnedSemaphorePermit, ApiError> {
        let sem = self.sem.clone();
        let got = if self.wait.is_zero() {
            sem.try_acquire_owned().ok()
        } else {
            tokio::time::timeout(self.wait, sem.acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        };
        got.ok_or_else(|| {
            metrics.limit_hit(self.key);
            ApiError::limit(
                StatusCode::TOO_MANY_REQUESTS,
                self.key,
                self.size as u64,
                format!(
                    "{} {}; limits.{} is {}: retry in a moment",
                    self.size, self.what, self.key, self.size
                ),
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
        })
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.sem.available_permits()
    }
}

/// The middleware: authenticates and authorizes, opens the request's span (with the
/// token's name, never the token), reads the body within `http_max_body_bytes`, and
/// bounds the whole request by `http_request_timeout_ms` (the live tail stream is
/// exempt once it has started). State-changing requests are logged with their status.
pub async fn guard(State(g): State<Arc<Guards>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let grant = match g.auth.check(&method, &path, req.headers()) {
        Ok(grant) => grant,
        Err(failure) => {
            g.metrics.auth_failed("http", failure.reason());
            match failure {
                AuthFailure::Missing => {
                    debug!(%method, %path, reason = failure.reason(), "api request refused");
                }
                _ => warn!(%method, %path, reason = failure.reason(), "api request refused"),
            }
            return failure.into_api_error().into_response();
        }
    };
    let token = grant.as_ref().map_or("", |g| g.name.as_str());
    let span = info_span!("http", %method, %path, token);
    let changes = method != Method::GET && method != Method::HEAD;
    async move {
        let ms = g.limits.http_request_timeout_ms;
        let deadline = Instant::now() + Duration::from_millis(ms);
        let response = match read_body(req, &g, deadline).await {
            Err(refused) => refused.into_response(),
            Ok(req) if path == crate::api::TAIL_ROUTE => next.run(req).await,
            Ok(req) => match timeout_at(deadline, next.run(req)).await {
                Ok(response) => response,
                Err(_) => {
                    g.metrics.limit_hit("http_request_timeout_ms");
                    ApiError::limit(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "http_request_timeout_ms",
                        ms,
                        format!("the request took longer than limits.http_request_timeout_ms ({ms} ms)"),
                    )
                    .into_response()
                }
            },
        };
        if changes {
            info!(status = response.status().as_u16(), "api change");
        }
        response
    }
    .instrument(span)
    .await
}

/// Reads the whole body, refusing one past `http_max_body_bytes` (413, at once when
/// `Content-Length` says so) or one that does not arrive before `deadline` (408).
async fn read_body(req: Request, g: &Guards, deadline: Instant) -> Result<Request, ApiError> {
    let max = g.limits.http_max_body_bytes;
    let too_large = || {
        g.metrics.limit_hit("http_max_body_bytes");
        ApiError::limit(
            StatusCode::PAYLOAD_TOO_LARGE,
            "http_max_body_bytes",
            max as u64,
            format!("the request body is larger than limits.http_max_body_bytes ({max} bytes)"),
        )
    };
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match timeout_at(deadline, stream.next()).await {
            Err(_) => {
                let ms = g.limits.http_request_timeout_ms;
                g.metrics.limit_hit("http_request_timeout_ms");
                return Err(ApiError::limit(
                    StatusCode::REQUEST_TIMEOUT,
                    "http_request_timeout_ms",
                    ms,
                    format!(
                        "the request body did not arrive within limits.http_request_timeout_ms ({ms} ms)"
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => {
                if buf.len() + chunk.len() > max {
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(Some(Err(e))) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {e}"),
                ));
            }
        }
    }
    Ok(Request::from_parts(parts, Body::from(buf)))
}

#[cfg(test)]
mod tests;
