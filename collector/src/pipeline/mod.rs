//! The collector's core loop state: reads sources into batches, journals and hands them to
//! the shipper, and moves the checkpoint as acks arrive in sequence order.
//!
//! Invariants: a batch is journaled before the shipper sees it; offsets move only over the
//! acked prefix of sequences; at most `max_in_flight` new batches are unacknowledged (a
//! restart may replay more, as many as the journal recorded), and reading stops while the
//! window is full, so the log files themselves are the buffer.
//!
//! Batches are built in [`batch`] from the sources through [`crate::source::Source`]; the
//! cases of the server's handshake (replay, lost journal, server behind) are in
//! [`handshake`].

mod batch;
mod handshake;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use logward_proto::Batch;
use tokio::sync::mpsc;

use crate::Error;
use crate::checkpoint::{
    CheckpointError, FileKey, FileState, JournalRecord, STATE_FILE, State, StateDir, write_atomic,
};
use crate::config::{Config, ReadFrom};
use crate::container::filter::Filter;
use crate::docker::chain::Positions;
use crate::docker::tail::Limits;
use crate::docker::{DockerSource, SourceOptions, SourceStats};
use crate::journald;
use crate::source::Source;
use batch::Builder;

/// A pending partial line with no new data for this long is shipped incomplete.
const PARTIAL_IDLE: Duration = Duration::from_secs(5);
/// Rewrite the journal once it grows past this many bytes, keeping only unacked records.
const JOURNAL_COMPACT_BYTES: u64 = 4 * 1024 * 1024;
/// How often checkpoint entries of files that no longer exist are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What the shipper tells the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipEvent {
    /// A stream is up and the handshake answered.
    Connected {
        /// Highest sequence of this collector the server holds.
        high_water: u64,
    },
    /// The server holds the batch durably.
    Acked {
        /// The batch.
        sequence: u64,
        /// How many of its events the server already had.
        duplicates: u32,
    },
}

struct InFlight {
    record: JournalRecord,
    acked: bool,
}

/// Reading, batching and checkpointing; driven by [`crate::run`] (or directly by tests).
pub struct Pipeline {
    config: Config,
    state: State,
    dir: StateDir,
    docker: Option<DockerSource>,
    /// The journald source once started (tests put a scripted [`Source`] here).
    journald: Option<Box<dyn Source + Send>>,
    journald_wake: std::sync::Arc<tokio::sync::Notify>,
    replay: Vec<JournalRecord>,
    in_flight: BTreeMap<u64, InFlight>,
    next_sequence: u64,
    builder: Builder,
    read_from: BTreeMap<FileKey, u64>,
    handshaken: bool,
    dirty: bool,
    last_prune: Instant,
    to_shipper: Option<mpsc::Sender<Batch>>,
}

impl Pipeline {
    /// Loads the state directory. Nothing is read or sent before the first handshake.
    pub fn open(config: Config) -> Result<Self, Error> {
        let (dir, loaded) = StateDir::open(&config.state_dir)?;
        tracing::info!(
            state_dir = %config.state_dir.display(), collector_id = %loaded.state.collector_id,
            acked_sequence = loaded.state.acked_sequence, unacked_batches = loaded.journal.len(),
            new = loaded.fresh, "collector state loaded"
        );
        let docker = if config.no_docker {
            None
        } else {
            let mut options = source_options(&config)?;
            options.start_at_end = config.read_from == ReadFrom::End && loaded.first_start;
            if !config.include_self {
                options.own_id = crate::container::own_container_id(&config.hostname);
            }
            Some(DockerSource::new(&config.docker_dir, options))
        };
        let next_sequence = loaded
            .journal
            .last()
            .map_or(loaded.state.acked_sequence, |r| r.sequence)
            + 1;
        Ok(Self {
            state: loaded.state,
            dir,
            docker,
            journald: None,
            journald_wake: std::sync::Arc::default(),
            replay: loaded.journal,
            in_flight: BTreeMap::new(),
            next_sequence,
            builder: Builder::default(),
            read_from: BTreeMap::new(),
            handshaken: false,
            dirty: false,
            last_prune: Instant::now(),
            to_shipper: None,
            config,
        })
    }

    /// Notified whenever the journald source queued entries.
    pub fn journald_wake(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.journald_wake.clone()
    }

    /// Where batches go; its capacity must cover `max_in_flight` plus [`Self::replay_len`].
    pub fn set_shipper(&mut self, to_shipper: mpsc::Sender<Batch>) {
        self.to_shipper = Some(to_shipper);
    }

    /// This collector's id.
    pub fn collector_id(&self) -> &str {
        &self.state.collector_id
    }

    /// Batches the journal holds from an earlier run, to be resent after the handshake.
    pub fn replay_len(&self) -> usize {
        self.replay.len()
    }

    /// The checkpoint as it stands in memory.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether batches wait for acks.
    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Counters of the Docker source.
    pub fn source_stats(&self) -> SourceStats {
        self.docker
            .as_ref()
            .map(DockerSource::stats)
            .unwrap_or_default()
    }

    /// Bytes not yet read, per file.
    pub fn lag(&self) -> Vec<(std::path::PathBuf, u64)> {
        self.docker
            .as_ref()
            .map(DockerSource::lag)
            .unwrap_or_default()
    }

    /// Containers followed.
    pub fn container_count(&self) -> usize {
        self.docker
            .as_ref()
            .map_or(0, DockerSource::container_count)
    }

    /// Batches sent and not yet acknowledged.
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    /// Re-arms the sources for reading after a change notification.
    pub fn wake(&mut self) {
        if let Some(docker) = &mut self.docker {
            docker.wake(&Positions {
                acked: &self.state.files,
                read: &self.read_from,
                at_end: false,
            });
        }
    }

