//! The single writer thread of the store: takes batches, assigns receive times, indexes
//! each event into the partition of its day, publishes the batch on the tap, and runs
//! the group commit of `manifest.rs` (partitions, then the fsynced manifest, then the
//! readers, then the acks). It also reconciles after failures and applies retention.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use logward_proto::Event as WireEvent;
use tantivy::collector::Count;
use tantivy::indexer::{LogMergePolicy, NoMergePolicy};
use tantivy::query::RangeQuery;
use tantivy::{IndexWriter, Term};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::metrics::Metrics;
use crate::store::error::StoreError;
use crate::store::error::{Cause, Failure};
use crate::store::event_id::{EventId, event_uid};
use crate::store::index::{Partition, Partitions, open_partition};
use crate::store::manifest::Manifest;
use crate::store::options::{AckInfo, StoreOptions, TapBatch};
use crate::store::partition::{day_of, dir_bytes, expired};
use crate::store::schema::{EventMeta, EventSchema, event_timestamp};

/// What the store handle asks of the writer.
pub(crate) enum Command {
    Append {
        collector_id: String,
        sequence: u64,
        events: Vec<WireEvent>,
        reply: oneshot::Sender<Result<AckInfo, StoreError>>,
    },
    HighWater {
        collector_id: String,
        reply: oneshot::Sender<u64>,
    },
    Retention {
        reply: Option<oneshot::Sender<Vec<i64>>>,
    },
    /// Commit and ack what is pending, then stop taking batches.
    Shutdown { done: oneshot::Sender<()> },
}

type Reply = oneshot::Sender<Result<AckInfo, StoreError>>;

pub(crate) struct WriterState {
    dir: PathBuf,
    schema: Arc<EventSchema>,
    partitions: Partitions,
    writers: HashMap<i64, IndexWriter>,
    /// Partitions with documents since the last commit.
    dirty: BTreeSet<i64>,
    /// Dirty partitions already committed (under the pending generation) and their
    /// writers closed, to keep at most `max_open_writers`; the group commit's manifest
    /// covers them, and a failure before it drops their documents like any others.
    flushed: BTreeSet<i64>,
    /// The durable state: generation and high-water marks.
    manifest: Manifest,
    /// High-water marks including batches added since the last commit.
    pending_hw: HashMap<String, u64>,
    pending: Vec<(Reply, AckInfo)>,
    pending_docs: usize,
    /// Set after a failure until documents of unacked generations are gone.
    needs_reconcile: Option<Failure>,
    last_received_at: i64,
    options: StoreOptions,
    metrics: Arc<Metrics>,
    tap: broadcast::Sender<Arc<TapBatch>>,
    committed_tx: watch::Sender<i64>,
    tapped: Arc<AtomicI64>,
}

