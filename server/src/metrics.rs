//! The server's counters, exposed at `GET /metrics` in Prometheus text format, and the
//! health state behind `GET /healthz`.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Every metric of the server. Counters are cheap atomics, safe to bump on hot paths.
pub struct Metrics {
    registry: Registry,
    pub events_received: Counter,
    pub events_indexed: Counter,
    pub events_rejected: Counter,
    pub events_duplicate: Counter,
    pub bytes_received: Counter,
    pub batches_received: Counter,
    pub commits: Counter,
    pub commit_failures: Counter,
    /// Events whose timestamp was outside 1970..2200, stored at their receive time.
    pub events_out_of_range: Counter,
    /// Partitions committed ahead of their group commit to keep at most
    /// `max_open_writers` index writers (a batch that spans many days).
    pub early_partition_commits: Counter,
    pub streams_open: Gauge,
    pub searches: Counter,
    pub searches_rejected: Counter,
    pub searches_timed_out: Counter,
    pub partitions: Gauge,
    pub partitions_deleted: Counter,
    pub tail_clients: Gauge,
    /// Requests refused by a limit, by `limit` (see `Metrics::limit_hit`).
    limit_rejections: Family<Vec<(String, String)>, Counter>,
    /// Failed authentications, by `surface` (`grpc`, `http`) and `reason`.
    auth_failures: Family<Vec<(String, String)>, Counter>,
    store_healthy: Gauge,
    store_error: Mutex<Option<String>>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("logward");
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let events_received = counter("events_received", "Events received over gRPC");
        let events_indexed = counter("events_indexed", "Events committed to the index");
        let events_rejected = counter(
            "events_rejected",
            "Events refused (invalid batch or store failure)",
        );
        let events_duplicate = counter(
            "events_duplicate",
            "Events of resent batches, acked without indexing them again",
        );
        let bytes_received = counter("bytes_received", "Bytes of event messages received");
        let batches_received = counter("batches_received", "Batches received");
        let commits = counter("commits", "Index commits");
        let commit_failures = counter(
            "commit_failures",
            "Index commits that failed; their batches were not acked",
        );
        let events_out_of_range = counter(
            "events_timestamp_out_of_range",
            "Events whose timestamp was outside 1970..2200; stored at their receive time",
        );
        let early_partition_commits = counter(
            "early_partition_commits",
            "Partitions committed ahead of the group commit to stay within index.max_open_writers",
        );
        let searches = counter("searches", "Search requests served");
        let searches_rejected = counter("searches_rejected", "Search requests refused as invalid");
        let searches_timed_out = counter(
            "searches_timed_out",
            "Searches stopped at their time budget",
        );
        let partitions_deleted =
            counter("partitions_deleted", "Day partitions deleted by retention");
        let partitions = Gauge::default();
        registry.register(
            "partitions",
            "Day partitions in the store",
            partitions.clone(),
        );
        let tail_clients = Gauge::default();
        registry.register(
            "tail_clients",
            "Open live-tail streams",
            tail_clients.clone(),
        );
        let streams_open = Gauge::default();
        registry.register(
            "ingest_streams_open",
            "Open collector streams",
            streams_open.clone(),
        );
        let limit_rejections = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "limit_rejections",
            "Requests, batches or events refused by a configured limit, by limit",
            limit_rejections.clone(),
        );
        let auth_failures = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "auth_failures",
            "Failed authentications or authorizations, by surface and reason",
            auth_failures.clone(),
        );
        let store_healthy = Gauge::default();
        store_healthy.set(1);
        registry.register(
            "store_healthy",
            "1 while the last commit succeeded",
            store_healthy.clone(),
        );
        Metrics {
            registry,
            events_received,
            events_indexed,
            events_rejected,
            events_duplicate,
            bytes_received,
            batches_received,
            commits,
            commit_failures,
            events_out_of_range,
            early_partition_commits,
            streams_open,
            searches,
            searches_rejected,
            searches_timed_out,
            partitions,
            partitions_deleted,
            tail_clients,
            limit_rejections,
            auth_failures,
            store_healthy,
            store_error: Mutex::new(None),
        }
    }

    /// Counts one refusal by the limit named `limit` (the key of `[limits]`, e.g.
    /// `max_events_per_batch`).
    pub fn limit_hit(&self, limit: &str) {
        self.limit_rejections
            .get_or_create(&vec![("limit".to_owned(), limit.to_owned())])
            .inc();
    }

    /// Counts one failed authentication or authorization on `surface` (`grpc` or
    /// `http`), e.g. `missing_token`, `bad_token`, `forbidden`, `identity_mismatch`.
    pub fn auth_failed(&self, surface: &str, reason: &str) {
        self.auth_failures
            .get_or_create(&vec![
                ("surface".to_owned(), surface.to_owned()),
                ("reason".to_owned(), reason.to_owned()),
            ])
            .inc();
    }

    /// Records the outcome of the last commit.
    pub fn set_store_error(&self, error: Option<String>) {
        self.store_healthy.set(i64::from(error.is_none()));
        if let Ok(mut slot) = self.store_error.lock() {
            *slot = error;
        }
    }

    /// The last store error, if the store is unhealthy.
    pub fn store_error(&self) -> Option<String> {
        self.store_error.lock().ok().and_then(|slot| slot.clone())
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_prefix_and_total_suffix() {
        let m = Metrics::new();
        m.events_received.inc_by(3);
        let text = m.render();
        assert!(text.contains("logward_events_received_total 3"), "{text}");
        assert!(text.contains("logward_store_healthy 1"), "{text}");
        m.set_store_error(Some("disk full".into()));
        assert!(m.render().contains("logward_store_healthy 0"));
        assert_eq!(m.store_error().as_deref(), Some("disk full"));
        m.limit_hit("max_events_per_batch");
        m.auth_failed("grpc", "bad_token");
        let text = m.render();
        assert!(
            text.contains("logward_limit_rejections_total{limit=\"max_events_per_batch\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("logward_auth_failures_total{surface=\"grpc\",reason=\"bad_token\"} 1"),
            "{text}"
        );
    }
}
