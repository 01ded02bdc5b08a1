//! The [`Alerter`]: detections in, alerts and notifications out, deliveries through the
//! outbox. Every time-dependent method takes `now`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::config::{AlertingConfig, ChannelConfig};
use crate::detection::{Detection, ExactMessages};
use crate::error::{Error, Result};
use crate::flood::Flood;
use crate::health::{ChannelHealth, Health};
use crate::notify::{self, Notifier};
use crate::outbox::{DeadLetter, Outbox, OutboxEntry};
use crate::silence::{NewSilence, Silence, SilenceStore};
use crate::store::{Alert, AlertQuery, AlertStatus, AlertStore};

/// The alerting engine; cheap to clone (shared state).
#[derive(Clone)]
pub struct Alerter {
    inner: Arc<Inner>,
}

struct Channel {
    config: ChannelConfig,
    notifier: Arc<dyn Notifier>,
}

struct Inner {
    config: AlertingConfig,
    channels: Vec<Channel>,
    state: Mutex<State>,
    pub(crate) wake: tokio::sync::Notify,
}

struct State {
    alerts: AlertStore,
    silences: SilenceStore,
    outbox: Outbox,
    floods: Vec<Flood>,
    health: Health,
    busy: HashSet<String>,
}

/// What one delivery round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Notifications delivered.
    pub delivered: usize,
    /// Failed attempts (retried later).
    pub failed: usize,
    /// Notifications given up.
    pub dead: usize,
}