impl WriterState {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        dir: PathBuf,
        schema: Arc<EventSchema>,
        partitions: Partitions,
        manifest: Manifest,
        options: StoreOptions,
        metrics: Arc<Metrics>,
        tap: broadcast::Sender<Arc<TapBatch>>,
        committed_tx: watch::Sender<i64>,
        tapped: Arc<AtomicI64>,
    ) -> Self {
        WriterState {
            dir,
            schema,
            partitions,
            writers: HashMap::new(),
            dirty: BTreeSet::new(),
            flushed: BTreeSet::new(),
            pending_hw: manifest.collectors.clone(),
            manifest,
            pending: Vec::new(),
            pending_docs: 0,
            needs_reconcile: None,
            last_received_at: 0,
            options,
            metrics,
            tap,
            committed_tx,
            tapped,
        }
    }

    /// Drops what a crash left above the manifest; a failure leaves the store unhealthy
    /// and is retried before the next batch.
    pub(crate) fn reconcile_at_open(&mut self) {
        if let Err(failure) = self.reconcile() {
            error!(error = %failure.message, "cannot drop uncommitted documents at start; retrying before the next batch");
            self.metrics.set_store_error(Some(failure.message.clone()));
            self.needs_reconcile = Some(failure);
        }
        self.update_gauges();
    }

    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
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
            let mut retention = tokio::time::interval(self.options.retention_interval);
            retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let commit_at = deadline;
                let cmd = tokio::select! {
                    cmd = rx.recv() => cmd,
                    () = async {
                        match commit_at {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => {
                        self.commit();
                        deadline = None;
                        continue;
                    }
                    _ = retention.tick() => Some(Command::Retention { reply: None }),
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
                } else if self.pending_docs >= self.options.commit_max_docs {
                    self.commit();
                    deadline = None;
                } else if deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + self.options.commit_interval);
                }
            }
        });
        self.commit();
        self.writers.clear();
        debug!("writer stopped");
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Shutdown { .. } => {}
            Command::HighWater {
                collector_id,
                reply,
            } => {
                let hw = self.manifest.collectors.get(&collector_id).copied();
                let _ = reply.send(hw.unwrap_or(0));
            }
            Command::Retention { reply } => {
                let deleted = self.retention();
                if let Some(reply) = reply {
                    let _ = reply.send(deleted);
                }
            }
            Command::Append {
                collector_id,
                sequence,
                events,
                reply,
            } => self.append(collector_id, sequence, events, reply),
        }
    }

    fn append(
        &mut self,
        collector_id: String,
        sequence: u64,
        events: Vec<WireEvent>,
        reply: Reply,
    ) {
        if self.needs_reconcile.is_some() {
            if let Err(failure) = self.reconcile() {
                let _ = reply.send(Err(failure.to_error()));
                return;
            }
            self.needs_reconcile = None;
            self.metrics.set_store_error(None);
        }
        let high_water = self.pending_hw.get(&collector_id).copied().unwrap_or(0);
        let count = u32::try_from(events.len()).unwrap_or(u32::MAX);
        if sequence <= high_water {
            self.metrics.events_duplicate.inc_by(u64::from(count));
            let info = AckInfo {
                sequence,
                duplicates: count,
                high_water,
            };
            let durable = self.manifest.collectors.get(&collector_id).copied();
            let durable = durable.unwrap_or(0);
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
        let received_at = crate::clock::now_nanos().max(self.last_received_at + 1);
        self.last_received_at = received_at;
        let generation = self.manifest.generation + 1;
        self.pending_docs += events.len();
        self.pending_hw.insert(collector_id.clone(), sequence);
        let info = AckInfo {
            sequence,
            duplicates: 0,
            high_water: sequence,
        };
        self.pending.push((reply, info));
        for (index, event) in events.iter().enumerate() {
            let id = EventId::new(&collector_id, sequence, index).to_string();
            let meta = EventMeta {
                id: &id,
                uid: event_uid(&id),
                received_at_nanos: received_at,
                generation,
            };
            let doc = self.schema.document(event, &meta);
            let day = day_of(event_timestamp(event, received_at));
            let added = self.writer(day).and_then(|w| {
                w.add_document(doc)
                    .map_err(|e| Failure::tantivy("indexing failed", &e))
            });
            if let Err(failure) = added {
                self.fail(&failure);
                return;
            }
            self.dirty.insert(day);
        }
        self.tapped.store(received_at, Ordering::Release);
        // No subscriber is fine: the tap is best effort, the index is the record.
        let _ = self.tap.send(Arc::new(TapBatch {
            collector_id,
            sequence,
            received_at_nanos: received_at,
            events,
        }));
    }

    /// The writer of a day's partition, opening the partition and the writer if needed.
    fn writer(&mut self, day: i64) -> Result<&mut IndexWriter, Failure> {
        if !self.writers.contains_key(&day) {
            self.make_room()?;
            let existing = self.read_partitions().get(&day).cloned();
            let part = match existing {
                Some(p) => p,
                None => {
                    let p = open_partition(&self.dir, day, &self.schema)
                        .map_err(|e| Failure::store("indexing failed", &e))?;
                    self.write_partitions().insert(day, p.clone());
                    self.update_gauges();
                    p
                }
            };
            let writer: IndexWriter = part
                .index
                .writer_with_num_threads(
                    self.options.indexing_threads,
                    self.options.writer_heap_bytes,
                )
                .map_err(|e| Failure::tantivy("indexing failed: cannot open a writer", &e))?;
            let merge = self.options.merge;
            if merge.min_segments == 0 {
                writer.set_merge_policy(Box::new(NoMergePolicy));
            } else {
                let mut policy = LogMergePolicy::default();
                policy.set_min_num_segments(merge.min_segments);
                policy.set_max_docs_before_merge(merge.max_docs);
                writer.set_merge_policy(Box::new(policy));
            }
            self.writers.insert(day, writer);
        }
        self.writers
            .get_mut(&day)
            .ok_or_else(|| Failure::other("internal: writer vanished"))
    }

    fn read_partitions(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, std::collections::BTreeMap<i64, Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_partitions(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, std::collections::BTreeMap<i64, Partition>> {
        self.partitions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Group commit: every dirty partition, then the manifest, then the readers, then
    /// the acks.
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let started = Instant::now();
        let generation = self.manifest.generation + 1;
        let dirty: Vec<i64> = self.dirty.iter().copied().collect();
        for day in &dirty {
            let Some(writer) = self.writers.get_mut(day) else {
                if self.flushed.contains(day) {
                    continue;
                }
                self.fail(&Failure::other("internal: a dirty partition has no writer"));
                return;
            };
            let committed = writer.prepare_commit().and_then(|mut prepared| {
                prepared.set_payload(&format!("{{\"generation\":{generation}}}"));
                prepared.commit()
            });
            if let Err(error) = committed {
                self.fail(&Failure::tantivy(
                    &format!(
                        "commit of partition {} failed",
                        crate::store::partition::day_name(*day)
                    ),
                    &error,
                ));
                return;
            }
        }
        let next = Manifest {
            version: 1,
            generation,
            collectors: self.pending_hw.clone(),
        };
        if let Err(error) = next.store(&self.dir) {
            self.fail(&Failure::store("", &StoreError::Manifest(error)));
            return;
        }
        self.manifest = next;
        // Durable from here on: ack even if a reader cannot reload right now.
        for day in &dirty {
            if let Some(part) = self.read_partitions().get(day)
                && let Err(error) = part.reader.reload()
            {
                warn!(%error, "reader reload after commit failed; results may lag until the next commit");
            }
        }
        self.dirty.clear();
        self.flushed.clear();
        let pending = std::mem::take(&mut self.pending);
        let docs = std::mem::take(&mut self.pending_docs);
        self.metrics.events_indexed.inc_by(docs as u64);
        self.metrics.commits.inc();
        self.metrics.set_store_error(None);
        self.committed_tx.send_replace(self.last_received_at);
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        debug!(
            docs,
            batches = pending.len(),
            partitions = dirty.len(),
            generation,
            elapsed_ms,
            "committed"
        );
        for (reply, info) in pending {
            let _ = reply.send(Ok(info));
        }
        self.close_idle_writers(&dirty);
    }

    /// Closes a writer when `max_open_writers` are open, before another opens: a clean
    /// one if there is one, else a dirty one after committing its partition under the
    /// pending generation. A batch that spans many days therefore never holds more
    /// writers (and their threads and heaps) than the budget.
    fn make_room(&mut self) -> Result<(), Failure> {
        if self.writers.len() < self.options.max_open_writers {
            return Ok(());
        }
        let clean = self
            .writers
            .keys()
            .copied()
            .find(|d| !self.dirty.contains(d));
        if let Some(day) = clean {
            self.writers.remove(&day);
            return Ok(());
        }
        let Some(day) = self.writers.keys().copied().min() else {
            return Ok(());
        };
        let generation = self.manifest.generation + 1;
        if let Some(mut writer) = self.writers.remove(&day) {
            writer
                .prepare_commit()
                .and_then(|mut prepared| {
                    prepared.set_payload(&format!("{{\"generation\":{generation}}}"));
                    prepared.commit()
                })
                .map_err(|e| {
                    Failure::tantivy(
                        &format!(
                            "commit of partition {} failed",
                            crate::store::partition::day_name(day)
                        ),
                        &e,
                    )
                })?;
        }
        self.flushed.insert(day);
        self.metrics.early_partition_commits.inc();
        Ok(())
    }

    /// Keeps at most `max_open_writers` writers, those of the partitions written last.
    fn close_idle_writers(&mut self, recent: &[i64]) {
        if self.writers.len() <= self.options.max_open_writers {
            return;
        }
        let mut days: Vec<i64> = self.writers.keys().copied().collect();
        days.sort_unstable_by_key(|d| (recent.contains(d), *d));
        let excess = days.len() - self.options.max_open_writers;
        for day in days.into_iter().take(excess) {
            self.writers.remove(&day);
        }
    }

    /// Drops everything since the last commit, answers each pending batch with the error
    /// (nothing of it is acked, so collectors resend it) and removes what a partial
    /// commit left behind.
    fn fail(&mut self, failure: &Failure) {
        let message = failure.message.as_str();
        let storage_full = failure.cause == Cause::StorageFull;
        error!(error = %message, docs = self.pending_docs, storage_full, "store failure, pending batches not acked");
        self.metrics.commit_failures.inc();
        self.metrics.set_store_error(Some(message.to_owned()));
        // Dropping the writers discards their uncommitted documents.
        self.writers.clear();
        self.dirty.clear();
        self.flushed.clear();
        self.pending_hw = self.manifest.collectors.clone();
        self.pending_docs = 0;
        for (reply, _) in std::mem::take(&mut self.pending) {
            let _ = reply.send(Err(failure.to_error()));
        }
        self.committed_tx.send_replace(self.last_received_at);
        if let Err(again) = self.reconcile() {
            warn!(error = %again.message, "cleanup after the failure failed; retrying before the next batch");
            self.needs_reconcile = Some(again);
        }
    }

    /// Deletes, in every partition, the documents of generations above the manifest's.
    fn reconcile(&mut self) -> Result<(), Failure> {
        let durable = self.manifest.generation;
        let gen_field = self.schema.generation;
        let above = move || {
            RangeQuery::new(
                Bound::Excluded(Term::from_field_u64(gen_field, durable)),
                Bound::Unbounded,
            )
        };
        let parts: Vec<Partition> = self.read_partitions().values().cloned().collect();
        for part in parts {
            let cleanup =
                |e: tantivy::TantivyError| Failure::tantivy("cannot drop unacked documents", &e);
            part.reader.reload().map_err(cleanup)?;
            let stale = part
                .reader
                .searcher()
                .search(&above(), &Count)
                .map_err(cleanup)?;
            if stale == 0 {
                continue;
            }
            let writer = self.writer(part.day)?;
            writer.delete_query(Box::new(above())).map_err(cleanup)?;
            let committed = writer.prepare_commit().and_then(|mut prepared| {
                prepared.set_payload(&format!("{{\"generation\":{durable}}}"));
                prepared.commit()
            });
            if let Err(error) = committed {
                self.writers.remove(&part.day);
                return Err(cleanup(error));
            }
            part.reader.reload().map_err(cleanup)?;
            info!(partition = %crate::store::partition::day_name(part.day), docs = stale, generation = durable, "dropped documents of an unacked commit");
        }
        Ok(())
    }

    /// Deletes whole partitions that retention no longer keeps. Partitions with
    /// uncommitted documents wait for the next run.
    fn retention(&mut self) -> Vec<i64> {
        let policy = self.options.retention;
        if policy.max_age_days == 0 && policy.max_total_bytes == 0 {
            return Vec::new();
        }
        let sizes: Vec<(i64, u64)> = self
            .read_partitions()
            .keys()
            .map(|&day| {
                (
                    day,
                    dir_bytes(&self.dir.join(crate::store::partition::day_name(day))),
                )
            })
            .collect();
        let today = day_of(crate::clock::now_nanos());
        let mut deleted = Vec::new();
        for day in expired(&sizes, today, policy) {
            if self.dirty.contains(&day) {
                continue;
            }
            self.writers.remove(&day);
            self.write_partitions().remove(&day);
            let path = self.dir.join(crate::store::partition::day_name(day));
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    info!(partition = %crate::store::partition::day_name(day), "retention deleted a partition");
                    self.metrics.partitions_deleted.inc();
                    deleted.push(day);
                }
                Err(error) => {
                    warn!(%error, path = %path.display(), "retention could not delete a partition");
                }
            }
        }
        self.update_gauges();
        deleted
    }

    fn update_gauges(&self) {
        let n = self.read_partitions().len();
        self.metrics
            .partitions
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
