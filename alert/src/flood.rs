//! Flood control of one channel: grouping, realert, repeat and the hourly cap. Pure: every
//! decision takes `now`, nothing here does I/O.
//!
//! Alerts enter with [`Flood::observe`] (one call per routed detection); [`Flood::flush`]
//! turns due groups into notifications. Detections never get lost here: a detection held
//! back by realert or the cap stays pending and is counted in the next notification's
//! `new_since_last`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::config::FloodConfig;
use crate::detection::{Labels, group_key_string};
use crate::notification::{Kind, Notification, NotifiedAlert, SCHEMA};
use crate::store::{Alert, AlertStatus};

/// What flood control did, per channel; every suppression is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FloodCounters {
    /// Detections routed to the channel.
    pub routed: u64,
    /// Detections that went out folded into a notification about their alert instead of
    /// one of their own (dedup and grouping).
    pub folded: u64,
    /// Detections dropped because a silence matched when their group was flushed.
    pub silenced: u64,
    /// Times a due group was held back by `realert`.
    pub deferred_realert: u64,
    /// Times a due group was held back by `max_per_hour`.
    pub deferred_cap: u64,
    /// Notifications made.
    pub notifications: u64,
    /// Reminders among them.
    pub reminders: u64,
}

struct Entry {
    alert: Alert,
    labels: Labels,
    new: u64,
}

struct Group {
    labels: BTreeMap<String, String>,
    created: OffsetDateTime,
    last_notified: Option<OffsetDateTime>,
    entries: BTreeMap<String, Entry>,
    held_by_realert: bool,
    held_by_cap: bool,
}

/// The flood state of one channel.
pub struct Flood {
    channel: String,
    cfg: FloodConfig,
    stale_after: Duration,
    groups: BTreeMap<String, Group>,
    last_by_alert_key: HashMap<String, OffsetDateTime>,
    sent: VecDeque<OffsetDateTime>,
    counters: FloodCounters,
}

