//! The notification: what the outbox holds and what a channel sends (payload schema v1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::detection::{Level, Sample};
use crate::store::{Alert, AlertStatus};

/// The value of `schema` in every payload.
pub const SCHEMA: &str = "logward.alert.v1";

/// Why a notification was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// New alerts or new detections in the group.
    Firing,
    /// Nothing new, but the group's alerts are still open after `repeat_interval`.
    Reminder,
}

/// One alert inside a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifiedAlert {
    /// The alert's id (`GET /api/v1/alerts/{id}`).
    pub id: String,
    /// The rule's id.
    pub rule_id: String,
    /// The rule's title.
    pub rule_title: String,
    /// The rule's level.
    pub level: Level,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// The alert's group key.
    pub group_key: BTreeMap<String, String>,
    /// The host of the first detection.
    pub host: String,
    /// The container name of the first detection, if any.
    pub container: Option<String>,
    /// The container image of the first detection, if any.
    pub image: Option<String>,
    /// First detection's event time.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// Last detection's event time.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// All detections of the alert so far.
    pub count: u64,
    /// Detections since this channel last notified about the alert.
    pub new_since_last: u64,
    /// Sample events.
    pub samples: Vec<Sample>,
    /// Search API link for the matching events.
    pub link: String,
    /// Open, acknowledged or resolved.
    pub status: AlertStatus,
}

impl NotifiedAlert {
    /// The alert's view for a notification.
    pub fn from_alert(a: &Alert, new_since_last: u64) -> Self {
        let label = |n: &str| Some(a.labels.first(n).to_owned()).filter(|s| !s.is_empty());
        NotifiedAlert {
            id: a.id.clone(),
            rule_id: a.rule_id.clone(),
            rule_title: a.rule_title.clone(),
            level: a.level,
            tags: a.tags.clone(),
            group_key: a.group_key.clone(),
            host: a.labels.first("host").to_owned(),
            container: label("container"),
            image: label("image"),
            first_seen: a.first_seen,
            last_seen: a.last_seen,
            count: a.count,
            new_since_last,
            samples: a.samples.clone(),
            link: a.link.clone(),
            status: a.status,
        }
    }
}

/// A notification: the JSON body of a webhook and the content of an email.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Unique per notification and stable over retries: receivers dedup on it.
    pub idempotency_key: String,
    /// The channel it was made for.
    pub channel: String,
    /// Firing or reminder.
    pub kind: Kind,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The values of the channel's `group_by` labels.
    pub group: BTreeMap<String, String>,
    /// The alerts (at most `max_alerts_per_notification`).
    pub alerts: Vec<NotifiedAlert>,
    /// Alerts left out of `alerts` because of that limit.
    pub omitted_alerts: usize,
    /// Detections left out of `alerts` because of that limit.
    pub omitted_detections: u64,
}

impl Notification {
    /// The highest level in the notification.
    pub fn level(&self) -> Level {
        self.alerts
            .iter()
            .map(|a| a.level)
            .max()
            .unwrap_or(Level::Informational)
    }

    /// Detections since the last notification, over all alerts (listed or omitted).
    pub fn new_detections(&self) -> u64 {
        self.alerts.iter().map(|a| a.new_since_last).sum::<u64>() + self.omitted_detections
    }

    /// The rule title, or "N rules" when several.
    pub fn title(&self) -> String {
        let mut titles: Vec<&str> = self.alerts.iter().map(|a| a.rule_title.as_str()).collect();
        titles.dedup();
        match titles.as_slice() {
            [one] => (*one).to_owned(),
            _ => format!("{} rules", titles.len()),
        }
    }
}

/// A notification with hostile values, for template checks and tests.
pub(crate) fn sample() -> Notification {
    let t = OffsetDateTime::UNIX_EPOCH;
    Notification {
        schema: SCHEMA.to_owned(),
        idempotency_key: "00000000-0000-0000-0000-000000000000".to_owned(),
        channel: "sample".to_owned(),
        kind: Kind::Firing,
        created_at: t,
        group: BTreeMap::new(),
        alerts: vec![NotifiedAlert {
            id: "a1".to_owned(),
            rule_id: "r1".to_owned(),
            rule_title: "<script>\"x\"</script>".to_owned(),
            level: Level::High,
            tags: vec!["attack.t1059".to_owned()],
            group_key: BTreeMap::new(),
            host: "web1\r\nBcc: evil@example.com".to_owned(),
            container: Some("nginx".to_owned()),
            image: Some("nginx:1.25".to_owned()),
            first_seen: t,
            last_seen: t,
            count: 1,
            new_since_last: 1,
            samples: vec![
                Sample {
                    id: "e1".to_owned(),
                    message: "GET /?q=<img src=x onerror=alert(1)> \"' & done\n".to_owned(),
                    message_b64: None,
                },
                Sample {
                    id: "e2".to_owned(),
                    message: "\u{1b}[31mred\u{1b}[0m\r\nSubject: forged\r\n\r\nfake line\0 \u{fffd}\u{202e}".to_owned(),
                    message_b64: Some("G1szMW1yZWQbWzBtDQpTdWJqZWN0OiBmb3JnZWQNCg0KZmFrZSBsaW5lACD/4oCu".to_owned()),
                },
            ],
            link: "http://127.0.0.1:7421/api/v1/search?q=x&start=0".to_owned(),
            status: AlertStatus::Open,
        }],
        omitted_alerts: 0,
        omitted_detections: 0,
    }
}
