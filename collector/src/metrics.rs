//! The collector's own `/metrics` (Prometheus text) and `/healthz` listener, off unless
//! `metrics_addr` is set. The main loop refreshes the gauges from the pipeline.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::pipeline::Pipeline;

type FileLabels = Vec<(String, String)>;

/// Every metric of the collector.
pub struct Metrics {
    registry: Registry,
    lag_bytes: Gauge,
    file_lag_bytes: Family<FileLabels, Gauge>,
    files: Mutex<Vec<PathBuf>>,
    containers: Gauge,
    in_flight: Gauge,
    acked_sequence: Gauge,
    decode_errors: Gauge,
    gaps: Gauge,
    bytes_lost: Gauge,
    postures: Gauge,
    read_failures: Gauge,
    auth_failures: Counter,
    tls_errors: Counter,
    batch_rejections: Family<Vec<(String, String)>, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry under the prefix `logward_collector`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("logward_collector");
        let mut gauge = |name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let lag_bytes = gauge("lag_bytes", "Bytes written to log files and not yet read");
        let containers = gauge("containers", "Containers followed");
        let in_flight = gauge("batches_in_flight", "Batches sent and not yet acknowledged");
        let acked_sequence = gauge("acked_sequence", "Highest batch acknowledged in order");
        let decode_errors = gauge(
            "decode_errors",
            "Lines that were not valid json-file output",
        );
        let gaps = gauge("gaps", "Gaps: log bytes lost before they were read");
        let bytes_lost = gauge("bytes_lost_estimate", "Estimated bytes lost in gaps");
        let postures = gauge("posture_events", "Posture events emitted");
        let read_failures = gauge(
            "read_failures",
            "Failed attempts at starting a log file (each backed off; given up files are gaps)",
        );
        let file_lag_bytes = Family::<FileLabels, Gauge>::default();
        registry.register(
            "file_lag_bytes",
            "Bytes of one log file not yet read",
            file_lag_bytes.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Connections the server refused as UNAUTHENTICATED or PERMISSION_DENIED",
            auth_failures.clone(),
        );
        let tls_errors = Counter::default();
        registry.register(
            "tls_errors",
            "Connections that failed in TLS (certificate, CA, handshake) or its files",
            tls_errors.clone(),
        );
        let batch_rejections = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "batch_rejections",
            "Streams the server ended over its limits, by reason (too_large, throttled)",
            batch_rejections.clone(),
        );
        Self {
            registry,
            auth_failures,
            tls_errors,
            batch_rejections,
            lag_bytes,
            file_lag_bytes,
            files: Mutex::new(Vec::new()),
            containers,
            in_flight,
            acked_sequence,
            decode_errors,
            gaps,
            bytes_lost,
            postures,
            read_failures,
        }
    }

    /// Copies the pipeline's current figures; returns the total lag in bytes.
    pub fn update(&self, pipeline: &Pipeline) -> u64 {
        let lag = pipeline.lag();
        let total: u64 = lag.iter().map(|(_, l)| l).sum();
        let set = |g: &Gauge, v: u64| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        set(&self.lag_bytes, total);
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now: HashMap<&PathBuf, u64> = lag.iter().map(|(p, l)| (p, *l)).collect();
        for gone in files.iter().filter(|p| !now.contains_key(p)) {
            self.file_lag_bytes.remove(&labels(gone));
        }
        for (path, l) in &now {
            set(&self.file_lag_bytes.get_or_create(&labels(path)), *l);
        }
        *files = lag.into_iter().map(|(p, _)| p).collect();
        let stats = pipeline.source_stats();
        set(&self.containers, pipeline.container_count() as u64);
        set(&self.in_flight, pipeline.in_flight_len() as u64);
        set(&self.acked_sequence, pipeline.state().acked_sequence);
        set(&self.decode_errors, stats.decode_errors);
        set(&self.gaps, stats.gaps);
        set(&self.bytes_lost, stats.bytes_lost);
        set(&self.postures, stats.postures);
        set(&self.read_failures, stats.read_failures);
        total
    }

    /// Counts a connection refused as UNAUTHENTICATED or PERMISSION_DENIED.
    pub fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    /// Counts a TLS failure (or unusable TLS files).
    pub fn tls_failed(&self) {
        self.tls_errors.inc();
    }

    /// Counts a stream the server ended over a limit: `too_large` or `throttled`.
    pub fn batch_rejected(&self, reason: &str) {
        self.batch_rejections
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

fn labels(path: &std::path::Path) -> FileLabels {
    vec![("file".to_owned(), path.display().to_string())]
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}

async fn healthz(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let body = serde_json::json!({
        "status": "ok",
        "lag_bytes": metrics.lag_bytes.get(),
        "batches_in_flight": metrics.in_flight.get(),
        "gaps": metrics.gaps.get(),
    });
    (StatusCode::OK, axum::Json(body))
}
