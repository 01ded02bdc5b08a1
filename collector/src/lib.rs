//! logward-collector: tails Docker json-file logs and the systemd journal and ships them to a logward server over gRPC,
//! at least once, and exactly once across crashes thanks to a send journal and server-side
//! deduplication.
//!
//! Memory is bounded: at most `max_in_flight` batches wait for acks (plus, right after a
//! restart, the batches the journal recorded), one more is being filled, each batch is at most
//! `batch_max_bytes` (plus one event), and each container holds at most one read buffer of
//! `2 * max_event_bytes` and one pending partial line of `max_event_bytes` (only its oldest
//! unread file is read; its other files hold a descriptor and no buffer).

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod container;
pub mod docker;
pub mod journald;
pub mod metrics;
pub mod notify_dir;
pub mod pipeline;
pub mod security;
pub mod ship;
pub mod source;
pub mod stamp;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use notify_dir as dirwatch;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

pub use config::{Config, ConfigError};
use pipeline::Pipeline;
use ship::Shipper;

/// How often a changed checkpoint is written (and metrics refreshed).
const SAVE_EVERY: Duration = Duration::from_millis(200);
/// How often a collector that is behind says so in its log.
const LAG_LOG_EVERY: Duration = Duration::from_secs(30);

/// Why the collector stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration was rejected.
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    /// The state directory could not be used.
    #[error("collector state")]
    State(#[source] checkpoint::CheckpointError),
    /// The TLS files could not be loaded.
    #[error("TLS settings")]
    Tls(#[source] tls::TlsError),
    /// The token file could not be loaded.
    #[error("collector token")]
    Token(#[source] security::TokenError),
    /// A task of the collector ended unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Runs the collector until `shutdown` resolves, then stops reading, waits up to
/// `shutdown_grace_ms` for acks of batches in flight, saves the checkpoint and returns.
/// With `metrics_addr` set, binds it and serves `/metrics` and `/healthz` there.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener =
        match config.metrics_addr {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                Error::Internal(format!("cannot listen for metrics on {addr}: {e}"))
            })?),
            None => None,
        };
    run_with_listener(config, listener, shutdown).await
}

/// [`run`] with the metrics listener already bound (`None`: no metrics listener).
pub async fn run_with_listener(
    mut config: Config,
    metrics_listener: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if config.token.is_none()
        && let Some(path) = &config.token_file
    {
        config.token = Some(security::read_token_file(path).map_err(Error::Token)?);
    }
    config.validate()?;
    let tls_warnings = tls::preflight(&config).map_err(Error::Tls)?;
    let token_warning = config
        .token_file
        .as_deref()
        .and_then(|p| security::secret_file_warning("token_file", p));
    for warning in security::warnings(&config)
        .into_iter()
        .chain(tls_warnings)
        .chain(token_warning)
    {
        tracing::warn!(server = %config.server, "{warning}");
    }
    let metrics = Arc::new(metrics::Metrics::new());
    let (metrics_stop, metrics_stopped) = watch_channel();
    let metrics_task = match metrics_listener {
        Some(listener) => {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(addr = %addr, "collector metrics listening");
            }
            Some(tokio::spawn(metrics::serve(
                listener,
                metrics.clone(),
                metrics_stopped,
            )))
        }
        None => None,
    };
    let mut pipeline = Pipeline::open(config.clone())?;
    // Never full: the pipeline keeps at most the window plus the replayed journal in flight.
    let capacity = config.max_in_flight + pipeline.replay_len();
    let (batch_tx, batch_rx) = mpsc::channel(capacity);
    pipeline.set_shipper(batch_tx);
    pipeline.announce_sources();

    let (event_tx, mut event_rx) = mpsc::channel(capacity + 1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let shipper = Shipper::new(
        &config,
        pipeline.collector_id(),
        batch_rx,
        event_tx,
        stop_rx,
        capacity,
        metrics.clone(),
    );
    let shipper = tokio::spawn(shipper.run());

    let result = main_loop(&config, &mut pipeline, &mut event_rx, &metrics, shutdown).await;
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
    let _ = metrics_stop.send(true);
    if let Some(task) = metrics_task {
        match task.await {
            Ok(Err(error)) => tracing::warn!(%error, "metrics listener failed"),
            Err(error) => tracing::warn!(%error, "metrics task failed"),
            Ok(Ok(())) => {}
        }
    }
    result?;
    saved?;
    tracing::info!(
        acked_sequence = pipeline.state().acked_sequence,
        "collector stopped"
    );
    Ok(())
}

