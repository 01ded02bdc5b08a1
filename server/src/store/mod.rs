//! The event store: one tantivy index per day partition, written by a single writer
//! thread (`writer.rs`) that group-commits batches and acks them only once they are
//! durable and searchable.
//!
//! Durability: the fsynced manifest (`manifest.rs`) is the one commit point. A commit
//! of generation G first commits every partition that holds documents of G, then writes
//! the manifest with generation G and the per-collector high-water marks, then reloads
//! the readers, then acks. A batch at or below a collector's mark is a resend: acked,
//! not indexed again. After `kill -9` or a failed commit, documents above the manifest's
//! generation are deleted from every partition before anything else is written.
//!
//! Detection seam: every batch that is not a resend is published on a broadcast channel
//! ([`Store::subscribe`]) as soon as the writer takes it, before its commit. The live
//! tail uses it; the rules engine will. A slow subscriber lags and is told how much it
//! missed; it never slows ingest.

mod error;
pub(crate) mod event_id;
pub(crate) mod fields;
mod index;
pub(crate) mod manifest;
mod options;
pub(crate) mod partition;
pub mod schema;
mod writer;

pub(crate) use index::open_partition;
pub use index::{Partition, Partitions};
pub use options::{AckInfo, MergeOptions, StoreOptions, TapBatch};

pub use error::{Cause, StoreError};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use logward_proto::Event as WireEvent;
use tantivy::Searcher;
use tantivy::query::QueryParser;
use tantivy::tokenizer::TokenizerManager;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::store::manifest::Manifest;
use crate::store::partition::overlaps;
use crate::store::schema::EventSchema;
use crate::store::writer::{Command, WriterState};

/// Batches the tap holds for a slow subscriber before it lags.
const TAP_CAPACITY: usize = 4096;

/// A handle to the store, cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub schema: Arc<EventSchema>,
    partitions: Partitions,
    tx: mpsc::Sender<Command>,
    tap: broadcast::Sender<Arc<TapBatch>>,
    committed_received_at: watch::Receiver<i64>,
    tapped_received_at: Arc<std::sync::atomic::AtomicI64>,
}

/// The writer thread; [`Store::shutdown`] stops it after a last commit.
pub struct WriterThread(std::thread::JoinHandle<()>);

impl WriterThread {
    /// Waits for the writer to commit what it holds and exit.
    pub async fn join(self) {
        let handle = self.0;
        let _ = tokio::task::spawn_blocking(move || handle.join()).await;
    }
}

impl Store {
    /// Opens (or creates) the store under `data_dir/partitions`, drops documents of
    /// generations the manifest does not cover, and starts the writer thread.
    pub fn open(
        data_dir: &Path,
        options: &StoreOptions,
        metrics: Arc<Metrics>,
    ) -> Result<(Store, WriterThread), StoreError> {
        let dir = data_dir.join("partitions");
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let legacy = data_dir.join("index").join("meta.json");
        if legacy.exists() {
            warn!(path = %legacy.display(), "an index of the single-index format is present and is not read; events there are not searchable");
        }
        let schema = Arc::new(EventSchema::new());
        Manifest::remove_stale_temps(&dir)?;
        let manifest = Manifest::load(&dir)?;
        let mut parts = BTreeMap::new();
        let entries = std::fs::read_dir(&dir).map_err(|source| StoreError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            if let Some(day) = name.to_str().and_then(partition::parse_day_name) {
                parts.insert(day, open_partition(&dir, day, &schema)?);
            }
        }
        let docs: u64 = parts
            .values()
            .map(|p: &Partition| p.reader.searcher().num_docs())
            .sum();
        info!(
            path = %dir.display(),
            partitions = parts.len(),
            generation = manifest.generation,
            collectors = manifest.collectors.len(),
            docs,
            "store opened"
        );
        let partitions: Partitions = Arc::new(RwLock::new(parts));
        let (tx, rx) = mpsc::channel(1024);
        let (tap, _) = broadcast::channel(TAP_CAPACITY);
        let (committed_tx, committed_rx) = watch::channel(0_i64);
        let tapped = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let mut state = WriterState::new(
            dir,
            schema.clone(),
            partitions.clone(),
            manifest,
            options.clone(),
            metrics,
            tap.clone(),
            committed_tx,
            tapped.clone(),
        );
        state.reconcile_at_open();
        let handle = std::thread::Builder::new()
            .name("logward-writer".into())
            .spawn(move || state.run(rx))
            .map_err(|e| StoreError::Commit {
                message: format!("cannot start writer thread: {e}"),
                cause: Cause::of_io(&e),
            })?;
        Ok((
            Store {
                schema,
                partitions,
                tx,
                tap,
                committed_received_at: committed_rx,
                tapped_received_at: tapped,
            },
            WriterThread(handle),
        ))
    }

    /// Stores a batch; resolves once it is durable (or known to be a resend).
    pub async fn append(
        &self,
        collector_id: String,
        sequence: u64,
        events: Vec<WireEvent>,
    ) -> Result<AckInfo, StoreError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Append {
            collector_id,
            sequence,
            events,
            reply,
        };
        self.tx.send(cmd).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Commits and acks whatever is pending; later batches are refused with
    /// [`StoreError::Closed`]. Searches keep working.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown { done }).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The highest sequence of `collector_id` that is durable.
    pub async fn high_water(&self, collector_id: String) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::HighWater {
                collector_id,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// Searchers of the partitions that overlap `[start, end)`, oldest day first.
    pub fn searchers(&self, start: Option<i64>, end: Option<i64>) -> Vec<(i64, Searcher)> {
        let parts = match self.partitions.read() {
            Ok(parts) => parts,
            Err(poisoned) => poisoned.into_inner(),
        };
        parts
            .values()
            .filter(|p| overlaps(p.day, start, end))
            .map(|p| (p.day, p.reader.searcher()))
            .collect()
    }

    /// A query parser for the event schema, `message` as the default field, AND between
    /// terms.
    pub fn query_parser(&self) -> QueryParser {
        let mut parser = QueryParser::new(
            self.schema.schema.clone(),
            vec![self.schema.message],
            TokenizerManager::default(),
        );
        parser.set_conjunction_by_default();
        parser
    }

    /// Subscribes to batches as the writer takes them, before their commit.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TapBatch>> {
        self.tap.subscribe()
    }

    /// Receive time of the last batch published on the tap.
    pub fn tapped_received_at(&self) -> i64 {
        self.tapped_received_at
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Watches the receive time up to which every tapped batch is committed (or failed).
    pub fn committed_received_at(&self) -> watch::Receiver<i64> {
        self.committed_received_at.clone()
    }
}

#[cfg(test)]
mod tests;
