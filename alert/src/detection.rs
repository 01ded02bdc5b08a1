//! The input: one detection from the rules engine, its level, and the labels silences match.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A rule's level, as in Sigma; ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// `informational`.
    Informational,
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `critical`.
    Critical,
}

impl Level {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "informational" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => {
                return Err(format!(
                    "unknown level '{s}': expected informational, low, medium, high or critical"
                ));
            }
        })
    }
}

/// One event behind a detection: its id in the index and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleEvent {
    /// The event's `id` in the search index.
    pub id: String,
    /// The log line (may be cut to the configured sample size).
    pub message: String,
}

/// A sample event as alerts keep it and notifications carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// The event's `id` in the search index.
    pub id: String,
    /// The log line as text (cut to `max_sample_bytes`, marked `…`). When the line is not
    /// valid UTF-8 each bad sequence is U+FFFD and `message_b64` has the exact bytes.
    pub message: String,
    /// The exact bytes of the line (standard base64, padded; the first `max_sample_bytes`
    /// bytes), present only when the line is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_b64: Option<String>,
}

/// Exact bytes of sample messages that are not valid UTF-8, by event id; see
/// [`crate::Alerter::ingest_exact`].
pub type ExactMessages = std::collections::HashMap<String, Vec<u8>>;

/// A rule matched: what the server hands to [`crate::Alerter::ingest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The rule's id.
    pub rule_id: String,
    /// The rule's title.
    pub rule_title: String,
    /// The rule's level.
    pub level: Level,
    /// The rule's tags (e.g. `attack.t1059`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Which alert of the rule this belongs to, e.g. `{"host": "web1"}`; empty: one alert
    /// per rule. Use [`Detection::group_key_from_str`] for a plain string key.
    #[serde(default)]
    pub group_key: BTreeMap<String, String>,
    /// When the (last) matching event happened.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The event's host.
    pub host: String,
    /// The container's name, when the event came from one.
    #[serde(default)]
    pub container_name: Option<String>,
    /// The container's image, when the event came from one.
    #[serde(default)]
    pub container_image: Option<String>,
    /// The matching events (ids and messages).
    #[serde(default)]
    pub events: Vec<SampleEvent>,
    /// Further fields silences may match on (`fields.*` of the event, labels).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// A search query selecting the rule's matching events, for the alert's link; without
    /// it the link selects the sample events by id.
    #[serde(default)]
    pub query: Option<String>,
}

impl Detection {
    /// A group key given as one string: `{"key": s}`, or empty for an empty string.
    pub fn group_key_from_str(s: &str) -> BTreeMap<String, String> {
        if s.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([("key".to_owned(), s.to_owned())])
        }
    }

    /// The labels silences and `group_by` see.
    pub fn labels(&self) -> Labels {
        let mut l = Labels::default();
        for (k, v) in self.fields.iter().chain(&self.group_key) {
            l.set(k, v);
        }
        l.set("rule", &self.rule_id);
        l.set("level", self.level.as_str());
        l.set("host", &self.host);
        if let Some(c) = &self.container_name {
            l.set("container", c);
        }
        if let Some(i) = &self.container_image {
            l.set("image", i);
        }
        l.0.insert("tag".to_owned(), self.tags.clone());
        l
    }
}

/// Renders a group key as `k=v,k=v` (sorted), the form used in ids and messages.
pub fn group_key_string(key: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

/// Named values of a detection: `rule`, `level`, `host`, `container`, `image`, `tag` (one
/// per tag), the group key's names and every field. Built-in names win over fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels(pub BTreeMap<String, Vec<String>>);

impl Labels {
    /// Sets a single-valued label.
    pub fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_owned(), vec![value.to_owned()]);
    }

    /// The values of a label (empty when absent).
    pub fn values(&self, name: &str) -> &[String] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }

    /// The first value of a label, or `""`.
    pub fn first(&self, name: &str) -> &str {
        self.values(name).first().map_or("", String::as_str)
    }
}
