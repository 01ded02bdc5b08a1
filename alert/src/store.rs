//! Alerts: one per (rule, group key) within the dedup window, stored in `alerts.jsonl`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::AlertingConfig;
use crate::detection::{Detection, ExactMessages, Labels, Level, Sample, group_key_string};
use crate::error::Result;
use crate::journal::{Journal, Keyed};

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// New; notifications and reminders go out.
    Open,
    /// Someone looks at it: repeats still count, reminders stop.
    Acknowledged,
    /// Done: the next detection opens a new alert.
    Resolved,
}

/// One alert, as stored and as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique id.
    pub id: String,
    /// The rule's id.
    pub rule_id: String,
    /// The rule's title.
    pub rule_title: String,
    /// The rule's level.
    pub level: Level,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// The group key of the detections.
    pub group_key: BTreeMap<String, String>,
    /// The first detection's event time.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// The last detection's event time.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// Detections folded into this alert.
    pub count: u64,
    /// The first sample events.
    pub samples: Vec<Sample>,
    /// Search API link for the matching events.
    pub link: String,
    /// Open, acknowledged or resolved.
    pub status: AlertStatus,
    /// When the status last changed (or the alert was opened).
    #[serde(with = "time::serde::rfc3339")]
    pub status_changed_at: OffsetDateTime,
    /// The labels of the first detection (host, container, image, fields).
    pub labels: Labels,
    /// The query behind `link`.
    pub query: String,
}

impl Keyed for Alert {
    fn key(&self) -> &str {
        &self.id
    }
}

/// Filters of `GET /api/v1/alerts`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Only alerts last seen at or after this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// Only this rule id.
    pub rule: Option<String>,
    /// Only this level or higher.
    pub level: Option<Level>,
    /// Only this status.
    pub status: Option<AlertStatus>,
    /// At most this many (default 100, at most 1000), newest last-seen first.
    pub limit: Option<usize>,
}

/// The alerts, in memory and in their log.
pub(crate) struct AlertStore {
    journal: Journal,
    alerts: HashMap<String, Alert>,
    /// (rule id, group key string) → id of the newest unresolved alert.
    live: HashMap<(String, String), String>,
}

/// What ingesting one detection did.
pub(crate) struct Folded {
    pub(crate) alert: Alert,
    pub(crate) new_alert: bool,
}

