//! logward's alerting, as a library the server embeds: detections become alerts (deduped,
//! stored durably), flood control and silences decide what is worth a notification, and
//! notifications go by email or signed webhook through a durable outbox.
//!
//! ```ignore
//! let alerter = Alerter::open(config.alerting, &data_dir.join("alerting"))?;
//! let app = app.merge(logward_alert::router(alerter.clone()));
//! tokio::spawn(logward_alert::run(alerter.clone(), shutdown));
//! alerter.ingest(&detections, OffsetDateTime::now_utc())?;
//! ```

mod alerter;
pub mod api;
pub mod config;
pub mod detection;
pub mod duration;
pub mod error;
pub mod flood;
pub mod health;
mod journal;
pub mod notification;
pub mod notify;
pub mod outbox;
pub mod render;
pub mod silence;
pub mod store;

use std::future::Future;

pub use alerter::{Alerter, DeliveryReport};
pub use api::router;
pub use config::AlertingConfig;
pub use detection::{Detection, ExactMessages, Level, Sample, SampleEvent};
pub use error::Error;
pub use health::Health;

/// Drives the alerter until `shutdown` resolves: every `tick` (or sooner when new
/// notifications are queued) it flushes due groups into the outbox and delivers due
/// entries. Undelivered notifications stay in the outbox for the next start.
pub async fn run(alerter: Alerter, shutdown: impl Future<Output = ()>) {
    let tick = alerter.config().tick.0;
    tokio::pin!(shutdown);
    tracing::info!(tick_ms = tick.as_millis() as u64, "alert runner started");
    loop {
        let now = time::OffsetDateTime::now_utc();
        if let Err(e) = alerter.tick(now) {
            tracing::error!(error = %e, "cannot queue notifications");
        }
        let round = alerter.deliver_due(now);
        tokio::select! {
            () = &mut shutdown => break,
            _ = round => {}
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(tick) => {}
            () = alerter.wake().notified() => {}
        }
    }
    tracing::info!("alert runner stopped");
}
