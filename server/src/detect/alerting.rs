//! Alerting in the server: opens `logward-alert` under `<data_dir>/alerting`, feeds it the
//! detector's channel in batches (converted to `logward_alert::Detection`, with container,
//! sample messages and fields taken from the store's tap), and runs its delivery loop.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use logward_alert::{Alerter, AlertingConfig, Detection, Level, SampleEvent};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, warn};

use crate::detect::log::StoredDetection;
use crate::store::{Store, TapBatch};

/// Most detections handed to one `ingest` call (one fsync).
const MAX_BATCH: usize = 512;
/// Most tap batches kept to look up the events behind detections.
const RECENT_BATCHES: usize = 256;
/// Most events in the kept tap batches.
const RECENT_EVENTS: usize = 200_000;
/// Most event ids put into an alert's search query.
const MAX_QUERY_IDS: usize = 20;

/// The running alerting: the engine and its two tasks.
pub struct Alerting {
    /// The engine (API router, health).
    pub alerter: Alerter,
    feeder: JoinHandle<()>,
    runner: JoinHandle<()>,
    runner_stop: watch::Sender<bool>,
}

impl Alerting {
    /// Opens the alerter under `dir` and starts the feeder of `detections` and the
    /// delivery runner.
    pub fn start(
        config: AlertingConfig,
        dir: &Path,
        store: &Store,
        detections: mpsc::Receiver<StoredDetection>,
    ) -> Result<Alerting, logward_alert::Error> {
        let max_samples = config.max_samples;
        let alerter = Alerter::open(config, dir)?;
        let tap = store.subscribe();
        let feeder = tokio::spawn(feed(alerter.clone(), detections, tap, max_samples));
        let (runner_stop, stop_rx) = watch::channel(false);
        let runner = tokio::spawn(logward_alert::run(alerter.clone(), async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|v| *v).await;
        }));
        Ok(Alerting {
            alerter,
            feeder,
            runner,
            runner_stop,
        })
    }

    /// Waits until the feeder has ingested every detection (the detector must have
    /// stopped, closing the channel), then stops the delivery runner. What is not
    /// delivered stays in the outbox for the next start.
    pub async fn stop(self) {
        if let Err(error) = self.feeder.await {
            warn!(%error, "alert feeder panicked");
        }
        let _ = self.runner_stop.send(true);
        if let Err(error) = self.runner.await {
            warn!(%error, "alert runner panicked");
        }
    }
}

/// Drains the detector's channel in batches; each batch is one blocking `ingest`.
async fn feed(
    alerter: Alerter,
    mut rx: mpsc::Receiver<StoredDetection>,
    mut tap: broadcast::Receiver<Arc<TapBatch>>,
    max_samples: usize,
) {
    let mut recent = Recent::default();
    let mut tap_open = true;
    loop {
        // The tap publishes a batch before the detector sees it, so draining the tap
        // first (biased) finds the events of every detection received after.
        tokio::select! {
            biased;
            b = tap.recv(), if tap_open => match b {
                Ok(b) => recent.push(b),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(batches = n, "alert feeder fell behind the tap; some samples lack messages");
                }
                Err(broadcast::error::RecvError::Closed) => tap_open = false,
            },
            d = rx.recv() => {
                let Some(d) = d else { break };
                let mut batch = vec![d];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(d) => batch.push(d),
                        Err(_) => break,
                    }
                }
                while let Ok(b) = tap.try_recv() {
                    recent.push(b);
                }
                let converted: Vec<Detection> =
                    batch.iter().map(|d| convert(d, &recent, max_samples)).collect();
                // Exact bytes of samples that are not valid UTF-8, so that alerts can
                // carry them (`message_b64`) beside the lossy text.
                let exact: logward_alert::ExactMessages = converted
                    .iter()
                    .flat_map(|d| &d.events)
                    .filter_map(|s| {
                        let e = recent.get(&s.id)?;
                        std::str::from_utf8(&e.message)
                            .is_err()
                            .then(|| (s.id.clone(), e.message.to_vec()))
                    })
                    .collect();
                let a = alerter.clone();
                let n = converted.len();
                match tokio::task::spawn_blocking(move || {
                    a.ingest_exact(&converted, &exact, OffsetDateTime::now_utc())
                })
                .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => error!(%error, detections = n, "cannot ingest detections into alerting"),
                    Err(error) => error!(%error, detections = n, "alert ingest panicked"),
                }
            }
        }
    }
}

/// The last tap batches, by (collector id, sequence).
#[derive(Default)]
struct Recent {
    order: VecDeque<(String, u64)>,
    batches: HashMap<(String, u64), Arc<TapBatch>>,
    events: usize,
}

impl Recent {
    fn push(&mut self, b: Arc<TapBatch>) {
        let key = (b.collector_id.clone(), b.sequence);
        self.events += b.events.len();
        if let Some(old) = self.batches.insert(key.clone(), b) {
            self.events -= old.events.len();
        } else {
            self.order.push_back(key);
        }
        while self.order.len() > RECENT_BATCHES
            || (self.events > RECENT_EVENTS && self.order.len() > 1)
        {
            if let Some(k) = self.order.pop_front()
                && let Some(old) = self.batches.remove(&k)
            {
                self.events -= old.events.len();
            }
        }
    }

    /// The event of an id `<collector>-<sequence>-<index>`.
    fn get(&self, id: &str) -> Option<&logward_proto::Event> {
        let mut parts = id.rsplitn(3, '-');
        let index: usize = parts.next()?.parse().ok()?;
        let sequence: u64 = parts.next()?.parse().ok()?;
        let collector = parts.next()?;
        self.batches
            .get(&(collector.to_owned(), sequence))?
            .events
            .get(index)
    }
}

