//! Live detection: a thread subscribed to the store's tap runs every new event through
//! the Sigma engine with the event's own timestamp, as the writer takes its batch and
//! before its commit; a timer advances correlation windows to the wall clock and checks
//! the rules directory for changes. Detections are stored (`log.rs`) and handed to
//! alerting through a bounded channel.

pub(crate) mod alerting;
pub(crate) mod log;
pub mod rules;
pub mod silence;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use logward_proto::{Event as WireEvent, Source, StreamKind};
use logward_rules::{Detection, Engine, EventRef, EventView, FieldValues};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{error, info, warn};

use crate::store::event_id::EventId;
use crate::store::schema::{format_nanos, source_name, stream_name};
use crate::store::{Store, TapBatch};
use log::{DetectionLog, StoredDetection};
use rules::{Loader, RulesStatus};

/// Detections waiting for alerting before new ones are dropped from the channel (they
/// stay in the log).
pub const ALERT_CHANNEL: usize = 1024;

/// What the API reads.
pub struct Shared {
    pub status: RwLock<RulesStatus>,
    pub log: Mutex<DetectionLog>,
}

/// Settings of the detector.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    pub data_dir: PathBuf,
    pub builtin: bool,
    pub rules_dir: Option<PathBuf>,
    pub reload_interval: Duration,
    pub advance_interval: Duration,
    /// Report hosts silent for this long (`None`: off).
    pub silent_host_after: Option<Duration>,
}

/// The detector's thread; stop it with the watch given to [`start`].
pub struct DetectorThread(std::thread::JoinHandle<()>);

impl DetectorThread {
    pub async fn join(self) {
        let h = self.0;
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
}

/// An event of the tap as the engine sees it.
struct View<'a> {
    ev: &'a WireEvent,
    msg: Cow<'a, str>,
    id: &'a str,
}

impl EventView for View<'_> {
    fn get(&self, field: &str) -> FieldValues<'_> {
        let c = self.ev.container.as_ref();
        let nonempty = |s: &'_ str| !s.is_empty();
        let v: Option<&str> = match field {
            "message" => Some(&self.msg),
            "id" => Some(self.id),
            "host" => Some(self.ev.host.as_str()).filter(|s| nonempty(s)),
            "source" => Source::try_from(self.ev.source).ok().map(source_name),
            "stream" => StreamKind::try_from(self.ev.stream)
                .ok()
                .and_then(stream_name),
            "container.id" => c.map(|c| c.id.as_str()).filter(|s| nonempty(s)),
            "container.name" => c.map(|c| c.name.as_str()).filter(|s| nonempty(s)),
            "container.image" => c.map(|c| c.image.as_str()).filter(|s| nonempty(s)),
            "container.image_id" => c.map(|c| c.image_id.as_str()).filter(|s| nonempty(s)),
            _ => {
                if let Some(label) = field.strip_prefix("container.labels.") {
                    return c
                        .and_then(|c| c.labels.get(label))
                        .map_or_else(FieldValues::absent, |v| FieldValues::one(v.as_str()));
                }
                let name = field.strip_prefix("fields.").unwrap_or(field);
                return self
                    .ev
                    .fields
                    .get(name)
                    .map_or_else(FieldValues::absent, |v| FieldValues::slice(&v.values));
            }
        };
        v.map_or_else(FieldValues::absent, FieldValues::one)
    }
}

struct Detector {
    engine: Option<Engine>,
    loader: Loader,
    shared: Arc<Shared>,
    alerts: mpsc::Sender<StoredDetection>,
    counter: u64,
    events: u64,
    silence: Option<silence::SilenceTracker>,
}

/// Loads the rules, opens the detection log, and starts the detector thread.
pub fn start(
    store: &Store,
    options: DetectOptions,
    stop: watch::Receiver<bool>,
) -> std::io::Result<(Arc<Shared>, mpsc::Receiver<StoredDetection>, DetectorThread)> {
    let log = DetectionLog::open(&options.data_dir.join("detections"))?;
    let mut loader = Loader::new(options.builtin, options.rules_dir.clone());
    let now = crate::clock::now_nanos();
    let (engine, status) = match loader.reload(now) {
        Ok(Some((e, s))) => (Some(e), s),
        Ok(None) => (None, RulesStatus::default()),
        Err(s) => (None, s),
    };
    let shared = Arc::new(Shared {
        status: RwLock::new(status),
        log: Mutex::new(log),
    });
    let (tx, rx) = mpsc::channel(ALERT_CHANNEL);
    let tap = store.subscribe();
    let mut detector = Detector {
        engine,
        loader,
        shared: shared.clone(),
        alerts: tx,
        counter: 0,
        events: 0,
        silence: options
            .silent_host_after
            .map(|d| silence::SilenceTracker::new(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))),
    };
    let handle = std::thread::Builder::new()
        .name("logward-detect".into())
        .spawn(move || detector.run(tap, stop, &options))?;
    Ok((shared, rx, DetectorThread(handle)))
}

