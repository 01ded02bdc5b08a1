//! The event store: one tantivy index, written by a single writer thread that group-commits
//! batches and acks them only once they are durable and searchable.
//!
//! Durability follows the Quickwit pattern: every commit carries, in its payload, the
//! highest batch sequence it holds per collector. A batch at or below that mark is a
//! resend and is acked without being indexed again. After `kill -9`, whatever was not
//! committed was never acked, so the collector sends it again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logward_proto::Event as WireEvent;
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;
use crate::schema::{EventMeta, EventSchema, event_id, event_uid};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the index in {path}: {source}")]
    Open {
        path: PathBuf,
        source: tantivy::TantivyError,
    },
    #[error("the index commit payload in {path} is unreadable: {message}")]
    Payload { path: PathBuf, message: String },
    #[error("commit failed, batch not stored: {0}")]
    Commit(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("search failed: {0}")]
    Search(#[from] tantivy::TantivyError),
}

/// Tuning of the writer.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub writer_heap_bytes: usize,
    pub commit_interval: Duration,
    pub commit_max_docs: usize,
}

/// What the server answers for a stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckInfo {
    pub sequence: u64,
    pub duplicates: u32,
    pub high_water: u64,
}

enum Command {
    Append {
        collector_id: String,
        sequence: u64,
        events: Vec<WireEvent>,
        received_at_nanos: i64,
        reply: oneshot::Sender<Result<AckInfo, StoreError>>,
    },
    HighWater {
        collector_id: String,
        reply: oneshot::Sender<u64>,
    },
    /// Commit and ack what is pending, then stop taking batches.
    Shutdown { done: oneshot::Sender<()> },
}

/// The commit payload: per-collector high-water marks.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Payload {
    version: u32,
    collectors: HashMap<String, u64>,
}