/// A stored detection as the alerter takes it; what the detection lacks (container,
/// messages, fields) comes from the events in `recent` when they are still there.
fn convert(d: &StoredDetection, recent: &Recent, max_samples: usize) -> Detection {
    let level = d
        .level
        .as_deref()
        .and_then(|l| l.parse::<Level>().ok())
        .unwrap_or(Level::Low);
    let timestamp = OffsetDateTime::parse(&d.event_time, &Rfc3339)
        .or_else(|_| OffsetDateTime::from_unix_timestamp_nanos(i128::from(d.detected_at_nanos)))
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let last = d.event_ids.last().and_then(|id| recent.get(id));
    let container = last.and_then(|e| e.container.as_ref());
    let mut fields = BTreeMap::new();
    if let Some(e) = last {
        for (k, v) in &e.fields {
            if let Some(first) = v.values.first() {
                fields.insert(k.clone(), first.clone());
            }
        }
        if let Some(c) = container {
            for (k, v) in &c.labels {
                fields.insert(format!("container.labels.{k}"), v.clone());
            }
        }
    }
    let events = d
        .event_ids
        .iter()
        .take(max_samples)
        .map(|id| SampleEvent {
            id: id.clone(),
            message: recent
                .get(id)
                .map(|e| String::from_utf8_lossy(&e.message).into_owned())
                .unwrap_or_default(),
        })
        .collect();
    let query = if d.event_ids.is_empty() {
        // A detection without events (e.g. a host that stopped sending): its host.
        d.host
            .as_deref()
            .map(|h| format!("host:\"{}\"", h.replace(['"', '\\'], "")))
    } else {
        let ids: Vec<String> = d
            .event_ids
            .iter()
            .take(MAX_QUERY_IDS)
            .map(|id| format!("id:\"{}\"", id.replace(['"', '\\'], "")))
            .collect();
        Some(ids.join(" OR "))
    };
    Detection {
        rule_id: d.rule_id.clone(),
        rule_title: d.rule_title.clone(),
        level,
        tags: d.tags.clone(),
        group_key: d.group.clone(),
        timestamp,
        host: d
            .host
            .clone()
            .or_else(|| last.map(|e| e.host.clone()))
            .unwrap_or_default(),
        container_name: container.map(|c| c.name.clone()).filter(|n| !n.is_empty()),
        container_image: container.map(|c| c.image.clone()).filter(|i| !i.is_empty()),
        events,
        fields,
        query,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(host: &str, msg: &str) -> logward_proto::Event {
        logward_proto::Event {
            host: host.to_owned(),
            message: msg.as_bytes().to_vec().into(),
            container: Some(logward_proto::Container {
                name: "web".to_owned(),
                image: "nginx:1".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn stored(ids: &[&str]) -> StoredDetection {
        StoredDetection {
            id: "1-1".to_owned(),
            detected_at: "2024-05-01T10:00:08Z".to_owned(),
            detected_at_nanos: 1_714_557_608_000_000_000,
            event_time: "2024-05-01T10:00:07Z".to_owned(),
            rule_id: "r1".to_owned(),
            rule_title: "Rule one".to_owned(),
            level: Some("high".to_owned()),
            tags: vec!["attack.t1059".to_owned()],
            correlation: false,
            group: BTreeMap::new(),
            event_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            host: Some("h1".to_owned()),
        }
    }

    #[test]
    fn converts_with_container_samples_and_query() {
        let mut recent = Recent::default();
        recent.push(Arc::new(TapBatch {
            collector_id: "c0ffee-ab".to_owned(),
            sequence: 7,
            received_at_nanos: 1,
            events: vec![event("h1", "first"), event("h1", "curl x | sh")],
        }));
        let d = convert(&stored(&["c0ffee-ab-7-1", "gone-1-0"]), &recent, 5);
        assert_eq!(d.level, Level::High);
        assert_eq!(d.host, "h1");
        assert_eq!(
            d.container_name.as_deref(),
            None,
            "last event is not in recent"
        );
        assert_eq!(d.events[0].message, "curl x | sh");
        assert_eq!(d.events[1].message, "");
        assert_eq!(
            d.query.as_deref(),
            Some("id:\"c0ffee-ab-7-1\" OR id:\"gone-1-0\"")
        );
        let d = convert(&stored(&["c0ffee-ab-7-1"]), &recent, 5);
        assert_eq!(d.container_name.as_deref(), Some("web"));
        assert_eq!(d.container_image.as_deref(), Some("nginx:1"));
        assert_eq!(d.timestamp.unix_timestamp(), 1_714_557_607);
        let d = convert(&stored(&[]), &recent, 5);
        assert_eq!(d.query.as_deref(), Some("host:\"h1\""));
        assert!(d.events.is_empty());
    }

    #[test]
    fn recent_is_bounded() {
        let mut recent = Recent::default();
        for s in 0..(RECENT_BATCHES as u64 + 10) {
            recent.push(Arc::new(TapBatch {
                collector_id: "c".to_owned(),
                sequence: s,
                received_at_nanos: 1,
                events: vec![event("h", "m")],
            }));
        }
        assert_eq!(recent.batches.len(), RECENT_BATCHES);
        assert!(recent.get("c-0-0").is_none());
        assert!(recent.get(&format!("c-{}-0", RECENT_BATCHES + 9)).is_some());
    }
}