impl Alerter {
    /// Opens the stores under `data_dir` and builds every channel's sender from config.
    pub fn open(config: AlertingConfig, data_dir: &Path) -> Result<Self> {
        let notifiers = config
            .channels
            .iter()
            .map(|c| {
                Ok((
                    c.name.clone(),
                    notify::from_config(c, &config.allow_targets)?,
                ))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        Self::with_notifiers(config, data_dir, notifiers)
    }

    /// Like [`Alerter::open`] with given senders, one per channel name (a plug point for
    /// channels of your own and for tests).
    pub fn with_notifiers(
        config: AlertingConfig,
        data_dir: &Path,
        mut notifiers: BTreeMap<String, Arc<dyn Notifier>>,
    ) -> Result<Self> {
        config.validate()?;
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io("create", data_dir, e))?;
        let mut channels = Vec::new();
        let mut health = Health::default();
        let mut floods = Vec::new();
        for c in &config.channels {
            let notifier = notifiers
                .remove(&c.name)
                .ok_or_else(|| Error::Config(format!("no sender for channel '{}'", c.name)))?;
            health.channels.push(ChannelHealth {
                name: c.name.clone(),
                kind: notifier.kind().to_owned(),
                up: true,
                ..ChannelHealth::default()
            });
            floods.push(Flood::new(
                &c.name,
                c.flood.clone(),
                config.dedup_window.as_time(),
            ));
            channels.push(Channel {
                config: c.clone(),
                notifier,
            });
        }
        let state = State {
            alerts: AlertStore::open(data_dir)?,
            silences: SilenceStore::open(data_dir)?,
            outbox: Outbox::open(data_dir)?,
            floods,
            health,
            busy: HashSet::new(),
        };
        tracing::info!(channels = channels.len(), data_dir = %data_dir.display(), "alerting ready");
        Ok(Alerter {
            inner: Arc::new(Inner {
                config,
                channels,
                state: Mutex::new(state),
                wake: tokio::sync::Notify::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn config(&self) -> &AlertingConfig {
        &self.inner.config
    }

    pub(crate) fn wake(&self) -> &tokio::sync::Notify {
        &self.inner.wake
    }

    /// Folds detections into alerts (synced to disk before returning) and hands them to
    /// each accepting channel's flood control. Blocking file I/O: call it from
    /// `spawn_blocking` or a thread of its own when latency matters.
    pub fn ingest(&self, detections: &[Detection], now: OffsetDateTime) -> Result<()> {
        self.ingest_exact(detections, &ExactMessages::new(), now)
    }

    /// Like [`Alerter::ingest`], with the exact bytes of sample lines that are not valid
    /// UTF-8 (by event id): alerts and notifications then carry them as `message_b64`.
    pub fn ingest_exact(
        &self,
        detections: &[Detection],
        exact: &ExactMessages,
        now: OffsetDateTime,
    ) -> Result<()> {
        let cfg = &self.inner.config;
        let mut st = self.lock();
        let st = &mut *st;
        let mut changed = Vec::new();
        let mut any_routed = false;
        for d in detections {
            st.health.detections_total += 1;
            let folded = st.alerts.fold(d, exact, cfg, now);
            if folded.new_alert {
                st.health.alerts_opened_total += 1;
                tracing::info!(alert = %folded.alert.id, rule = %d.rule_id, level = %d.level, "alert opened");
            } else {
                st.health.deduplicated_total += 1;
            }
            if !changed.contains(&folded.alert.id) {
                changed.push(folded.alert.id.clone());
            }
            let labels = d.labels();
            if let Some(silence) = st.silences.matching(&labels, now) {
                tracing::debug!(rule = %d.rule_id, silence, "detection silenced");
                st.health.silenced_total += 1;
                continue;
            }
            let mut routed = false;
            for (ch, flood) in self.inner.channels.iter().zip(&mut st.floods) {
                if ch.config.accepts(d.level, &d.tags) {
                    flood.observe(&folded.alert, &labels, now);
                    routed = true;
                }
            }
            if !routed {
                st.health.unrouted_total += 1;
            }
            any_routed |= routed;
        }
        st.alerts.save(&changed, cfg.max_alerts)?;
        // Wake the runner now, not at its next tick: a group with no wait is due at once.
        if any_routed {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// Turns due notification groups into outbox entries (synced); returns how many.
    pub fn tick(&self, now: OffsetDateTime) -> Result<usize> {
        let mut st = self.lock();
        let st = &mut *st;
        let mut new = Vec::new();
        let silences = &st.silences;
        let silenced = |l: &crate::detection::Labels| silences.matching(l, now).is_some();
        for flood in &mut st.floods {
            for mut n in flood.flush(now, &silenced) {
                let id = uuid::Uuid::new_v4().to_string();
                n.idempotency_key = id.clone();
                tracing::info!(channel = %n.channel, key = %id, alerts = n.alerts.len(), new = n.new_detections(), "notification queued");
                new.push(OutboxEntry {
                    id,
                    channel: n.channel.clone(),
                    notification: n,
                    attempts: 0,
                    next_attempt_at: now,
                    last_error: None,
                });
            }
        }
        let count = new.len();
        st.outbox.enqueue(new)?;
        st.silences.gc(now)?;
        if count > 0 {
            self.inner.wake.notify_one();
        }
        Ok(count)
    }

    /// Sends every due outbox entry once (channels in parallel, entries of one channel in
    /// order) and records the outcome.
    pub async fn deliver_due(&self, now: OffsetDateTime) -> DeliveryReport {
        let mut per_channel: BTreeMap<usize, Vec<OutboxEntry>> = BTreeMap::new();
        {
            let mut st = self.lock();
            let due = st.outbox.due(now, &st.busy);
            for e in due {
                match self
                    .inner
                    .channels
                    .iter()
                    .position(|c| c.config.name == e.channel)
                {
                    Some(i) => {
                        st.busy.insert(e.id.clone());
                        per_channel.entry(i).or_default().push(e);
                    }
                    None => {
                        tracing::warn!(channel = %e.channel, key = %e.id, "outbox entry for a channel no longer configured is kept");
                    }
                }
            }
        }
        let mut set = JoinSet::new();
        for (i, entries) in per_channel {
            let this = self.clone();
            set.spawn(async move {
                let mut report = DeliveryReport::default();
                for e in entries {
                    let notifier = Arc::clone(&this.inner.channels[i].notifier);
                    let result = notifier.send(&e.notification, e.attempts + 1).await;
                    this.record(i, &e, result, now, &mut report);
                }
                report
            });
        }
        let mut total = DeliveryReport::default();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                total.delivered += r.delivered;
                total.failed += r.failed;
                total.dead += r.dead;
            }
        }
        total
    }

    fn record(
        &self,
        i: usize,
        e: &OutboxEntry,
        result: Result<(), notify::NotifyError>,
        now: OffsetDateTime,
        report: &mut DeliveryReport,
    ) {
        let ch = &self.inner.channels[i].config;
        let mut st = self.lock();
        let st = &mut *st;
        st.busy.remove(&e.id);
        let h = &mut st.health.channels[i];
        match result {
            Ok(()) => {
                h.up = true;
                h.consecutive_failures = 0;
                h.last_success_at = Some(now);
                h.delivered_total += 1;
                report.delivered += 1;
                tracing::info!(channel = %ch.name, key = %e.id, attempt = e.attempts + 1, "notification delivered");
                if let Err(err) = st.outbox.delivered(&e.id) {
                    tracing::error!(channel = %ch.name, key = %e.id, error = %err, "cannot record a delivery; it will be sent again");
                }
            }
            Err(err) => {
                h.up = false;
                h.consecutive_failures += 1;
                h.failed_attempts_total += 1;
                h.last_error = Some(err.message.clone());
                report.failed += 1;
                tracing::warn!(channel = %ch.name, key = %e.id, attempt = e.attempts + 1, permanent = err.permanent, error = %err.message, "delivery failed");
                match st.outbox.failed(
                    &e.id,
                    &err.message,
                    err.permanent,
                    &ch.retry,
                    self.inner.config.max_dead_letters,
                    now,
                ) {
                    Ok(true) => {
                        st.health.channels[i].dead_letters_total += 1;
                        report.dead += 1;
                        tracing::error!(channel = %ch.name, key = %e.id, "notification moved to the dead letters");
                    }
                    Ok(false) => {}
                    Err(err) => {
                        tracing::error!(channel = %ch.name, key = %e.id, error = %err, "cannot record a failed delivery");
                    }
                }
            }
        }
    }

    /// Alerts matching the query, newest last-seen first.
    pub fn alerts(&self, q: &AlertQuery) -> Vec<Alert> {
        self.lock().alerts.query(q)
    }

    /// One alert.
    pub fn alert(&self, id: &str) -> Option<Alert> {
        self.lock().alerts.get(id).cloned()
    }

    /// Acknowledges an alert: repeats still count, reminders stop.
    pub fn acknowledge(&self, id: &str, now: OffsetDateTime) -> Result<Alert> {
        self.set_status(id, AlertStatus::Acknowledged, now)
    }

    /// Resolves an alert: the next detection opens a new one.
    pub fn resolve(&self, id: &str, now: OffsetDateTime) -> Result<Alert> {
        self.set_status(id, AlertStatus::Resolved, now)
    }

    fn set_status(&self, id: &str, status: AlertStatus, now: OffsetDateTime) -> Result<Alert> {
        let mut st = self.lock();
        let a = st
            .alerts
            .set_status(id, status, now)?
            .ok_or_else(|| Error::NotFound(format!("no alert '{id}'")))?;
        for f in &mut st.floods {
            f.update_alert(&a);
        }
        tracing::info!(alert = %id, status = ?status, "alert status changed");
        Ok(a)
    }

    /// Creates a silence.
    pub fn create_silence(&self, req: NewSilence, now: OffsetDateTime) -> Result<Silence> {
        let s = req.build(now)?;
        self.lock().silences.add(s.clone())?;
        tracing::info!(silence = %s.id, ends_at = %s.ends_at, "silence created");
        Ok(s)
    }

    /// Every silence, expired ones included (for a day after they ended).
    pub fn silences(&self) -> Vec<Silence> {
        self.lock().silences.list()
    }

    /// Expires a silence now.
    pub fn expire_silence(&self, id: &str, now: OffsetDateTime) -> Result<Silence> {
        let s = self
            .lock()
            .silences
            .expire(id, now)?
            .ok_or_else(|| Error::NotFound(format!("no silence '{id}'")))?;
        tracing::info!(silence = %id, "silence expired");
        Ok(s)
    }

    /// Notifications given up, newest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().outbox.dead_letters()
    }

    /// Notifications in the outbox.
    pub fn pending(&self) -> Vec<OutboxEntry> {
        self.lock().outbox.pending()
    }

    /// The health and counters now.
    pub fn health(&self) -> Health {
        let st = self.lock();
        let mut h = st.health.clone();
        let pending = st.outbox.pending_by_channel();
        for (c, f) in h.channels.iter_mut().zip(&st.floods) {
            c.pending = pending.get(&c.name).copied().unwrap_or(0);
            c.pending_detections = f.pending();
            c.flood = f.counters();
        }
        h.alerts_stored = st.alerts.count();
        h.dead_letters = st.outbox.dead_letters().len();
        h
    }
}
