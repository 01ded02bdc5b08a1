//! Channels: the [`Notifier`] plug point and the built-in email and webhook senders.

pub mod email;
pub mod guard;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::ChannelConfig;
use crate::error::Error;
use crate::notification::Notification;

/// A failed delivery attempt.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct NotifyError {
    /// What went wrong.
    pub message: String,
    /// True when retrying cannot help (e.g. a 4xx answer): the notification goes to the
    /// dead letters at once.
    pub permanent: bool,
}

impl NotifyError {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        NotifyError {
            message: message.into(),
            permanent: false,
        }
    }

    /// A failure retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        NotifyError {
            message: message.into(),
            permanent: true,
        }
    }
}

/// The future a [`Notifier`] returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + 'a>>;

/// Sends one notification, once (the outbox retries). Implementations must respect
/// their own per-attempt timeout.
pub trait Notifier: Send + Sync {
    /// `email`, `webhook`, or a name of your own.
    fn kind(&self) -> &'static str;
    /// One attempt; `attempt` counts from 1.
    fn send<'a>(&'a self, notification: &'a Notification, attempt: u32) -> SendFuture<'a>;
}

/// The sender a channel's config asks for; `allow_targets` is `[alerting] allow_targets`.
pub fn from_config(
    c: &ChannelConfig,
    allow_targets: &[String],
) -> Result<Arc<dyn Notifier>, Error> {
    let timeout = c.retry.timeout.0;
    match (&c.email, &c.webhook) {
        (Some(e), None) => Ok(Arc::new(email::EmailNotifier::new(e, timeout)?)),
        (None, Some(w)) => Ok(Arc::new(webhook::WebhookNotifier::new(
            w,
            timeout,
            allow_targets,
        )?)),
        _ => Err(Error::Config(format!(
            "channel '{}' needs exactly one of [email] and [webhook]",
            c.name
        ))),
    }
}
