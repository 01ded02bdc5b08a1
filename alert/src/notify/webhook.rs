//! Webhooks: a POST of the v1 payload (or a template), signed with HMAC-SHA256.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;

use super::guard::{self, GuardedResolver};
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
    allow: Vec<ipnet::IpNet>,
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
    /// Builds the HTTP client; no connection is made yet. `global_allow` is
    /// `[alerting] allow_targets`.
    pub fn new(
        c: &WebhookConfig,
        timeout: Duration,
        global_allow: &[String],
    ) -> Result<Self, Error> {
        let allow = c
            .effective_allow(global_allow)
            .map_err(|m| Error::Config(format!("webhook: {m}")))?;
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
            // Redirects are answers, never followed: a 3xx fails the delivery.
            .redirect(reqwest::redirect::Policy::none())
            // Every name goes through the SSRF guard, and reqwest connects only to the
            // addresses it checked. No proxy: a proxy would resolve the name itself.
            .dns_resolver(Arc::new(GuardedResolver::new(allow.clone())))
            .no_proxy()
            .user_agent(concat!("logward-alert/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("webhook client: {e}")))?;
        Ok(WebhookNotifier {
            client,
            url: c.url.clone(),
            headers,
            secret: c.secret.as_ref().map(|s| s.as_bytes().to_vec()),
            template: c.template.clone(),
            allow,
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

/// An error and its sources, `: `-joined (reqwest's own message hides the cause).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = s.source();
    }
    out
}

impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, n: &'a Notification, attempt: u32) -> SendFuture<'a> {
        Box::pin(async move {
            // IP literals never reach the resolver: check them here (config load did too).
            if let Err(m) = guard::check_url(&self.url, &self.allow) {
                tracing::warn!(url = %self.url, reason = %m, "webhook target refused by the ssrf guard");
                return Err(NotifyError::permanent(format!(
                    "webhook target refused: {m}"
                )));
            }
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
                .map_err(|e| match guard::refused_in(&e) {
                    Some(refused) => NotifyError::permanent(refused.to_string()),
                    None => NotifyError::transient(format!("webhook: {}", error_chain(&e))),
                })?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            if status.is_redirection() {
                let to = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                let msg = format!(
                    "webhook answered {status} (redirect to {to:?}): redirects are not followed; set webhook.url to the final URL"
                );
                tracing::warn!(url = %self.url, %status, location = %to, "webhook redirect refused");
                return Err(NotifyError::permanent(msg));
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
