//! `[limits]`: every bound the server puts on what clients may ask of it, with its
//! default. Each is enforced where the request arrives, counted in
//! `logward_limit_rejections_total{limit="<key>"}`, and refused with a clear error.

use serde::{Deserialize, Serialize};

/// The server's limits. Defaults suit a 2-core host serving a few hundred collectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest gRPC message, in bytes, after decompression; a larger (or a
    /// compressed message that inflates beyond it) is refused with
    /// `RESOURCE_EXHAUSTED`, not inflated.
    pub grpc_max_message_bytes: usize,
    /// Most events in one batch (`INVALID_ARGUMENT` beyond).
    pub max_events_per_batch: usize,
    /// Most concurrent gRPC streams on one HTTP/2 connection.
    pub max_streams_per_connection: u32,
    /// Most concurrent ingest streams of one collector identity (`RESOURCE_EXHAUSTED`
    /// beyond).
    pub max_streams_per_collector: usize,
    /// Events per second one collector identity may send, averaged; 0 is no limit.
    /// Beyond it the server slows that stream (it stops reading) rather than drop.
    pub collector_events_per_s: u64,
    /// Events one collector may send in a burst above `collector_events_per_s`.
    pub collector_burst_events: u64,
    /// Largest HTTP request body, in bytes (413 beyond).
    pub http_max_body_bytes: usize,
    /// Longest time one HTTP request may take, in ms (408/503 beyond); live tail
    /// streams are exempt.
    pub http_request_timeout_ms: u64,
    /// Longest time a client may take to send a request's headers, in ms; the
    /// connection is closed beyond it (slow-header "slowloris" clients).
    pub http_header_timeout_ms: u64,
    /// Searches and aggregations run at once; more are refused with 429.
    pub max_concurrent_searches: usize,
    /// Time budget of one search or aggregation, in ms (it stops and says so).
    pub search_timeout_ms: u64,
    /// Longest query string, in bytes (400 beyond).
    pub query_max_bytes: usize,
    /// Most terms, phrases and operators in one query (400 beyond).
    pub query_max_clauses: usize,
    /// Live tail streams open at once (429 beyond).
    pub max_tail_clients: usize,
    /// Most bytes of hits in one search response; a page stops there with
    /// `truncated: true` and a cursor to continue (at least one hit is always sent).
    pub search_max_response_bytes: usize,
    /// Most bytes of events waiting to be sent to one live tail client; beyond it the
    /// client gets `event: gap` with the number of events it missed, and catches up.
    pub tail_max_buffer_bytes: usize,
    /// Most bytes of events one tail resume (`Last-Event-ID`) replays; beyond it the
    /// stream says `event: gap` and goes on live.
    pub tail_max_replay_bytes: usize,
    /// Most structured fields one event may carry; the rest are folded into one text
    /// field, `logward.folded_fields`, and the event is flagged.
    pub max_fields_per_event: usize,
    /// Deepest nesting of a YAML rule file (sequences and mappings); deeper files are
    /// refused before they are parsed further.
    pub max_yaml_depth: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            grpc_max_message_bytes: 16 * 1024 * 1024,
            max_events_per_batch: 10_000,
            max_streams_per_connection: 16,
            max_streams_per_collector: 4,
            collector_events_per_s: 0,
            collector_burst_events: 100_000,
            http_max_body_bytes: 1024 * 1024,
            http_request_timeout_ms: 30_000,
            http_header_timeout_ms: 10_000,
            max_concurrent_searches: 8,
            search_timeout_ms: 10_000,
            query_max_bytes: 4096,
            query_max_clauses: 64,
            max_tail_clients: 64,
            search_max_response_bytes: 16 * 1024 * 1024,
            tail_max_buffer_bytes: 4 * 1024 * 1024,
            tail_max_replay_bytes: 16 * 1024 * 1024,
            max_fields_per_event: 256,
            max_yaml_depth: 64,
        }
    }
}

/// A limit set to a value that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("limits.{key} is {value}; it must be between {min} and {max}")]
pub struct LimitError {
    pub key: &'static str,
    pub value: u64,
    pub min: u64,
    pub max: u64,
}

impl LimitsConfig {
    /// Checks every limit lies in a range that works.
    pub fn validate(&self) -> Result<(), LimitError> {
        let checks: [(&'static str, u64, u64, u64); 18] = [
            (
                "grpc_max_message_bytes",
                self.grpc_max_message_bytes as u64,
                64 * 1024,
                1 << 30,
            ),
            (
                "max_events_per_batch",
                self.max_events_per_batch as u64,
                1,
                1_000_000,
            ),
            (
                "max_streams_per_connection",
                u64::from(self.max_streams_per_connection),
                1,
                10_000,
            ),
            (
                "max_streams_per_collector",
                self.max_streams_per_collector as u64,
                1,
                10_000,
            ),
            (
                "collector_burst_events",
                self.collector_burst_events,
                1,
                u64::MAX,
            ),
            (
                "http_max_body_bytes",
                self.http_max_body_bytes as u64,
                1024,
                1 << 30,
            ),
            (
                "http_request_timeout_ms",
                self.http_request_timeout_ms,
                100,
                3_600_000,
            ),
            (
                "http_header_timeout_ms",
                self.http_header_timeout_ms,
                100,
                600_000,
            ),
            (
                "max_concurrent_searches",
                self.max_concurrent_searches as u64,
                1,
                10_000,
            ),
            ("search_timeout_ms", self.search_timeout_ms, 10, 3_600_000),
            ("query_max_bytes", self.query_max_bytes as u64, 16, 1 << 20),
            (
                "query_max_clauses",
                self.query_max_clauses as u64,
                1,
                100_000,
            ),
            ("max_tail_clients", self.max_tail_clients as u64, 1, 100_000),
            (
                "search_max_response_bytes",
                self.search_max_response_bytes as u64,
                64 * 1024,
                1 << 30,
            ),
            (
                "tail_max_buffer_bytes",
                self.tail_max_buffer_bytes as u64,
                64 * 1024,
                1 << 30,
            ),
            (
                "tail_max_replay_bytes",
                self.tail_max_replay_bytes as u64,
                64 * 1024,
                1 << 30,
            ),
            (
                "max_fields_per_event",
                self.max_fields_per_event as u64,
                8,
                100_000,
            ),
            ("max_yaml_depth", self.max_yaml_depth as u64, 8, 1_000),
        ];
        for (key, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(LimitError {
                    key,
                    value,
                    min,
                    max,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str, expected: Result<(), &str>) {
        let parsed: Result<LimitsConfig, String> =
            toml::from_str(toml_text).map_err(|e: toml::de::Error| e.to_string());
        let got = parsed.and_then(|c| c.validate().map_err(|e| e.to_string()));
        match (&got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(g), Err(e)) => assert!(g.contains(e), "{toml_text:?}: {g:?} lacks {e:?}"),
            _ => panic!("{toml_text:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn limits() {
        check("", Ok(()));
        check(
            "max_events_per_batch = 500\ncollector_events_per_s = 1000",
            Ok(()),
        );
        check(
            "max_events_per_batch = 0",
            Err("limits.max_events_per_batch is 0"),
        );
        check(
            "grpc_max_message_bytes = 10",
            Err("grpc_max_message_bytes is 10"),
        );
        check("search_timeout_ms = 1", Err("between 10 and"));
        check("bogus = 1", Err("unknown field `bogus`"));
    }
}