/// A handle to the store, cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub schema: Arc<EventSchema>,
    pub index: Index,
    pub reader: IndexReader,
    tx: mpsc::Sender<Command>,
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
    /// Opens (or creates) the index under `data_dir/index` and starts the writer thread.
    pub fn open(
        data_dir: &Path,
        options: &StoreOptions,
        metrics: Arc<Metrics>,
    ) -> Result<(Store, WriterThread), StoreError> {
        let path = data_dir.join("index");
        std::fs::create_dir_all(&path).map_err(|source| StoreError::CreateDir {
            path: path.clone(),
            source,
        })?;
        let schema = Arc::new(EventSchema::new());
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let dir = MmapDirectory::open(&path).map_err(|e| open_err(e.into()))?;
        let index = Index::open_or_create(dir, schema.schema.clone()).map_err(open_err)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(open_err)?;
        let payload = read_payload(&index).map_err(|message| StoreError::Payload {
            path: path.clone(),
            message,
        })?;
        let writer: IndexWriter = index.writer(options.writer_heap_bytes).map_err(open_err)?;
        info!(
            path = %path.display(),
            collectors = payload.collectors.len(),
            docs = reader.searcher().num_docs(),
            "index opened"
        );
        let (tx, rx) = mpsc::channel(1024);
        let state = WriterState {
            writer,
            reader: reader.clone(),
            schema: schema.clone(),
            committed: payload.collectors.clone(),
            pending_hw: payload.collectors,
            pending: Vec::new(),
            pending_docs: 0,
            metrics,
        };
        let options = options.clone();
        let handle = std::thread::Builder::new()
            .name("logward-writer".into())
            .spawn(move || state.run(rx, &options))
            .map_err(|e| StoreError::Commit(format!("cannot start writer thread: {e}")))?;
        Ok((
            Store {
                schema,
                index,
                reader,
                tx,
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
        received_at_nanos: i64,
    ) -> Result<AckInfo, StoreError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Append {
            collector_id,
            sequence,
            events,
            received_at_nanos,
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
}

fn read_payload(index: &Index) -> Result<Payload, String> {
    let metas = index.load_metas().map_err(|e| e.to_string())?;
    match metas.payload {
        None => Ok(Payload::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| e.to_string()),
    }
}

struct WriterState {
    writer: IndexWriter,
    reader: IndexReader,
    schema: Arc<EventSchema>,
    /// High-water marks as of the last commit (durable).
    committed: HashMap<String, u64>,
    /// High-water marks including batches added since.
    pending_hw: HashMap<String, u64>,
    pending: Vec<(oneshot::Sender<Result<AckInfo, StoreError>>, AckInfo)>,
    pending_docs: usize,
    metrics: Arc<Metrics>,
}

impl WriterState {
    fn run(mut self, mut rx: mpsc::Receiver<Command>, options: &StoreOptions) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(error) => {
                error!(%error, "cannot start the writer runtime");
                return;
            }
        };
        rt.block_on(async {
            let mut deadline: Option<tokio::time::Instant> = None;
            loop {
                let cmd = match deadline {
                    None => rx.recv().await,
                    Some(at) => match tokio::time::timeout_at(at, rx.recv()).await {
                        Ok(cmd) => cmd,
                        Err(_) => {
                            self.commit();
                            deadline = None;
                            continue;
                        }
                    },
                };
                let Some(cmd) = cmd else { break };
                if let Command::Shutdown { done } = cmd {
                    self.commit();
                    let _ = done.send(());
                    break;
                }
                self.handle(cmd);
                if self.pending.is_empty() {
                    deadline = None;
                } else if self.pending_docs >= options.commit_max_docs {
                    self.commit();
                    deadline = None;
                } else if deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + options.commit_interval);
                }
            }
        });
        self.commit();
        debug!("writer stopped");
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Shutdown { .. } => {}
            Command::HighWater {
                collector_id,
                reply,
            } => {
                let _ = reply.send(self.committed.get(&collector_id).copied().unwrap_or(0));
            }
            Command::Append {
                collector_id,
                sequence,
                events,
                received_at_nanos,
                reply,
            } => {
                let high_water = self.pending_hw.get(&collector_id).copied().unwrap_or(0);
                let count = u32::try_from(events.len()).unwrap_or(u32::MAX);
                if sequence <= high_water {
                    self.metrics.events_duplicate.inc_by(u64::from(count));
                    let info = AckInfo {
                        sequence,
                        duplicates: count,
                        high_water,
                    };
                    let durable = self.committed.get(&collector_id).copied().unwrap_or(0);
                    if sequence <= durable {
                        let _ = reply.send(Ok(AckInfo {
                            high_water: durable,
                            ..info
                        }));
                    } else {
                        self.pending.push((reply, info));
                    }
                    return;
                }
                self.pending_docs += events.len();
                self.pending_hw.insert(collector_id.clone(), sequence);
                let info = AckInfo {
                    sequence,
                    duplicates: 0,
                    high_water: sequence,
                };
                self.pending.push((reply, info));
                for (index, event) in events.iter().enumerate() {
                    let id = event_id(&collector_id, sequence, index);
                    let meta = EventMeta {
                        id: &id,
                        uid: event_uid(&id),
                        received_at_nanos,
                    };
                    let doc = self.schema.document(event, &meta);
                    if let Err(error) = self.writer.add_document(doc) {
                        self.fail_pending(&format!("indexing failed: {error}"));
                        return;
                    }
                }
            }
        }
    }

    /// Commits what is pending with the high-water marks as payload, reloads the reader,
    /// and answers every pending batch.
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let started = Instant::now();
        let payload = Payload {
            version: 1,
            collectors: self.pending_hw.clone(),
        };
        let committed = serde_json::to_string(&payload)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                let mut prepared = self.writer.prepare_commit().map_err(|e| e.to_string())?;
                prepared.set_payload(&text);
                prepared.commit().map_err(|e| e.to_string())
            });
        if let Err(message) = committed {
            self.fail_pending(&format!("commit failed: {message}"));
            return;
        }
        // Durable from here on: ack even if the reader cannot reload right now.
        if let Err(error) = self.reader.reload() {
            warn!(%error, "reader reload after commit failed; results may lag until the next commit");
        }
        let pending = std::mem::take(&mut self.pending);
        let docs = std::mem::take(&mut self.pending_docs);
        self.committed = self.pending_hw.clone();
        self.metrics.events_indexed.inc_by(docs as u64);
        self.metrics.commits.inc();
        self.metrics.set_store_error(None);
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        debug!(docs, batches = pending.len(), elapsed_ms, "committed");
        for (reply, info) in pending {
            let _ = reply.send(Ok(info));
        }
    }

    /// Drops everything since the last commit and answers each pending batch with the
    /// error: nothing of it is acked, so collectors resend it.
    fn fail_pending(&mut self, message: &str) {
        error!(error = %message, docs = self.pending_docs, "store failure, pending batches not acked");
        self.metrics.commit_failures.inc();
        self.metrics.set_store_error(Some(message.to_owned()));
        if let Err(error) = self.writer.rollback() {
            warn!(%error, "rollback after a store failure failed");
        }
        self.pending_hw = self.committed.clone();
        self.pending_docs = 0;
        for (reply, _) in std::mem::take(&mut self.pending) {
            let _ = reply.send(Err(StoreError::Commit(message.to_owned())));
        }
    }
}
