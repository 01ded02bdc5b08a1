//! The error answer of the HTTP API, built from each error's class (see
//! [`crate::error`], the one table of HTTP and gRPC codes).

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::error::ErrorClass;
use crate::search::SearchError;
use crate::search::query::QueryError;
use crate::store::StoreError;

/// An error answer of the HTTP API: a status and `{"error": "...", ...}`, with optional
/// further fields (e.g. `limit` and `value` of a refused `[limits]` key) and headers
/// (e.g. `WWW-Authenticate`, `Retry-After`).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Further members of the JSON body, beside `error`.
    pub fields: Map<String, Value>,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            fields: Map::new(),
            headers: Vec::new(),
        }
    }

    /// Adds a member to the JSON body.
    #[must_use]
    pub fn with_field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a response header.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A refusal by the `[limits]` key `key` set to `value`: the body names both.
    pub fn limit(status: StatusCode, key: &'static str, value: u64, message: String) -> Self {
        ApiError::new(status, message)
            .with_field("limit", key)
            .with_field("value", value)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".to_owned(), Value::String(self.message.clone()));
        for (k, v) in &self.fields {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let limit = e.limit();
        let error = ApiError::new(e.status().http(), e.to_string());
        match limit {
            Some((key, value)) => error
                .with_field("limit", key)
                .with_field("value", value as u64),
            None => error,
        }
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        let status = e.status().http();
        match e {
            SearchError::Query(q) => q.into(),
            SearchError::Store(s) => s.into(),
            SearchError::Timeout(budget) => ApiError::limit(
                status,
                "search_timeout_ms",
                u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
                SearchError::Timeout(budget).to_string(),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // The HTTP API only reads: a failing commit is a fault of the server there.
        let status = match e.status() {
            ErrorClass::StorageFull => ErrorClass::Internal,
            other => other,
        };
        ApiError::new(status.http(), e.to_string())
    }
}
