//! The live tail's fan-out: one task reads the store's tap for every tail client,
//! indexes each round of new batches once in memory, runs every client's query on that
//! one index, and hands each client its matches within a byte budget.
//!
//! Ingest never waits for a tail: the tap is a broadcast the writer never blocks on,
//! and the hub never blocks on a client. A client whose unsent events pass
//! `[limits] tail_max_buffer_bytes` misses the events beyond, counted, and is told so
//! with `event: gap` before its next event.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tantivy::collector::DocSetCollector;
use tantivy::directory::RamDirectory;
use tantivy::query::Query;
use tantivy::{DocId, Index, TantivyDocument};
use tokio::sync::{broadcast, mpsc};
use tracing::debug;

use crate::metrics::Metrics;
use crate::store::event_id::{EventId, event_uid};
use crate::store::schema::EventMeta;
use crate::store::{Store, TapBatch};

/// Most events matched in one in-memory index.
const MAX_EVENTS_PER_ROUND: usize = 20_000;
/// Most items waiting for one client, whatever their size.
const MAX_ITEMS_PER_CLIENT: usize = 1 << 16;

/// An event as its (received_at, uid) key and its JSON text.
pub(crate) type Keyed = ((i64, u64), Arc<str>);

/// What the hub hands a client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Live {
    /// A matching event.
    Event(Keyed),
    /// Events that matched but did not fit the client's buffer.
    Gap { missed: u64 },
    /// The hub itself fell behind the tap by this many batches (every client is told).
    Lagged { missed_batches: u64 },
}

impl Live {
    /// The bytes this item holds against the client's budget.
    pub(crate) fn cost(&self) -> usize {
        match self {
            Live::Event((_, json)) => json.len(),
            _ => 0,
        }
    }
}

/// A client's end: its items and the bytes they hold (decrement as they are sent).
pub(crate) struct LiveReceiver {
    pub(crate) rx: mpsc::Receiver<Live>,
    pub(crate) buffered: Arc<AtomicUsize>,
}

struct Client {
    /// `None` matches every event.
    query: Option<Arc<dyn Query>>,
    tx: mpsc::Sender<Live>,
    buffered: Arc<AtomicUsize>,
    limit: usize,
    missed: u64,
}

/// The fan-out of the tap to tail clients; cheap to clone.
#[derive(Clone)]
pub struct TailHub {
    clients: Arc<Mutex<Vec<Client>>>,
}

impl TailHub {
    /// Starts the hub's task on the store's tap. It ends when the tap closes.
    pub fn start(store: Store, metrics: Arc<Metrics>) -> Self {
        let hub = TailHub {
            clients: Arc::new(Mutex::new(Vec::new())),
        };
        let taps = store.subscribe();
        tokio::spawn(hub.clone().run(store, metrics, taps));
        hub
    }

