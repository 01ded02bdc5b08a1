//! logward-server: receives collectors' gRPC streams, indexes every event in tantivy,
//! and serves the search API. `run` takes its listeners and a shutdown future, so tests
//! bind port 0 and stop it when they like.

mod api;
pub mod cli;
mod clock;
pub mod config;
mod detect;
mod error;
mod ingest;
pub mod limits;
mod metrics;
mod search;
pub mod security;
mod store;

/// The request parameter parsers, for the fuzz targets.
pub use api::params;
pub use clock::now_nanos;
pub use config::Config;
/// The pure extractors, for the fuzz targets and the pack tests.
pub use ingest::extract;
/// The checked query and the query builder, for the fuzz targets.
pub use search::query;
/// The id of an event, and the hash that orders ties.
pub use store::event_id::{EventId, event_uid};
/// The tantivy schema and its conversions, for the benchmark and the fuzz targets.
pub use store::schema;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use logward_proto::IngestServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tracing::{info, warn};

use security::incoming::{self, HttpListener, Surface};
use security::ingest_auth::IngestAuth;
use security::tls::TlsState;

/// How long the embedded collector gets to deliver what it holds at shutdown.
const COLLECTOR_STOP_GRACE: Duration = Duration::from_secs(10);
/// HTTP/2 keepalive pings on gRPC connections, and how long an answer may take.
const GRPC_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

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
    #[error("refusing to start: {0}")]
    Exposure(security::SecurityError),
    #[error("cannot load TLS files of [security.tls]: {0}")]
    Tls(#[from] security::tls::TlsError),
    #[error("cannot make the embedded collector's token: {0}")]
    Token(#[from] security::TokenError),
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
    config
        .security
        .check_exposure(grpc_addr, http_addr)
        .map_err(Error::Exposure)?;
    let tls = match &config.security.tls {
        Some(t) => Some(TlsState::load(t)?),
        None => None,
    };
    let reloader = tls.as_ref().and_then(TlsState::spawn_reloader);
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
        Some(cfg) => Some(detect::alerting::Alerting::start(
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
    // The embedded collector proves itself with a token made now and kept in memory.
    let embedded_token = match config.with_collector {
        true => Some(security::token::new_token()?),
        false => None,
    };
    let auth = Arc::new(IngestAuth::new(
        &config.security,
        embedded_token.as_deref().map(security::hash_token),
    ));
    let ingest = ingest::IngestService::new(
        store.clone(),
        metrics.clone(),
        stopping_rx,
        extractors,
        auth,
        &config.limits,
    );
    let grpc = tokio::spawn(
        grpc_server(&config.limits)
            .add_service(ingest_server(ingest.clone(), &config.limits))
            .serve_with_incoming_shutdown(
                ReceiverStream::new(incoming::accept(listeners.grpc, tls.clone(), Surface::Grpc))
                    .map(Ok::<_, std::io::Error>),
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
        tails: search::tail_hub::TailHub::start(store.clone(), metrics.clone()),
    });
    let http_tls = tls
        .clone()
        .filter(|_| config.security.tls.as_ref().is_some_and(|t| t.http));
    let http_listener = HttpListener::new(listeners.http, http_tls).map_err(Error::LocalAddr)?;
    let http = tokio::spawn(security::http_serve::serve(
        http_listener,
        app,
        Duration::from_millis(config.limits.http_header_timeout_ms),
        wait_true(grpc_stop_rx.clone()),
    ));
    info!(grpc = %grpc_addr, http = %http_addr, data_dir = %config.data_dir.display(), "logward-server listening");
    announce_posture(&config, grpc_addr, http_addr);

    let (collector_stop_tx, collector_stop_rx) = watch::channel(false);
    let mut internal_grpc = None;
    let collector = if let Some(token) = embedded_token {
        let connect = if tls.is_some() {
            // With TLS on, the embedded collector uses its own plaintext listener on
            // loopback (only its in-memory token gets in there without credentials of
            // [security]), so it needs neither the server's CA nor a client certificate.
            let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
                .await
                .map_err(|source| Error::Bind {
                    what: "embedded collector gRPC",
                    addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                    source,
                })?;
            let addr = listener.local_addr().map_err(Error::LocalAddr)?;
            internal_grpc = Some(tokio::spawn(
                grpc_server(&config.limits)
                    .add_service(ingest_server(ingest.clone(), &config.limits))
                    .serve_with_incoming_shutdown(
                        ReceiverStream::new(incoming::accept(listener, None, Surface::Grpc))
                            .map(Ok::<_, std::io::Error>),
                        wait_true(grpc_stop_rx.clone()),
                    ),
            ));
            addr
        } else if grpc_addr.ip().is_unspecified() {
            std::net::SocketAddr::from(([127, 0, 0, 1], grpc_addr.port()))
        } else {
            grpc_addr
        };
        let mut collector_config = config.collector_config(&format!("http://{connect}"))?;
        collector_config.token = Some(token);
        info!(state_dir = %collector_config.state_dir.display(), identity = security::ingest_auth::EMBEDDED, "starting the embedded collector");
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
    if let Some(task) = internal_grpc {
        let _ = task.await;
    }
    let http_result = http.await;
    if let Some(task) = reloader {
        task.abort();
    }
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

/// The gRPC server with the HTTP/2 limits of `[limits]`.
fn grpc_server(limits: &limits::LimitsConfig) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_streams_per_connection)
        .http2_keepalive_interval(Some(GRPC_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT))
}

/// The ingest service with its message bound and the compressions it accepts. The
/// bound holds after decompression: the decoder stops inflating at the limit.
fn ingest_server(
    service: ingest::IngestService,
    limits: &limits::LimitsConfig,
) -> IngestServer<ingest::IngestService> {
    IngestServer::new(service)
        .max_decoding_message_size(limits.grpc_max_message_bytes)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
}

/// Says at start how the listeners are protected: loudly when exposed by an
/// `allow_*` flag.
fn announce_posture(config: &Config, grpc: std::net::SocketAddr, http: std::net::SocketAddr) {
    let sec = &config.security;
    let http_tls = sec.tls.as_ref().is_some_and(|t| t.http);
    for (what, addr, tls) in [
        ("gRPC ingest", grpc, sec.tls.is_some()),
        ("HTTP API", http, http_tls),
    ] {
        if !tls && !addr.ip().is_loopback() {
            warn!(%addr, "{what} is plaintext beyond loopback (security.allow_plaintext): tokens and logs cross the network readable");
        }
    }
    let ingest_open = !sec.ingest_requires_auth();
    let api_open = !sec.api_requires_auth();
    for (what, addr, open) in [
        ("gRPC ingest", grpc, ingest_open),
        ("HTTP API", http, api_open),
    ] {
        if open && !addr.ip().is_loopback() {
            warn!(%addr, "{what} is open to anyone who can reach it (security.allow_open): no credentials configured");
        }
    }
    match (ingest_open, api_open) {
        (true, true) if grpc.ip().is_loopback() && http.ip().is_loopback() => {
            info!("ingest and API are open (no credentials configured, loopback only)");
        }
        (true, false) if grpc.ip().is_loopback() => {
            info!("ingest is open (no collector credentials configured, loopback only)");
        }
        (false, true) if http.ip().is_loopback() => {
            info!("API is open (no API tokens configured, loopback only)");
        }
        _ => {}
    }
    if let Some(tls) = &sec.tls {
        info!(cert = %tls.cert.display(), mtls = tls.client_ca.is_some(), http_tls, reload_interval_s = tls.reload_interval_s, "tls on");
    }
}

/// Resolves once the watched flag is true (or its sender is gone).
async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
