//! The `[alerting]` configuration: alert store, channels, flood control and retries.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::detection::Level;
use crate::duration::HumanDuration;
use crate::error::Error;

/// Alerting settings; a section of the server's config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Base URL of logward's HTTP API as receivers reach it, for the search links in alerts.
    pub search_base_url: String,
    /// A detection of the same (rule, group key) within this span of the alert's last-seen
    /// time updates that alert instead of opening a new one.
    pub dedup_window: HumanDuration,
    /// Sample events kept per alert (the first ones seen).
    pub max_samples: usize,
    /// Longest sample message kept, in bytes; longer ones are cut with `…`.
    pub max_sample_bytes: usize,
    /// Alerts kept on disk; beyond that the oldest resolved (then oldest) are dropped.
    pub max_alerts: usize,
    /// Dead letters kept; beyond that the oldest are dropped.
    pub max_dead_letters: usize,
    /// How often the runner flushes notification groups and retries deliveries.
    pub tick: HumanDuration,
    /// Addresses (CIDR, or a bare IP for one address) every webhook channel may reach
    /// although the SSRF guard refuses them by default (loopback, private, link-local, …),
    /// e.g. `["127.0.0.1/32"]` for a receiver on this host; added to each channel's own.
    pub allow_targets: Vec<String>,
    /// Where notifications go.
    pub channels: Vec<ChannelConfig>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            search_base_url: "http://127.0.0.1:7421".to_owned(),
            dedup_window: HumanDuration::hours(1),
            max_samples: 5,
            max_sample_bytes: 2048,
            max_alerts: 10_000,
            max_dead_letters: 1_000,
            tick: HumanDuration::secs(1),
            allow_targets: Vec::new(),
            channels: Vec::new(),
        }
    }
}

/// One notification channel: a route (which alerts) and a sender (email or webhook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Unique name, used in logs, metrics and the outbox.
    pub name: String,
    /// Alerts below this level are not sent here.
    #[serde(default = "default_min_level")]
    pub min_level: Level,
    /// When not empty, only rules with at least one of these tags are sent here.
    #[serde(default)]
    pub include_tags: Vec<String>,
    /// Rules with any of these tags are never sent here.
    #[serde(default)]
    pub exclude_tags: Vec<String>,
    /// Grouping, realert and rate cap of this channel.
    #[serde(default)]
    pub flood: FloodConfig,
    /// Delivery attempts and backoff of this channel.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Send by email (exactly one of `email` and `webhook`).
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// Send by HTTP POST (exactly one of `email` and `webhook`).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

fn default_min_level() -> Level {
    Level::Low
}

impl ChannelConfig {
    /// True when a rule with this level and these tags is routed to this channel.
    pub fn accepts(&self, level: Level, tags: &[String]) -> bool {
        level >= self.min_level
            && (self.include_tags.is_empty() || tags.iter().any(|t| self.include_tags.contains(t)))
            && !tags.iter().any(|t| self.exclude_tags.contains(t))
    }
}

/// Flood control of one channel; see docs/ALERTING.md for the semantics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloodConfig {
    /// Labels whose values make a notification group (`rule`, `level`, `host`,
    /// `container`, `image`, a group-key name or a field). Empty: one group per channel.
    pub group_by: Vec<String>,
    /// How long a new group collects alerts before its first notification.
    pub group_wait: HumanDuration,
    /// Least time between two notifications of a group that got new detections.
    pub group_interval: HumanDuration,
    /// A group with open alerts and no news is reminded after this long; `0` never.
    pub repeat_interval: HumanDuration,
    /// Least time between two notifications about the same rule on this channel.
    pub realert: HumanDuration,
    /// `realert` per rule id, overriding the channel's.
    pub realert_per_rule: BTreeMap<String, HumanDuration>,
    /// Most notifications this channel sends in any hour; `0` is unlimited.
    pub max_per_hour: u32,
    /// Most alerts listed in one notification; the rest are counted.
    pub max_alerts_per_notification: usize,
}

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig {
            group_by: vec!["rule".to_owned()],
            group_wait: HumanDuration::secs(30),
            group_interval: HumanDuration::mins(5),
            repeat_interval: HumanDuration::hours(4),
            realert: HumanDuration::mins(5),
            realert_per_rule: BTreeMap::new(),
            max_per_hour: 60,
            max_alerts_per_notification: 20,
        }
    }
}

/// Delivery retries of one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts before a notification goes to the dead letters.
    pub max_attempts: u32,
    /// Wait after the first failure; doubles per failure, with jitter.
    pub initial_backoff: HumanDuration,
    /// Longest wait between attempts.
    pub max_backoff: HumanDuration,
    /// Time limit of one attempt (connect, TLS, send, answer).
    pub timeout: HumanDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 10,
            initial_backoff: HumanDuration::secs(2),
            max_backoff: HumanDuration::mins(10),
            timeout: HumanDuration::secs(10),
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connect, then STARTTLS, which is required (default port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (default port 465).
    Tls,
    /// No TLS at all (default port 25); only when written explicitly.
    Plain,
}

