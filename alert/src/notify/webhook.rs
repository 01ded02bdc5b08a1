//! Webhooks: a POST of the v1 payload (or a template), signed with HMAC-SHA256.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;

use super::{Notifier, NotifyError, SendFuture};
use crate::config::WebhookConfig;
use crate::error::Error;
use crate::notification::Notification;
use crate::render;

/// Header carrying `sha256=<hex>` over `timestamp + "." + body`.
pub const SIGNATURE_HEADER: &str = "x-logward-signature";
/// Header carrying the signing time, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-logward-timestamp";
/// Header carrying the notification's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "x-logward-idempotency-key";
/// Header carrying the attempt number, from 1.
pub const ATTEMPT_HEADER: &str = "x-logward-attempt";

/// Posts notifications to one URL.
pub struct WebhookNotifier {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    secret: Option<Vec<u8>>,
    template: Option<String>,
}

/// `sha256=` and the hex HMAC-SHA256 of `timestamp.body` under `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this never fails; an empty string would not verify.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Checks a signature header in constant time (what a receiver does; see docs/ALERTING.md).
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], header: &str) -> bool {
    let expected = sign(secret, timestamp, body);
    expected.len() == header.len()
        && expected
            .bytes()
            .zip(header.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

impl WebhookNotifier {
    /// Builds the HTTP client; no connection is made yet.
    pub fn new(c: &WebhookConfig, timeout: Duration) -> Result<Self, Error> {
        let mut headers = HeaderMap::new();
        for (k, v) in &c.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| Error::Config(format!("webhook header name '{k}'")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| Error::Config(format!("webhook header '{k}' value")))?;
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("logward-alert/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("webhook client: {e}")))?;
        Ok(WebhookNotifier {
            client,
            url: c.url.clone(),
            headers,
            secret: c.secret.as_ref().map(|s| s.as_bytes().to_vec()),
            template: c.template.clone(),
        })
    }

    /// The request body for a notification.
    pub fn body(&self, n: &Notification) -> Result<String, NotifyError> {
        match &self.template {
            Some(t) => render::webhook_body(t, n).map_err(NotifyError::permanent),
            None => serde_json::to_string(n).map_err(|e| NotifyError::permanent(e.to_string())),
        }
    }
}

impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, n: &'a Notification, attempt: u32) -> SendFuture<'a> {
        Box::pin(async move {
            let body = self.body(n)?;
            let ts = time::OffsetDateTime::now_utc().unix_timestamp();
            let mut req = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .header(CONTENT_TYPE, "application/json")
                .header(TIMESTAMP_HEADER, ts.to_string())
                .header(IDEMPOTENCY_HEADER, &n.idempotency_key)
                .header(ATTEMPT_HEADER, attempt.to_string());
            if let Some(secret) = &self.secret {
                req = req.header(SIGNATURE_HEADER, sign(secret, ts, body.as_bytes()));
            }
            let resp = req
                .body(body)
                .send()
                .await
                .map_err(|e| NotifyError::transient(format!("webhook: {e}")))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let msg = format!("webhook answered {status}");
            if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
                Err(NotifyError::permanent(msg))
            } else {
                Err(NotifyError::transient(msg))
            }
        })
    }
}
