//! The health and metrics view: per-channel state and counters, for `/healthz` and `/metrics`.

use std::fmt::Write as _;

use serde::Serialize;
use time::OffsetDateTime;

use crate::flood::FloodCounters;

/// Delivery state of one channel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelHealth {
    /// The channel's name.
    pub name: String,
    /// `email`, `webhook`, …
    pub kind: String,
    /// False after a failed attempt, until the next success.
    pub up: bool,
    /// Failed attempts since the last success.
    pub consecutive_failures: u64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// Time of the last success.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    /// Notifications delivered.
    pub delivered_total: u64,
    /// Failed attempts.
    pub failed_attempts_total: u64,
    /// Notifications given up (dead letters).
    pub dead_letters_total: u64,
    /// Notifications in the outbox.
    pub pending: usize,
    /// Detections waiting in flood control.
    pub pending_detections: u64,
    /// Flood-control counters.
    pub flood: FloodCounters,
}

/// Alerting as a whole.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// Detections ingested.
    pub detections_total: u64,
    /// Alerts opened.
    pub alerts_opened_total: u64,
    /// Detections folded into an existing alert (dedup).
    pub deduplicated_total: u64,
    /// Detections matched by an active silence at ingest.
    pub silenced_total: u64,
    /// Detections no channel accepted.
    pub unrouted_total: u64,
    /// Alerts stored.
    pub alerts_stored: usize,
    /// Dead letters kept.
    pub dead_letters: usize,
    /// One entry per channel.
    pub channels: Vec<ChannelHealth>,
}

impl Health {
    /// True when every channel is up.
    pub fn all_up(&self) -> bool {
        self.channels.iter().all(|c| c.up)
    }

    /// The channels that are down, by name.
    pub fn down(&self) -> Vec<&str> {
        self.channels
            .iter()
            .filter(|c| !c.up)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// Prometheus text-format lines (`logward_alert_*`), for servers that append them to
    /// their `/metrics`.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        let mut g = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        g(
            "logward_alert_detections_total",
            "Detections ingested.",
            "counter",
            self.detections_total,
        );
        g(
            "logward_alert_alerts_opened_total",
            "Alerts opened.",
            "counter",
            self.alerts_opened_total,
        );
        g(
            "logward_alert_deduplicated_total",
            "Detections folded into an existing alert.",
            "counter",
            self.deduplicated_total,
        );
        g(
            "logward_alert_silenced_total",
            "Detections silenced at ingest.",
            "counter",
            self.silenced_total,
        );
        g(
            "logward_alert_unrouted_total",
            "Detections no channel accepted.",
            "counter",
            self.unrouted_total,
        );
        g(
            "logward_alert_dead_letters",
            "Dead letters kept.",
            "gauge",
            self.dead_letters as u64,
        );
        type Get = fn(&ChannelHealth) -> u64;
        let per_channel: [(&str, &str, &str, Get); 11] = [
            (
                "logward_alert_channel_up",
                "1 when the channel's last attempt succeeded.",
                "gauge",
                |c| u64::from(c.up),
            ),
            (
                "logward_alert_channel_pending",
                "Notifications in the outbox.",
                "gauge",
                |c| c.pending as u64,
            ),
            (
                "logward_alert_channel_delivered_total",
                "Notifications delivered.",
                "counter",
                |c| c.delivered_total,
            ),
            (
                "logward_alert_channel_failed_attempts_total",
                "Failed delivery attempts.",
                "counter",
                |c| c.failed_attempts_total,
            ),
            (
                "logward_alert_channel_dead_letters_total",
                "Notifications given up.",
                "counter",
                |c| c.dead_letters_total,
            ),
            (
                "logward_alert_channel_notifications_total",
                "Notifications made.",
                "counter",
                |c| c.flood.notifications,
            ),
            (
                "logward_alert_channel_folded_total",
                "Detections folded into notifications.",
                "counter",
                |c| c.flood.folded,
            ),
            (
                "logward_alert_channel_silenced_total",
                "Detections silenced at flush.",
                "counter",
                |c| c.flood.silenced,
            ),
            (
                "logward_alert_channel_deferred_realert_total",
                "Groups held back by realert.",
                "counter",
                |c| c.flood.deferred_realert,
            ),
            (
                "logward_alert_channel_deferred_cap_total",
                "Groups held back by the hourly cap.",
                "counter",
                |c| c.flood.deferred_cap,
            ),
            (
                "logward_alert_channel_routed_total",
                "Detections routed to the channel.",
                "counter",
                |c| c.flood.routed,
            ),
        ];
        for (name, help, kind, get) in per_channel {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for c in &self.channels {
                let _ = writeln!(s, "{name}{{channel=\"{}\"}} {}", c.name, get(c));
            }
        }
        s
    }
}
