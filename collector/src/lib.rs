//! logward-collector: tails Docker json-file logs and ships them to a logward server over gRPC,
//! at least once, and exactly once across crashes thanks to a send journal and server-side
//! deduplication.
//!
//! Memory is bounded: at most `max_in_flight` batches wait for acks (plus, right after a
//! restart, the batches the journal recorded), one more is being filled, each batch is at most
//! `batch_max_bytes` (plus one event), and each tailed file holds at most one read buffer of
//! `2 * max_event_bytes` and one pending partial line of `max_event_bytes`.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod docker;
pub mod pipeline;
pub mod ship;

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

pub use config::{Config, ConfigError};
use pipeline::Pipeline;
use ship::Shipper;

/// How often a changed checkpoint is written.
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// Why the collector stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration was rejected.
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    /// The state directory could not be used.
    #[error("collector state")]
    State(#[source] checkpoint::CheckpointError),
    /// A task of the collector ended unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Runs the collector until `shutdown` resolves, then stops reading, waits up to
/// `shutdown_grace_ms` for acks of batches in flight, saves the checkpoint and returns.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let mut pipeline = Pipeline::open(config.clone())?;
    // Never full: the pipeline keeps at most the window plus the replayed journal in flight.
    let capacity = config.max_in_flight + pipeline.replay_len();
    let (batch_tx, batch_rx) = mpsc::channel(capacity);
    pipeline.set_shipper(batch_tx);
    pipeline.announce_sources();

    let (event_tx, mut event_rx) = mpsc::channel(capacity + 1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let shipper = Shipper::new(
        &config.server,
        pipeline.collector_id(),
        batch_rx,
        event_tx,
        stop_rx,
        capacity,
    );
    let shipper = tokio::spawn(shipper.run());

    let result = main_loop(&config, &mut pipeline, &mut event_rx, shutdown).await;
    if result.is_ok() {
        tracing::info!(in_flight = pipeline.has_in_flight(), "shutting down");
        let deadline = Instant::now() + Duration::from_millis(config.shutdown_grace_ms);
        while pipeline.has_in_flight() {
            tokio::select! {
                event = event_rx.recv() => match event {
                    Some(event) => pipeline.on_ship_event(event)?,
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("shutdown grace period over, unacknowledged batches are resent on the next start");
                    break;
                }
            }
        }
    }
    let saved = pipeline.save().await;
    let _ = stop_tx.send(true);
    if let Err(error) = shipper.await {
        tracing::warn!(%error, "shipper task failed");
    }
    result?;
    saved?;
    tracing::info!(
        acked_sequence = pipeline.state().acked_sequence,
        "collector stopped"
    );
    Ok(())
}

async fn main_loop(
    config: &Config,
    pipeline: &mut Pipeline,
    events: &mut mpsc::Receiver<ship::ShipEvent>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut poll = tokio::time::interval(Duration::from_millis(config.poll_interval_ms));
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut save = tokio::time::interval(SAVE_EVERY);
    save.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let linger = pipeline.linger_deadline();
        tokio::select! {
            biased;
            () = &mut shutdown => return Ok(()),
            event = events.recv() => {
                let Some(event) = event else {
                    return Err(Error::Internal("the shipper stopped".to_owned()));
                };
                let connected = matches!(event, ship::ShipEvent::Connected { .. });
                pipeline.on_ship_event(event)?;
                if connected {
                    pipeline.poll();
                }
                pipeline.fill()?;
            }
            _ = save.tick() => {
                if let Err(error) = pipeline.save().await {
                    tracing::warn!(error = %error_chain(&error), "cannot save checkpoint, will retry");
                }
            }
            () = sleep_until_opt(linger) => pipeline.on_linger()?,
            _ = poll.tick() => {
                pipeline.poll();
                pipeline.fill()?;
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        // Some errors repeat their source in their own message.
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}