/// An SMTP relay and the message's addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The relay's host name (checked against its certificate).
    pub host: String,
    /// The relay's port; default by `tls`: 587, 465 or 25.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `plain`.
    #[serde(default)]
    pub tls: SmtpTls,
    /// Extra CA certificate (PEM) trusted for the relay, besides the webpki roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SMTP AUTH user; with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP AUTH password.
    #[serde(default)]
    pub password: Option<String>,
    /// The `From` address, e.g. `logward <logward@example.com>`.
    pub from: String,
    /// `To` addresses (at least one).
    pub to: Vec<String>,
    /// `Cc` addresses.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Subject template; see docs/ALERTING.md for the `{placeholders}`.
    #[serde(default = "default_subject")]
    pub subject: String,
}

fn default_subject() -> String {
    "[logward] {level}: {rule_title} ({count} alerts, {new} new)".to_owned()
}

/// An HTTP endpoint that gets a POST per notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Extra request headers (e.g. `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HMAC-SHA256 key for `X-Logward-Signature`; without it requests are unsigned.
    #[serde(default)]
    pub secret: Option<String>,
    /// Body template (JSON with `{{placeholders}}`) instead of the logward payload, e.g.
    /// for Slack; see docs/ALERTING.md.
    #[serde(default)]
    pub template: Option<String>,
    /// Addresses (CIDR or bare IP) this webhook may reach although the SSRF guard refuses
    /// them by default; added to `[alerting] allow_targets`.
    #[serde(default)]
    pub allow_targets: Vec<String>,
}

impl WebhookConfig {
    /// The allow list in force for this webhook: `[alerting] allow_targets` plus its own.
    pub fn effective_allow(&self, global: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
        let all: Vec<String> = global.iter().chain(&self.allow_targets).cloned().collect();
        crate::notify::guard::parse_allow(&all)
    }
}

impl AlertingConfig {
    /// Checks the config without I/O; names the first problem found.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if !(self.search_base_url.starts_with("http://")
            || self.search_base_url.starts_with("https://"))
        {
            return bad(format!(
                "search_base_url '{}' must be an http(s) URL",
                self.search_base_url
            ));
        }
        if self.max_samples > 100 {
            return bad("max_samples must be at most 100".to_owned());
        }
        if self.max_alerts == 0 {
            return bad("max_alerts must be at least 1".to_owned());
        }
        if self.tick.is_zero() {
            return bad("tick must be more than 0".to_owned());
        }
        crate::notify::guard::parse_allow(&self.allow_targets)
            .map_err(|m| Error::Config(format!("alerting.{m}")))?;
        let mut names = std::collections::BTreeSet::new();
        for c in &self.channels {
            let ctx = |m: &str| Error::Config(format!("channel '{}': {m}", c.name));
            if c.name.is_empty()
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_".contains(ch))
            {
                return bad(format!(
                    "channel name '{}' must be non-empty [A-Za-z0-9_-]",
                    c.name
                ));
            }
            if !names.insert(c.name.as_str()) {
                return bad(format!("channel name '{}' is used twice", c.name));
            }
            match (&c.email, &c.webhook) {
                (Some(e), None) => validate_email(e).map_err(|m| ctx(&m))?,
                (None, Some(w)) => validate_webhook(w, &self.allow_targets).map_err(|m| ctx(&m))?,
                _ => return Err(ctx("needs exactly one of [email] and [webhook]")),
            }
            if c.retry.max_attempts == 0 || c.retry.timeout.is_zero() {
                return Err(ctx(
                    "retry.max_attempts and retry.timeout must be more than 0",
                ));
            }
            if c.flood.group_interval.is_zero() || c.flood.max_alerts_per_notification == 0 {
                return Err(ctx(
                    "flood.group_interval and flood.max_alerts_per_notification must be more than 0",
                ));
            }
        }
        Ok(())
    }
}

fn validate_email(e: &EmailConfig) -> Result<(), String> {
    if e.host.is_empty() {
        return Err("email.host is empty".to_owned());
    }
    if e.to.is_empty() {
        return Err("email.to needs at least one address".to_owned());
    }
    for a in std::iter::once(&e.from).chain(&e.to).chain(&e.cc) {
        a.parse::<lettre::message::Mailbox>()
            .map_err(|err| format!("email address '{a}': {err}"))?;
    }
    if e.username.is_some() != e.password.is_some() {
        return Err("email.username and email.password go together".to_owned());
    }
    crate::render::check_subject_template(&e.subject)
}

fn validate_webhook(w: &WebhookConfig, global_allow: &[String]) -> Result<(), String> {
    if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
        return Err(format!("webhook.url '{}' must be an http(s) URL", w.url));
    }
    let allow = w.effective_allow(global_allow)?;
    crate::notify::guard::check_url(&w.url, &allow)
        .map_err(|m| format!("webhook.url '{}': {m}", w.url))?;
    for (k, v) in &w.headers {
        reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("webhook header name '{k}' is not valid"))?;
        reqwest::header::HeaderValue::from_str(v)
            .map_err(|_| format!("webhook header '{k}' has an invalid value"))?;
    }
    if let Some(t) = &w.template {
        crate::render::check_webhook_template(t)?;
    }
    Ok(())
}
