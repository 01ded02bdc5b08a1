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
pub(crate) mod manifest;
pub(crate) mod partition;
pub mod schema;
mod writer;

pub use error::{Cause, StoreError};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use logward_proto::Event as WireEvent;
use tantivy::directory::MmapDirectory;
use tantivy::query::QueryParser;
use tantivy::tokenizer::TokenizerManager;
use tantivy::{Index, IndexReader, ReloadPolicy, Searcher};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::store::manifest::Manifest;
use crate::store::partition::{RetentionPolicy, day_name, overlaps};
use crate::store::schema::EventSchema;
use crate::store::writer::{Command, WriterState};

/// Batches the tap holds for a slow subscriber before it lags.
const TAP_CAPACITY: usize = 4096;

/// How merges are picked: tantivy's log merge policy, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeOptions {
    /// Segments of one size class that trigger a merge; 0 disables merging.
    pub min_segments: usize,
    /// Segments with more documents are not merged any more.
    pub max_docs: usize,
}

/// Tuning of the writer.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub writer_heap_bytes: usize,
    pub indexing_threads: usize,
    pub max_open_writers: usize,
    pub commit_interval: Duration,
    pub commit_max_docs: usize,
    pub merge: MergeOptions,
    pub retention: RetentionPolicy,
    pub retention_interval: Duration,
}

impl StoreOptions {
    /// Small settings for unit tests.
    pub fn for_tests() -> StoreOptions {
        StoreOptions {
            writer_heap_bytes: 16 << 20,
            indexing_threads: 1,
            max_open_writers: 4,
            commit_interval: Duration::from_millis(5),
            commit_max_docs: 10_000,
            merge: MergeOptions {
                min_segments: 8,
                max_docs: 1_000_000,
            },
            retention: RetentionPolicy {
                max_age_days: 0,
                max_total_bytes: 0,
            },
            retention_interval: Duration::from_secs(3600),
        }
    }
}

/// What the server answers for a stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckInfo {
    pub sequence: u64,
    pub duplicates: u32,
    pub high_water: u64,
}

/// A batch as the writer took it, before its commit: what the tap publishes.
#[derive(Debug)]
pub struct TapBatch {
    pub collector_id: String,
    pub sequence: u64,
    /// Server receive time of the batch; strictly increasing from batch to batch.
    pub received_at_nanos: i64,
    pub events: Vec<WireEvent>,
}

/// One day of the index.
#[derive(Clone)]
pub struct Partition {
    pub day: i64,
    pub index: Index,
    pub reader: IndexReader,
}

/// The partitions by day, shared by the writer (which adds and drops them) and searches.
pub type Partitions = Arc<RwLock<BTreeMap<i64, Partition>>>;

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

/// Opens (or creates) the partition of `day` under `dir`.
pub(crate) fn open_partition(
    dir: &Path,
    day: i64,
    schema: &EventSchema,
) -> Result<Partition, StoreError> {
    let path = dir.join(day_name(day));
    std::fs::create_dir_all(&path).map_err(|source| StoreError::CreateDir {
        path: path.clone(),
        source,
    })?;
    let open_err = |source| StoreError::Open {
        path: path.clone(),
        source,
    };
    let mmap = MmapDirectory::open(&path).map_err(|e| open_err(e.into()))?;
    let index = Index::open_or_create(mmap, schema.schema.clone()).map_err(open_err)?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(open_err)?;
    Ok(Partition { day, index, reader })
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