impl AlertStore {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let (journal, alerts) = Journal::open::<Alert>(&dir.join("alerts.jsonl"))?;
        let mut store = AlertStore {
            journal,
            alerts: alerts.into_iter().collect(),
            live: HashMap::new(),
        };
        let mut by_seen: Vec<&Alert> = store.alerts.values().collect();
        by_seen.sort_by_key(|a| a.first_seen);
        for a in by_seen
            .into_iter()
            .filter(|a| a.status != AlertStatus::Resolved)
        {
            store.live.insert(
                (a.rule_id.clone(), group_key_string(&a.group_key)),
                a.id.clone(),
            );
        }
        Ok(store)
    }

    /// Folds detections into alerts (in memory); the caller persists with `save`.
    pub(crate) fn fold(
        &mut self,
        d: &Detection,
        exact: &ExactMessages,
        cfg: &AlertingConfig,
        now: OffsetDateTime,
    ) -> Folded {
        let key = (d.rule_id.clone(), group_key_string(&d.group_key));
        let window = cfg.dedup_window.as_time();
        let existing = self.live.get(&key).and_then(|id| self.alerts.get_mut(id));
        if let Some(a) = existing
            .filter(|a| d.timestamp < a.last_seen + window && a.last_seen < d.timestamp + window)
        {
            a.count += 1;
            a.last_seen = a.last_seen.max(d.timestamp);
            add_samples(&mut a.samples, d, exact, cfg);
            if d.query.is_none() {
                a.query = sample_query(&a.samples);
            }
            a.link = search_link(&cfg.search_base_url, &a.query, a.first_seen, a.last_seen);
            return Folded {
                alert: a.clone(),
                new_alert: false,
            };
        }
        let mut samples = Vec::new();
        add_samples(&mut samples, d, exact, cfg);
        let query = d.query.clone().unwrap_or_else(|| sample_query(&samples));
        let mut labels = d.labels();
        labels.0.remove("tag");
        let alert = Alert {
            id: uuid::Uuid::new_v4().to_string(),
            rule_id: d.rule_id.clone(),
            rule_title: d.rule_title.clone(),
            level: d.level,
            tags: d.tags.clone(),
            group_key: d.group_key.clone(),
            first_seen: d.timestamp,
            last_seen: d.timestamp,
            count: 1,
            link: search_link(&cfg.search_base_url, &query, d.timestamp, d.timestamp),
            samples,
            status: AlertStatus::Open,
            status_changed_at: now,
            labels,
            query,
        };
        self.live.insert(key, alert.id.clone());
        self.alerts.insert(alert.id.clone(), alert.clone());
        Folded {
            alert,
            new_alert: true,
        }
    }

    /// Persists these alerts (synced), compacting and trimming when the log grew.
    pub(crate) fn save(&mut self, ids: &[String], max_alerts: usize) -> Result<()> {
        let put: Vec<&Alert> = ids.iter().filter_map(|id| self.alerts.get(id)).collect();
        self.journal.append(put, [])?;
        if self.alerts.len() > max_alerts || self.journal.wants_compaction(self.alerts.len()) {
            self.trim(max_alerts);
            self.journal.compact(self.alerts.values())?;
        }
        Ok(())
    }

    fn trim(&mut self, max_alerts: usize) {
        if self.alerts.len() <= max_alerts {
            return;
        }
        let mut order: Vec<(bool, OffsetDateTime, String)> = self
            .alerts
            .values()
            .map(|a| (a.status != AlertStatus::Resolved, a.last_seen, a.id.clone()))
            .collect();
        order.sort();
        let excess = self.alerts.len() - max_alerts;
        for (_, _, id) in order.into_iter().take(excess) {
            if let Some(a) = self.alerts.remove(&id) {
                let key = (a.rule_id, group_key_string(&a.group_key));
                if self.live.get(&key) == Some(&id) {
                    self.live.remove(&key);
                }
            }
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Alert> {
        self.alerts.get(id)
    }

    /// Sets the status and persists; `None` when there is no such alert.
    pub(crate) fn set_status(
        &mut self,
        id: &str,
        status: AlertStatus,
        now: OffsetDateTime,
    ) -> Result<Option<Alert>> {
        let Some(a) = self.alerts.get_mut(id) else {
            return Ok(None);
        };
        if a.status != status {
            a.status = status;
            a.status_changed_at = now;
        }
        let a = a.clone();
        if status == AlertStatus::Resolved {
            let key = (a.rule_id.clone(), group_key_string(&a.group_key));
            if self.live.get(&key) == Some(&a.id) {
                self.live.remove(&key);
            }
        }
        self.journal.append([&a], [])?;
        Ok(Some(a))
    }

    pub(crate) fn query(&self, q: &AlertQuery) -> Vec<Alert> {
        let mut out: Vec<&Alert> = self
            .alerts
            .values()
            .filter(|a| q.since.is_none_or(|s| a.last_seen >= s))
            .filter(|a| q.rule.as_ref().is_none_or(|r| &a.rule_id == r))
            .filter(|a| q.level.is_none_or(|l| a.level >= l))
            .filter(|a| q.status.is_none_or(|s| a.status == s))
            .collect();
        out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.id.cmp(&b.id)));
        out.truncate(q.limit.unwrap_or(100).min(1000));
        out.into_iter().cloned().collect()
    }

    pub(crate) fn count(&self) -> usize {
        self.alerts.len()
    }
}

fn add_samples(
    samples: &mut Vec<Sample>,
    d: &Detection,
    exact: &ExactMessages,
    cfg: &AlertingConfig,
) {
    use base64::Engine as _;
    for e in &d.events {
        if samples.len() >= cfg.max_samples {
            break;
        }
        let bytes = exact.get(&e.id).filter(|b| std::str::from_utf8(b).is_err());
        let message = match bytes {
            Some(b) => cut(&String::from_utf8_lossy(b), cfg.max_sample_bytes),
            None => cut(&e.message, cfg.max_sample_bytes),
        };
        samples.push(Sample {
            id: e.id.clone(),
            message,
            message_b64: bytes.map(|b| {
                base64::engine::general_purpose::STANDARD
                    .encode(&b[..b.len().min(cfg.max_sample_bytes)])
            }),
        });
    }
}

/// Cuts a string to at most `max` bytes on a char boundary, marking the cut with `…`.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn sample_query(samples: &[Sample]) -> String {
    if samples.is_empty() {
        return "*".to_owned();
    }
    let ids: Vec<String> = samples
        .iter()
        .map(|s| format!("id:\"{}\"", s.id.replace(['"', '\\'], "")))
        .collect();
    ids.join(" OR ")
}

/// `<base>/api/v1/search?q=…&start=…&end=…`, a minute either side of the alert's span.
pub(crate) fn search_link(
    base: &str,
    query: &str,
    first: OffsetDateTime,
    last: OffsetDateTime,
) -> String {
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    let qs = form_urlencoded::Serializer::new(String::new())
        .append_pair("q", query)
        .append_pair("start", &(ms(first) - 60_000).to_string())
        .append_pair("end", &(ms(last) + 60_000).to_string())
        .finish();
    format!("{}/api/v1/search?{qs}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("héllo", 2), "h…");
        assert_eq!(cut("héllo", 3), "hé…");
    }

    #[test]
    fn link_escapes_the_query() {
        let t = OffsetDateTime::from_unix_timestamp(1_714_557_600).unwrap();
        assert_eq!(
            search_link("http://h:7421/", "id:\"a b\" OR x&y", t, t),
            "http://h:7421/api/v1/search?q=id%3A%22a+b%22+OR+x%26y&start=1714557540000&end=1714557660000"
        );
    }
}