    /// Logs which sources exist and where they were looked for.
    pub fn announce_sources(&mut self) {
        match &mut self.docker {
            Some(docker) => docker.announce(),
            None => tracing::info!("docker source disabled by configuration"),
        }
        if self.config.no_journald {
            tracing::info!("journald source disabled by configuration");
        } else {
            tracing::info!(
                journal = %journald::location(&self.config),
                "journald source enabled, starts after the server handshake"
            );
        }
    }

    /// Handles a message from the shipper.
    pub fn on_ship_event(&mut self, event: ShipEvent) -> Result<(), Error> {
        match event {
            ShipEvent::Connected { high_water } => self.on_connected(high_water),
            ShipEvent::Acked {
                sequence,
                duplicates,
            } => {
                if duplicates > 0 {
                    tracing::debug!(
                        sequence,
                        duplicates,
                        "server already held events of a batch"
                    );
                }
                self.on_ack(sequence);
                Ok(())
            }
        }
    }

    /// Marks a batch acked and moves the checkpoint over the acked prefix.
    pub fn on_ack(&mut self, sequence: u64) {
        match self.in_flight.get_mut(&sequence) {
            Some(entry) => entry.acked = true,
            None => {
                tracing::debug!(sequence, "ack for an unknown batch");
                return;
            }
        }
        while let Some(entry) = self.in_flight.first_entry() {
            if !entry.get().acked {
                break;
            }
            let (sequence, done) = entry.remove_entry();
            if let Some(cursor) = done.record.journald_cursor {
                self.state.journald_cursor = Some(cursor);
            }
            for range in done.record.ranges {
                let file = self
                    .state
                    .files
                    .entry(range.key)
                    .or_insert_with(|| FileState {
                        key: range.key,
                        path: range.path.clone(),
                        offset: 0,
                        len: 0,
                    });
                file.offset = file.offset.max(range.end);
                file.path = range.path;
            }
            self.state.acked_sequence = self.state.acked_sequence.max(sequence);
            self.dirty = true;
        }
    }

    /// Rescans sources for new files.
    pub fn poll(&mut self) {
        if !self.handshaken {
            return;
        }
        let Some(docker) = &mut self.docker else {
            return;
        };
        let positions = Positions {
            acked: &self.state.files,
            read: &self.read_from,
            at_end: true,
        };
        let skipped = docker.poll(&positions);
        for (key, path, offset) in skipped {
            self.state.files.insert(
                key,
                FileState {
                    key,
                    path,
                    offset,
                    len: offset,
                },
            );
            self.dirty = true;
        }
    }

    /// Persists the checkpoint if it changed, then drops journal records it covers.
    pub async fn save(&mut self) -> Result<(), Error> {
        // Entries the filters dropped move the cursor once nothing before them waits for
        // an ack, so sparse or filtered streams are checkpointed too.
        if self.in_flight.is_empty()
            && self.builder.is_empty()
            && let Some(cursor) = self.builder.journald_cursor.take()
            && self.state.journald_cursor.as_ref() != Some(&cursor)
        {
            self.state.journald_cursor = Some(cursor);
            self.dirty = true;
        }
        if !self.dirty {
            return Ok(());
        }
        self.prune();
        if let Some(docker) = &self.docker {
            for (key, len) in docker.lens() {
                if let Some(file) = self.state.files.get_mut(&key) {
                    file.len = file.len.max(len);
                }
            }
        }
        let bytes = self.state.to_bytes()?;
        let dir = self.dir.path().to_owned();
        tokio::task::spawn_blocking(move || write_atomic(&dir, STATE_FILE, &bytes))
            .await
            .map_err(|e| Error::Internal(format!("checkpoint writer failed: {e}")))??;
        self.dirty = false;
        let journal_len = self.dir.journal_len();
        if (self.in_flight.is_empty() && journal_len > 0) || journal_len > JOURNAL_COMPACT_BYTES {
            let unacked: Vec<JournalRecord> =
                self.in_flight.values().map(|f| f.record.clone()).collect();
            self.dir.compact(&unacked)?;
        }
        Ok(())
    }

    /// Drops checkpoint entries of files that are gone and not referenced by a batch in flight.
    fn prune(&mut self) {
        if self.last_prune.elapsed() < PRUNE_EVERY {
            return;
        }
        self.last_prune = Instant::now();
        let referenced: HashSet<FileKey> = self
            .in_flight
            .values()
            .flat_map(|f| f.record.ranges.iter().map(|r| r.key))
            .collect();
        let docker = self.docker.as_ref();
        self.state.files.retain(|key, file| {
            referenced.contains(key) || file.path.exists() || docker.is_some_and(|d| d.knows(file))
        });
        let files = &self.state.files;
        self.read_from
            .retain(|key, _| referenced.contains(key) || files.contains_key(key));
    }
}

fn limits(config: &Config) -> Limits {
    Limits {
        max_event_bytes: config.max_event_bytes,
        partial_idle: PARTIAL_IDLE,
    }
}

fn source_options(config: &Config) -> Result<SourceOptions, Error> {
    let filter = Filter::new(&config.filter_spec())
        .map_err(|e| Error::Internal(format!("container filter: {e}")))?;
    Ok(SourceOptions {
        hostname: config.hostname.clone(),
        limits: limits(config),
        filter,
        own_id: None,
        start_at_end: false,
    })
}

impl From<CheckpointError> for Error {
    fn from(error: CheckpointError) -> Self {
        Self::State(error)
    }
}

#[cfg(test)]
mod tests;