impl Flood {
    /// Flood control for `channel`; alerts with no detection for `stale_after` (the dedup
    /// window) stop getting reminders.
    pub fn new(channel: &str, cfg: FloodConfig, stale_after: Duration) -> Self {
        Flood {
            channel: channel.to_owned(),
            cfg,
            stale_after,
            groups: BTreeMap::new(),
            last_by_alert_key: HashMap::new(),
            sent: VecDeque::new(),
            counters: FloodCounters::default(),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> FloodCounters {
        self.counters
    }

    /// Detections waiting for a notification.
    pub fn pending(&self) -> u64 {
        self.groups
            .values()
            .flat_map(|g| g.entries.values())
            .map(|e| e.new)
            .sum()
    }

    /// One detection of `alert` (its state after the detection) with the detection's labels.
    pub fn observe(&mut self, alert: &Alert, labels: &Labels, now: OffsetDateTime) {
        self.counters.routed += 1;
        let group_labels: BTreeMap<String, String> = self
            .cfg
            .group_by
            .iter()
            .map(|name| (name.clone(), labels.values(name).join(",")))
            .collect();
        let key = group_key_string(&group_labels);
        let group = self.groups.entry(key).or_insert_with(|| Group {
            labels: group_labels,
            created: now,
            last_notified: None,
            entries: BTreeMap::new(),
            held_by_realert: false,
            held_by_cap: false,
        });
        let entry = group
            .entries
            .entry(alert.id.clone())
            .or_insert_with(|| Entry {
                alert: alert.clone(),
                labels: labels.clone(),
                new: 0,
            });
        entry.alert = alert.clone();
        entry.labels = labels.clone();
        entry.new += 1;
    }

    /// The alert changed status (ack, resolve): reminders follow the new status.
    pub fn update_alert(&mut self, alert: &Alert) {
        for g in self.groups.values_mut() {
            if let Some(e) = g.entries.get_mut(&alert.id) {
                e.alert.status = alert.status;
            }
        }
    }

    fn realert_for(&self, rule: &str) -> Duration {
        self.cfg
            .realert_per_rule
            .get(rule)
            .copied()
            .unwrap_or(self.cfg.realert)
            .as_time()
    }

    /// Notifications due at `now`. `silenced` says whether a detection's labels are
    /// silenced now.
    pub fn flush(
        &mut self,
        now: OffsetDateTime,
        silenced: &dyn Fn(&Labels) -> bool,
    ) -> Vec<Notification> {
        while self
            .sent
            .front()
            .is_some_and(|t| *t + Duration::HOUR <= now)
        {
            self.sent.pop_front();
        }
        let keys: Vec<String> = self.groups.keys().cloned().collect();
        let mut out = Vec::new();
        for key in keys {
            if let Some(n) = self.flush_group(&key, now, silenced) {
                out.push(n);
            }
            if let Some(g) = self.groups.get_mut(&key) {
                let stale = self.stale_after;
                g.entries.retain(|_, e| {
                    e.new > 0
                        || (e.alert.status == AlertStatus::Open && e.alert.last_seen + stale >= now)
                });
                if g.entries.is_empty() {
                    self.groups.remove(&key);
                }
            }
        }
        out
    }

    fn flush_group(
        &mut self,
        key: &str,
        now: OffsetDateTime,
        silenced: &dyn Fn(&Labels) -> bool,
    ) -> Option<Notification> {
        let realert: HashMap<String, Duration> = self
            .groups
            .get(key)?
            .entries
            .values()
            .map(|e| (e.alert.rule_id.clone(), self.realert_for(&e.alert.rule_id)))
            .collect();
        let g = self.groups.get_mut(key)?;
        for e in g.entries.values_mut().filter(|e| e.new > 0) {
            if silenced(&e.labels) {
                self.counters.silenced += e.new;
                e.new = 0;
            }
        }
        let pending = g.entries.values().any(|e| e.new > 0);
        let firing_due = match g.last_notified {
            None => now >= g.created + self.cfg.group_wait.as_time(),
            Some(t) => now >= t + self.cfg.group_interval.as_time(),
        };
        let repeat = self.cfg.repeat_interval;
        let reminder_due = !repeat.is_zero()
            && g.last_notified.is_some_and(|t| now >= t + repeat.as_time())
            && g.entries
                .values()
                .any(|e| e.alert.status == AlertStatus::Open && !silenced(&e.labels));
        let kind = if pending && firing_due {
            Kind::Firing
        } else if reminder_due {
            Kind::Reminder
        } else {
            return None;
        };
        let selected: Vec<String> = g
            .entries
            .iter()
            .filter(|(_, e)| match kind {
                Kind::Firing => {
                    e.new > 0
                        && self
                            .last_by_alert_key
                            .get(&alert_key(&e.alert))
                            .is_none_or(|t| now >= *t + realert[&e.alert.rule_id])
                }
                Kind::Reminder => e.alert.status == AlertStatus::Open && !silenced(&e.labels),
            })
            .map(|(id, _)| id.clone())
            .collect();
        if selected.is_empty() {
            if !g.held_by_realert {
                g.held_by_realert = true;
                self.counters.deferred_realert += 1;
            }
            return None;
        }
        if self.cfg.max_per_hour > 0 && self.sent.len() >= self.cfg.max_per_hour as usize {
            if !g.held_by_cap {
                g.held_by_cap = true;
                self.counters.deferred_cap += 1;
            }
            return None;
        }
        let mut alerts: Vec<NotifiedAlert> = Vec::new();
        for id in &selected {
            if let Some(e) = g.entries.get_mut(id) {
                alerts.push(NotifiedAlert::from_alert(&e.alert, e.new));
                self.counters.folded += e.new.saturating_sub(1);
                self.last_by_alert_key.insert(alert_key(&e.alert), now);
                e.new = 0;
            }
        }
        alerts.sort_by(|a, b| {
            b.level
                .cmp(&a.level)
                .then(b.new_since_last.cmp(&a.new_since_last))
        });
        let keep = self.cfg.max_alerts_per_notification;
        let omitted: Vec<NotifiedAlert> = alerts.split_off(keep.min(alerts.len()));
        g.last_notified = Some(now);
        g.held_by_cap = false;
        g.held_by_realert = false;
        self.sent.push_back(now);
        self.counters.notifications += 1;
        if kind == Kind::Reminder {
            self.counters.reminders += 1;
        }
        Some(Notification {
            schema: SCHEMA.to_owned(),
            idempotency_key: String::new(),
            channel: self.channel.clone(),
            kind,
            created_at: now,
            group: g.labels.clone(),
            alerts,
            omitted_alerts: omitted.len(),
            omitted_detections: omitted.iter().map(|a| a.new_since_last).sum(),
        })
    }
}

fn alert_key(a: &Alert) -> String {
    format!("{}\u{1f}{}", a.rule_id, group_key_string(&a.group_key))
}