    /// Adds a client: `query` `None` takes every event; `limit` is its byte budget.
    pub(crate) fn register(&self, query: Option<Box<dyn Query>>, limit: usize) -> LiveReceiver {
        let (tx, rx) = mpsc::channel(MAX_ITEMS_PER_CLIENT);
        let buffered = Arc::new(AtomicUsize::new(0));
        self.lock().push(Client {
            query: query.map(Arc::from),
            tx,
            buffered: buffered.clone(),
            limit,
            missed: 0,
        });
        LiveReceiver { rx, buffered }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn run(
        self,
        store: Store,
        metrics: Arc<Metrics>,
        mut taps: broadcast::Receiver<Arc<TapBatch>>,
    ) {
        loop {
            let first = match taps.recv().await {
                Ok(b) => b,
                Err(broadcast::error::RecvError::Lagged(missed_batches)) => {
                    self.broadcast(&Live::Lagged { missed_batches });
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let mut batches = vec![first];
            let mut n = batches[0].events.len();
            while n < MAX_EVENTS_PER_ROUND {
                match taps.try_recv() {
                    Ok(b) => {
                        n += b.events.len();
                        batches.push(b);
                    }
                    Err(_) => break,
                }
            }
            let queries: Vec<Option<Arc<dyn Query>>> = {
                let mut clients = self.lock();
                clients.retain(|c| !c.tx.is_closed());
                clients.iter().map(|c| c.query.clone()).collect()
            };
            if queries.is_empty() {
                continue;
            }
            let s = store.clone();
            let matched =
                tokio::task::spawn_blocking(move || match_round(&s, &queries, &batches)).await;
            match matched {
                Ok(Ok(per_client)) => self.deliver(per_client, &metrics),
                Ok(Err(message)) => debug!(error = %message, "tail matching failed"),
                Err(e) => debug!(error = %e, "tail matching failed"),
            }
        }
    }

    /// Hands every client its matches, in order, within its byte budget. Clients that
    /// registered during the round (beyond `per_client`) get nothing of it.
    fn deliver(&self, per_client: Vec<Vec<Keyed>>, metrics: &Metrics) {
        let mut clients = self.lock();
        for (client, matches) in clients.iter_mut().zip(per_client) {
            for keyed in matches {
                offer(client, Live::Event(keyed), metrics);
            }
        }
        clients.retain(|c| !c.tx.is_closed());
    }

    fn broadcast(&self, item: &Live) {
        let mut clients = self.lock();
        for client in clients.iter_mut() {
            let _ = client.tx.try_send(item.clone());
        }
        clients.retain(|c| !c.tx.is_closed());
    }
}

/// Queues `item` for `client` if it fits its budget, after a pending gap note once the
/// client has room again; otherwise counts it missed.
fn offer(client: &mut Client, item: Live, metrics: &Metrics) {
    let cost = item.cost();
    let held = client.buffered.load(Ordering::Acquire);
    if client.missed > 0 && held <= client.limit / 2 {
        let gap = Live::Gap {
            missed: client.missed,
        };
        if client.tx.try_send(gap).is_ok() {
            client.missed = 0;
        }
    }
    if client.missed > 0 || held.saturating_add(cost) > client.limit {
        if client.missed == 0 {
            metrics.limit_hit("tail_max_buffer_bytes");
        }
        client.missed += 1;
        return;
    }
    client.buffered.fetch_add(cost, Ordering::AcqRel);
    if client.tx.try_send(item).is_err() {
        client.buffered.fetch_sub(cost, Ordering::AcqRel);
        client.missed += 1;
    }
}

/// Indexes the round's batches once in memory and runs every query on it: per query,
/// the matching events in (received_at, uid) order.
fn match_round(
    store: &Store,
    queries: &[Option<Arc<dyn Query>>],
    batches: &[Arc<TapBatch>],
) -> Result<Vec<Vec<Keyed>>, String> {
    let schema = &store.schema;
    let mut writer = Index::builder()
        .schema(schema.schema.clone())
        .single_segment_index_writer(RamDirectory::create(), 15_000_000)
        .map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    for batch in batches {
        for (i, event) in batch.events.iter().enumerate() {
            let id = EventId::new(&batch.collector_id, batch.sequence, i).to_string();
            let uid = event_uid(&id);
            let meta = EventMeta {
                id: &id,
                uid,
                received_at_nanos: batch.received_at_nanos,
                generation: 0,
            };
            writer
                .add_document(schema.document(event, &meta))
                .map_err(|e| e.to_string())?;
            keys.push((batch.received_at_nanos, uid));
        }
    }
    let index = writer.finalize().map_err(|e| e.to_string())?;
    let searcher = index.reader().map_err(|e| e.to_string())?.searcher();
    // One JSON text per event, made at most once whatever the number of clients.
    let mut json: Vec<Option<Arc<str>>> = vec![None; keys.len()];
    let mut text_of = |doc: DocId| -> Result<Arc<str>, String> {
        let slot = json
            .get_mut(doc as usize)
            .ok_or_else(|| "tail index out of step".to_owned())?;
        if let Some(text) = slot {
            return Ok(text.clone());
        }
        let stored: TantivyDocument = searcher
            .doc(tantivy::DocAddress::new(0, doc))
            .map_err(|e| e.to_string())?;
        let text: Arc<str> = serde_json::to_string(&schema.event_json(&stored))
            .map_err(|e| e.to_string())?
            .into();
        *slot = Some(text.clone());
        Ok(text)
    };
    let mut out = Vec::with_capacity(queries.len());
    for query in queries {
        let mut docs: Vec<DocId> = match query {
            None => (0..u32::try_from(keys.len()).unwrap_or(u32::MAX)).collect(),
            Some(q) => {
                let found: HashSet<tantivy::DocAddress> = searcher
                    .search(q.as_ref(), &DocSetCollector)
                    .map_err(|e| e.to_string())?;
                found.into_iter().map(|a| a.doc_id).collect()
            }
        };
        docs.sort_by_key(|d| keys.get(*d as usize).copied());
        let mut matches = Vec::with_capacity(docs.len());
        for doc in docs {
            let key = keys
                .get(doc as usize)
                .copied()
                .ok_or_else(|| "tail index out of step".to_owned())?;
            matches.push((key, text_of(doc)?));
        }
        out.push(matches);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(limit: usize) -> (Client, LiveReceiver) {
        let (tx, rx) = mpsc::channel(MAX_ITEMS_PER_CLIENT);
        let buffered = Arc::new(AtomicUsize::new(0));
        let c = Client {
            query: None,
            tx,
            buffered: buffered.clone(),
            limit,
            missed: 0,
        };
        (c, LiveReceiver { rx, buffered })
    }

    fn event(n: i64, len: usize) -> Live {
        Live::Event(((n, 0), "x".repeat(len).into()))
    }

    /// A client that reads nothing holds at most its budget; what does not fit is
    /// counted, and once it has read, it hears of the gap before the next event.
    #[test]
    fn a_slow_client_is_bounded_then_told_of_its_gap() {
        let metrics = Metrics::new();
        let (mut c, mut end) = client(1000);
        for n in 0..100 {
            offer(&mut c, event(n, 100), &metrics);
        }
        assert_eq!(end.buffered.load(Ordering::Acquire), 1000);
        assert_eq!(c.missed, 90);
        // The client reads everything it was given.
        let mut got = Vec::new();
        while let Ok(item) = end.rx.try_recv() {
            end.buffered.fetch_sub(item.cost(), Ordering::AcqRel);
            got.push(item);
        }
        assert_eq!(got.len(), 10);
        offer(&mut c, event(100, 100), &metrics);
        assert_eq!(end.rx.try_recv().ok(), Some(Live::Gap { missed: 90 }));
        assert_eq!(end.rx.try_recv().ok(), Some(event(100, 100)));
        assert_eq!(c.missed, 0);
    }

    /// On a real store: a client that reads nothing while 200 KiB are ingested holds at
    /// most its budget, another that reads gets every event, and the first hears of
    /// its gap when it reads again.
    #[tokio::test]
    async fn a_stalled_client_costs_its_budget_only() {
        use crate::store::StoreOptions;
        use logward_proto::Event as WireEvent;
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Arc::new(Metrics::new());
        let (store, _writer) =
            Store::open(dir.path(), &StoreOptions::for_tests(), metrics.clone()).expect("open");
        let hub = TailHub::start(store.clone(), metrics.clone());
        let mut stalled = hub.register(None, 16 * 1024);
        let mut reader = hub.register(None, 1 << 30);
        let line = "y".repeat(1024);
        for seq in 1..=20_u64 {
            let events: Vec<WireEvent> = (0..10)
                .map(|_| WireEvent {
                    timestamp_nanos: 1_000,
                    message: line.clone().into_bytes().into(),
                    ..Default::default()
                })
                .collect();
            store.append("c".into(), seq, events).await.expect("append");
        }
        let mut got = 0;
        while got < 200 {
            match tokio::time::timeout(std::time::Duration::from_secs(30), reader.rx.recv()).await {
                Ok(Some(Live::Event(_))) => got += 1,
                Ok(Some(other)) => panic!("the reading client got {other:?}"),
                _ => panic!("only {got} of 200 events reached the reading client"),
            }
        }
        assert!(stalled.buffered.load(Ordering::Acquire) <= 16 * 1024);
        let mut events = 0;
        while let Ok(item) = stalled.rx.try_recv() {
            stalled.buffered.fetch_sub(item.cost(), Ordering::AcqRel);
            events += 1;
        }
        assert!(
            events < 20,
            "{events} events held for a client that reads nothing"
        );
        store
            .append(
                "c".into(),
                21,
                vec![WireEvent {
                    timestamp_nanos: 1_000,
                    message: b"after".to_vec().into(),
                    ..Default::default()
                }],
            )
            .await
            .expect("append");
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), stalled.rx.recv())
            .await
            .expect("an item");
        assert!(
            matches!(next, Some(Live::Gap { missed }) if missed > 150),
            "{next:?}"
        );
    }
}