impl Detector {
    fn run(
        &mut self,
        mut tap: broadcast::Receiver<Arc<TapBatch>>,
        mut stop: watch::Receiver<bool>,
        o: &DetectOptions,
    ) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(error) => {
                error!(%error, "cannot start the detector runtime");
                return;
            }
        };
        rt.block_on(async {
            let mut advance = tokio::time::interval(o.advance_interval);
            let mut reload = tokio::time::interval(o.reload_interval);
            advance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    batch = tap.recv() => match batch {
                        Ok(b) => self.batch(&b),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            warn!(batches = n, "detection fell behind ingest; batches were not evaluated");
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = advance.tick() => {
                        let now = crate::clock::now_nanos();
                        let mut fired = self.engine.as_mut().map(|e| e.advance(now)).unwrap_or_default();
                        if let Some(tracker) = self.silence.as_mut() {
                            for (host, last) in tracker.check(now) {
                                warn!(%host, last_event_at = %format_nanos(last), "host stopped sending");
                                fired.push(silence::detection(&host, &format_nanos(last)));
                            }
                        }
                        self.store(fired, &[], now);
                    }
                    _ = reload.tick(), if o.rules_dir.is_some() => self.reload(),
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            while let Ok(b) = tap.try_recv() {
                                self.batch(&b);
                            }
                            break;
                        }
                    }
                }
            }
        });
        info!(events = self.events, "detector stopped");
    }

    fn reload(&mut self) {
        match self.loader.reload(crate::clock::now_nanos()) {
            Ok(None) => {}
            Ok(Some((engine, status))) => {
                self.engine = Some(engine);
                *self
                    .shared
                    .status
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = status;
            }
            Err(refused) => {
                let mut s = self
                    .shared
                    .status
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                s.errors = refused.errors;
            }
        }
    }

    fn batch(&mut self, b: &TapBatch) {
        if let Some(tracker) = self.silence.as_mut() {
            for ev in &b.events {
                tracker.seen(&ev.host, b.received_at_nanos);
            }
        }
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        let mut fired = Vec::new();
        for (i, ev) in b.events.iter().enumerate() {
            let id = EventId::new(&b.collector_id, b.sequence, i).to_string();
            let view = View {
                ev,
                msg: String::from_utf8_lossy(&ev.message),
                id: &id,
            };
            let ts = if ev.timestamp_nanos > 0 {
                ev.timestamp_nanos
            } else {
                b.received_at_nanos
            };
            self.events += 1;
            let r = EventRef {
                index: self.events,
                id: Some(Arc::from(id.as_str())),
            };
            fired.extend(engine.process(&view, ts, &r));
        }
        let hosts: Vec<(String, i64, String)> = b
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                (
                    EventId::new(&b.collector_id, b.sequence, i).to_string(),
                    e.timestamp_nanos,
                    e.host.clone(),
                )
            })
            .collect();
        self.store(fired, &hosts, crate::clock::now_nanos());
    }

    fn store(&mut self, fired: Vec<Detection>, events: &[(String, i64, String)], now: i64) {
        if fired.is_empty() {
            return;
        }
        let batch: Vec<StoredDetection> = fired
            .into_iter()
            .map(|d| {
                self.counter += 1;
                let event_ids: Vec<String> = d
                    .events
                    .iter()
                    .filter_map(|r| r.id.as_deref().map(str::to_owned))
                    .collect();
                let last = event_ids
                    .last()
                    .and_then(|id| events.iter().find(|(e, _, _)| e == id));
                let group_host = d
                    .group
                    .iter()
                    .find(|(k, _)| k == "host")
                    .map(|(_, h)| h.clone());
                StoredDetection {
                    id: format!("{now}-{}", self.counter),
                    detected_at: format_nanos(now),
                    detected_at_nanos: now,
                    event_time: format_nanos(last.map_or(now, |l| l.1)),
                    rule_id: d.rule_id,
                    rule_title: d.rule_title,
                    level: d.level,
                    tags: d.tags,
                    correlation: d.correlation,
                    group: d.group.into_iter().collect(),
                    event_ids,
                    host: last
                        .map(|l| l.2.clone())
                        .or(group_host)
                        .filter(|h| !h.is_empty()),
                }
            })
            .collect();
        let stored = {
            let mut log = self
                .shared
                .log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            log.append(batch)
        };
        match stored {
            Ok(fresh) => {
                for d in fresh {
                    info!(rule = %d.rule_id, level = d.level.as_deref().unwrap_or(""), events = d.event_ids.len(), "detection");
                    let _ = self.alerts.try_send(d);
                }
            }
            Err(error) => error!(%error, "cannot write detections"),
        }
    }
}
