//! logward-server: receives collectors' gRPC streams, indexes every event in tantivy,
//! and serves the search API. `run` takes its listeners and a shutdown future, so tests
//! bind port 0 and stop it when they like.

pub mod aggregate;
pub mod alerting;
pub mod api;
pub mod cli;
pub mod config;
pub mod detect;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod limits;
pub mod manifest;
pub mod metrics;
pub mod openapi;
pub mod partition;
pub mod query;
pub mod schema;
pub mod search;
pub mod security;
pub mod store;
pub mod tail;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use logward_proto::IngestServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};

pub use config::Config;

/// Largest gRPC message the server decodes: a batch with its metadata.
pub const MAX_GRPC_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// How long the embedded collector gets to deliver what it holds at shutdown.
const COLLECTOR_STOP_GRACE: Duration = Duration::from_secs(10);

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("cannot start detection: {0}")]
    Detect(std::io::Error),
    #[error("cannot start alerting: {0}")]
    Alerting(#[from] logward_alert::Error),
    #[error("listener address unknown: {0}")]
    LocalAddr(std::io::Error),
}

/// The server's two listeners.
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
}

impl Listeners {
    /// Binds the addresses of the configuration.
    pub async fn bind(config: &Config) -> Result<Listeners, Error> {
        let grpc = TcpListener::bind(config.grpc_addr)
            .await
            .map_err(|source| Error::Bind {
                what: "gRPC",
                addr: config.grpc_addr,
                source,
            })?;
        let http = TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| Error::Bind {
                what: "HTTP",
                addr: config.http_addr,
                source,
            })?;
        Ok(Listeners { grpc, http })
    }
}

/// Runs the server until `shutdown` resolves, then stops in order: the embedded
/// collector delivers what it holds, streams stop taking batches, the store commits
/// and acks what is pending, and the listeners close.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let grpc_addr = listeners.grpc.local_addr().map_err(Error::LocalAddr)?;
    let http_addr = listeners.http.local_addr().map_err(Error::LocalAddr)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let (store, writer) =
        store::Store::open(&config.data_dir, &config.store_options(), metrics.clone())?;

    let extractors = Arc::new(
        extract::Extractors::new(&config.extract)
            .map_err(|e| Error::Config(config::ConfigError::Extract(e)))?,
    );
    let (detect_stop_tx, detect_stop_rx) = watch::channel(false);
    let (detection, alerts, detector) =
        detect::start(&store, config.detect_options(), detect_stop_rx).map_err(Error::Detect)?;
    let alerting = match config.alerting_enabled() {
        Some(cfg) => Some(alerting::Alerting::start(
            cfg.clone(),
            &config.data_dir.join("alerting"),
            &store,
            alerts,
        )?),
        None => {
            if config.alerting.is_some() {
                info!("alerting is off: [alerting] has no channels");
            }
            // Detections are stored and listed only.
            drop(alerts);
            None
        }
    };

    let (stopping_tx, stopping_rx) = watch::channel(false);
    let (grpc_stop_tx, grpc_stop_rx) = watch::channel(false);
    let service = IngestServer::new(ingest::IngestService::new(
        store.clone(),
        metrics.clone(),
        stopping_rx,
        extractors,
    ))
    .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES);
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listeners.grpc),
                wait_true(grpc_stop_rx.clone()),
            ),
    );
    let app = api::router(api::AppState {
        store: store.clone(),
        metrics: metrics.clone(),
        detection,
        alerter: alerting.as_ref().map(|a| a.alerter.clone()),
        limits: config.limits.clone(),
        security: config.security.clone(),
    });
    let http = tokio::spawn(
        axum::serve(listeners.http, app)
            .with_graceful_shutdown(wait_true(grpc_stop_rx))
            .into_future(),
    );
    info!(grpc = %grpc_addr, http = %http_addr, data_dir = %config.data_dir.display(), "logward-server listening");
    if !grpc_addr.ip().is_loopback() {
        warn!(addr = %grpc_addr, "gRPC ingest listens beyond loopback without TLS or authentication");
    }
    if !http_addr.ip().is_loopback() {
        warn!(addr = %http_addr, "HTTP API listens beyond loopback without TLS or authentication");
    }

    let (collector_stop_tx, collector_stop_rx) = watch::channel(false);
    let collector = if config.with_collector {
        let connect = if grpc_addr.ip().is_unspecified() {
            std::net::SocketAddr::from(([127, 0, 0, 1], grpc_addr.port()))
        } else {
            grpc_addr
        };
        let collector_config = config.collector_config(&format!("http://{connect}"))?;
        info!(state_dir = %collector_config.state_dir.display(), "starting the embedded collector");
        Some(tokio::spawn(logward_collector::run(
            collector_config,
            wait_true(collector_stop_rx),
        )))
    } else {
        None
    };

    shutdown.await;
    info!("shutting down");
    let _ = collector_stop_tx.send(true);
    if let Some(task) = collector {
        match tokio::time::timeout(COLLECTOR_STOP_GRACE, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => warn!(%error, "embedded collector stopped with an error"),
            Ok(Err(error)) => warn!(%error, "embedded collector panicked"),
            Err(_) => warn!("embedded collector did not stop in time"),
        }
    }
    let _ = stopping_tx.send(true);
    store.shutdown().await;
    let _ = grpc_stop_tx.send(true);
    let grpc_result = grpc.await;
    let http_result = http.await;
    writer.join().await;
    let _ = detect_stop_tx.send(true);
    detector.join().await;
    if let Some(a) = alerting {
        a.stop().await;
    }
    if let Ok(Err(e)) = grpc_result {
        return Err(Error::Grpc(e));
    }
    if let Ok(Err(e)) = http_result {
        return Err(Error::Http(e));
    }
    info!("stopped");
    Ok(())
}

/// Resolves once the watched flag is true (or its sender is gone).
async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