/// A stop signal for a task: send `true` to resolve the future.
fn watch_channel() -> (
    watch::Sender<bool>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (tx, mut rx) = watch::channel(false);
    let stopped = async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    (tx, stopped)
}

/// Interval ticks that never burst after a stall.
fn ticker(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

async fn main_loop(
    config: &Config,
    pipeline: &mut Pipeline,
    events: &mut mpsc::Receiver<pipeline::ShipEvent>,
    metrics: &metrics::Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let mut shutdown = std::pin::pin!(shutdown);
    let poll_every = Duration::from_millis(config.poll_interval_ms);
    let mut poll = ticker(poll_every);
    let mut save = ticker(SAVE_EVERY);
    let signals = Arc::new(dirwatch::Signals::default());
    let journald_wake = pipeline.journald_wake();
    let mut watcher: Option<dirwatch::DirWatcher> = None;
    let mut watch_failed = false;
    let mut last_lag_log = Instant::now();
    loop {
        if watcher.is_none() && !watch_failed && !config.no_docker && config.docker_dir.is_dir() {
            match dirwatch::watch(&config.docker_dir, signals.clone()) {
                Ok(w) => {
                    tracing::info!(
                        dir = %config.docker_dir.display(), rescan_interval_ms = config.rescan_interval_ms,
                        "following docker logs with inotify"
                    );
                    watcher = Some(w);
                    poll = ticker(Duration::from_millis(config.rescan_interval_ms));
                    poll.reset();
                    pipeline.poll();
                }
                Err(error) => {
                    tracing::warn!(
                        dir = %config.docker_dir.display(), %error,
                        poll_interval_ms = config.poll_interval_ms,
                        "inotify unavailable, scanning the docker directory on a timer instead"
                    );
                    watch_failed = true;
                }
            }
        }
        let linger = pipeline.linger_deadline();
        tokio::select! {
            biased;
            () = &mut shutdown => return Ok(()),
            event = events.recv() => {
                let Some(event) = event else {
                    return Err(Error::Internal("the shipper stopped".to_owned()));
                };
                let connected = matches!(event, pipeline::ShipEvent::Connected { .. });
                pipeline.on_ship_event(event)?;
                if connected {
                    pipeline.poll();
                }
                pipeline.fill()?;
            }
            _ = save.tick() => {
                if let Err(error) = pipeline.save().await {
                    tracing::warn!(error = %ship::error_chain(&error), "cannot save checkpoint, will retry");
                }
                let lag = metrics.update(pipeline);
                if lag > 0 && last_lag_log.elapsed() >= LAG_LOG_EVERY {
                    last_lag_log = Instant::now();
                    tracing::info!(
                        lag_bytes = lag, batches_in_flight = pipeline.in_flight_len(),
                        "collector is behind the logs"
                    );
                }
            }
            () = sleep_until_opt(linger) => pipeline.on_linger()?,
            () = journald_wake.notified() => pipeline.fill()?,
            () = signals.notified() => {
                let (scan, data) = signals.take();
                if scan {
                    pipeline.poll();
                } else if data {
                    pipeline.wake();
                }
                pipeline.fill()?;
            }
            _ = poll.tick() => {
                if watcher.is_some() && !config.docker_dir.is_dir() {
                    tracing::warn!(dir = %config.docker_dir.display(), "docker directory is gone, scanning on a timer until it is back");
                    watcher = None;
                    poll = ticker(poll_every);
                }
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
