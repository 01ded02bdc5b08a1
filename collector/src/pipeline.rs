//! The collector's core loop state: reads sources into batches, journals and hands them to
//! the shipper, and moves the checkpoint as acks arrive in sequence order.
//!
//! Invariants: a batch is journaled before the shipper sees it; offsets move only over the
//! acked prefix of sequences; at most `max_in_flight` new batches are unacknowledged (a
//! restart may replay more, as many as the journal recorded), and reading stops while the
//! window is full, so the log files themselves are the buffer.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use logward_proto::{Batch, Event};
use prost::Message as _;
use tokio::sync::mpsc;

use crate::Error;
use crate::checkpoint::{
    CheckpointError, FileKey, FileRange, FileState, JournalRecord, STATE_FILE, State, StateDir,
    write_atomic,
};
use crate::config::{Config, ReadFrom};
use crate::docker::chain::Positions;
use crate::docker::filter::Filter;
use crate::docker::tail::Limits;
use crate::docker::{DockerSource, SourceOptions, SourceStats, SourcedEvent};
use crate::journald::{self, JournaldSource};
use crate::ship::ShipEvent;

/// A pending partial line with no new data for this long is shipped incomplete.
const PARTIAL_IDLE: Duration = Duration::from_secs(5);
/// Rewrite the journal once it grows past this many bytes, keeping only unacked records.
const JOURNAL_COMPACT_BYTES: u64 = 4 * 1024 * 1024;
/// How often checkpoint entries of files that no longer exist are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

enum Taken {
    Yes,
    No,
    WindowFull,
}

struct InFlight {
    record: JournalRecord,
    acked: bool,
}

/// Events of the batch being filled and the ranges they came from.
#[derive(Default)]
struct Builder {
    /// Events the collector made itself; they come first in the batch.
    synthetic: Vec<Event>,
    events: Vec<Event>,
    ranges: Vec<FileRange>,
    last_forced: bool,
    /// The journald cursor reached by the events (and filtered entries) taken so far.
    journald_cursor: Option<String>,
    bytes: usize,
    first_at: Option<Instant>,
}

/// Reading, batching and checkpointing; driven by [`crate::run`] (or directly by tests).
pub struct Pipeline {
    config: Config,
    state: State,
    dir: StateDir,
    docker: Option<DockerSource>,
    journald: Option<JournaldSource>,
    journald_wake: std::sync::Arc<tokio::sync::Notify>,
    replay: Vec<JournalRecord>,
    in_flight: BTreeMap<u64, InFlight>,
    next_sequence: u64,
    builder: Builder,
    carry: Option<SourcedEvent>,
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
                options.own_id = crate::docker::own_container_id(&config.hostname);
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
            carry: None,
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

    /// Starts the journald source after `cursor` (after the handshake, once it is known
    /// which journaled batches are resent).
    fn start_journald(&mut self, cursor: Option<String>) {
        if self.config.no_journald || self.journald.is_some() {
            return;
        }
        tracing::info!(cursor = cursor.as_deref().unwrap_or("none"), start = ?self.config.journal_start, "journald source starting");
        self.journald = Some(JournaldSource::start(
            &self.config,
            cursor,
            self.journald_wake.clone(),
        ));
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

    fn on_connected(&mut self, high_water: u64) -> Result<(), Error> {
        let known = self.next_sequence - 1;
        if high_water < self.state.acked_sequence {
            tracing::warn!(
                high_water,
                acked_sequence = self.state.acked_sequence,
                "server holds fewer batches than it acknowledged before: it lost data or was \
                 replaced; events acknowledged earlier may be missing there"
            );
        }
        if self.handshaken {
            if high_water > known {
                tracing::warn!(
                    high_water,
                    next_sequence = self.next_sequence,
                    "server holds sequences this collector never sent: is the state directory \
                     shared? numbering continues above them"
                );
                self.next_sequence = high_water + 1;
            }
            return Ok(());
        }
        self.handshaken = true;
        let replay = std::mem::take(&mut self.replay);
        if high_water > known {
            tracing::warn!(
                high_water,
                known_sequence = known,
                dropped_batches = replay.len(),
                "server holds batches this collector has no record of (send journal lost): \
                 re-reading from the acknowledged offsets, duplicates are possible"
            );
            self.next_sequence = high_water + 1;
            self.dir.compact(&[])?;
            self.start_journald(self.state.journald_cursor.clone());
            return Ok(());
        }
        // Journaled batches carry their journald entries whole: reading resumes after them.
        let cursor = replay
            .iter()
            .rev()
            .find_map(|r| r.journald_cursor.clone())
            .or_else(|| self.state.journald_cursor.clone());
        for record in replay {
            self.resend_recorded(record)?;
        }
        self.start_journald(cursor);
        Ok(())
    }

    /// Rebuilds a journaled batch from its ranges and hands it to the shipper again.
    fn resend_recorded(&mut self, record: JournalRecord) -> Result<(), Error> {
        let mut events = Vec::new();
        for hex in &record.synthetic {
            match decode_hex(hex).and_then(|bytes| Event::decode(bytes.as_slice()).ok()) {
                Some(event) => events.push(event),
                None => tracing::warn!(
                    sequence = record.sequence,
                    "unreadable collector event in the send journal, resending the batch without it"
                ),
            }
        }
        // Even with docker collection now switched off, what was read before is resent.
        let mut replay_only;
        let docker = match &mut self.docker {
            Some(docker) => Some(docker),
            None if record.ranges.is_empty() => None,
            None => {
                replay_only =
                    DockerSource::new(&self.config.docker_dir, source_options(&self.config)?);
                Some(&mut replay_only)
            }
        };
        if let Some(docker) = docker {
            for range in &record.ranges {
                match docker.replay(range) {
                    Ok(mut rebuilt) => events.append(&mut rebuilt),
                    Err(error) => tracing::warn!(
                        path = %range.path.display(), sequence = record.sequence, %error,
                        "cannot re-read a journaled range, resending the batch without it"
                    ),
                }
            }
        }
        for range in &record.ranges {
            let at = self.read_from.entry(range.key).or_default();
            *at = (*at).max(range.end);
        }
        tracing::info!(
            sequence = record.sequence,
            events = events.len(),
            "resending journaled batch"
        );
        self.hand_over(record, events)
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

    fn window_full(&self) -> bool {
        self.in_flight.len() >= self.config.max_in_flight
    }

    fn builder_full(&self) -> bool {
        self.builder.events.len() + self.builder.synthetic.len() >= self.config.batch_max_events
            || self.builder.bytes >= self.config.batch_max_bytes
    }

    /// Reads events into batches until the sources are drained or the window is full.
    pub fn fill(&mut self) -> Result<(), Error> {
        if !self.handshaken {
            return Ok(());
        }
        loop {
            if self.builder_full() {
                if self.window_full() {
                    return Ok(());
                }
                self.cut()?;
            }
            if let Some(event) = self.docker.as_mut().and_then(DockerSource::next_synthetic) {
                let size = event.encoded_len() + 8;
                if !self.builder.is_empty()
                    && self.builder.bytes + size > self.config.batch_max_bytes
                {
                    if self.window_full() {
                        self.docker_requeue(event);
                        return Ok(());
                    }
                    self.cut()?;
                }
                self.builder.push_synthetic(event, size);
                continue;
            }
            let journald_taken = match self.take_journald()? {
                Taken::Yes => true,
                Taken::No => false,
                Taken::WindowFull => return Ok(()),
            };
            let next = match self.carry.take() {
                Some(event) => Some(event),
                None => self.docker.as_mut().and_then(DockerSource::next_event),
            };
            let Some(sourced) = next else {
                if journald_taken {
                    continue;
                }
                return Ok(());
            };
            // Read positions move at once, so a file found again (renamed under a scan)
            // resumes where reading is, not at its acked offset.
            let at = self.read_from.entry(sourced.range.key).or_default();
            *at = (*at).max(sourced.range.end);
            let size = sourced.event.encoded_len() + 8;
            if !self.builder.is_empty() && self.builder.bytes + size > self.config.batch_max_bytes {
                if self.window_full() {
                    self.carry = Some(sourced);
                    return Ok(());
                }
                self.cut()?;
            }
            self.builder.push(sourced, size);
        }
    }

    /// Takes one journald item into the batch being filled.
    fn take_journald(&mut self) -> Result<Taken, Error> {
        let Some(item) = self.journald.as_mut().and_then(JournaldSource::next_item) else {
            return Ok(Taken::No);
        };
        let Some(event) = item.event else {
            // A filtered entry: only the cursor moves.
            if item.cursor.is_some() {
                self.builder.journald_cursor = item.cursor;
            }
            return Ok(Taken::Yes);
        };
        let size = event.encoded_len() + 8;
        if !self.builder.is_empty() && self.builder.bytes + size > self.config.batch_max_bytes {
            if self.window_full() {
                if let Some(journald) = &mut self.journald {
                    journald.requeue(journald::Item {
                        event: Some(event),
                        cursor: item.cursor,
                    });
                }
                return Ok(Taken::WindowFull);
            }
            self.cut()?;
        }
        self.builder.push_synthetic(event, size);
        if item.cursor.is_some() {
            self.builder.journald_cursor = item.cursor;
        }
        Ok(Taken::Yes)
    }

    /// When the batch being filled must be cut at the latest.
    pub fn linger_deadline(&self) -> Option<Instant> {
        let first = self.builder.first_at?;
        if self.window_full() {
            return None;
        }
        Some(first + Duration::from_millis(self.config.batch_linger_ms))
    }

    /// Cuts the batch being filled if it has lingered long enough.
    pub fn on_linger(&mut self) -> Result<(), Error> {
        if self.linger_deadline().is_some_and(|d| d <= Instant::now()) {
            self.cut()?;
        }
        Ok(())
    }

    /// Cuts the batch being filled, whatever its size (if the window has room).
    pub fn flush(&mut self) -> Result<(), Error> {
        if !self.builder.is_empty() && !self.window_full() {
            self.cut()?;
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<(), Error> {
        let builder = std::mem::take(&mut self.builder);
        if builder.is_empty() {
            self.builder.journald_cursor = builder.journald_cursor;
            return Ok(());
        }
        let record = JournalRecord {
            sequence: self.next_sequence,
            journald_cursor: builder.journald_cursor,
            ranges: builder.ranges,
            synthetic: builder
                .synthetic
                .iter()
                .map(|e| encode_hex(&e.encode_to_vec()))
                .collect(),
        };
        self.next_sequence += 1;
        self.dir.append(&record)?;
        let mut events = builder.synthetic;
        events.extend(builder.events);
        self.hand_over(record, events)
    }

    fn hand_over(&mut self, record: JournalRecord, events: Vec<Event>) -> Result<(), Error> {
        let batch = Batch {
            collector_id: self.state.collector_id.clone(),
            sequence: record.sequence,
            events,
        };
        self.in_flight.insert(
            record.sequence,
            InFlight {
                record,
                acked: false,
            },
        );
        let Some(to_shipper) = &self.to_shipper else {
            return Err(Error::Internal("no shipper attached".to_owned()));
        };
        to_shipper
            .try_send(batch)
            .map_err(|e| Error::Internal(format!("cannot hand a batch to the shipper: {e}")))
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

    /// Puts a collector event back for the next batch.
    fn docker_requeue(&mut self, event: Event) {
        if let Some(docker) = &mut self.docker {
            docker.requeue_synthetic(event);
        }
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

fn encode_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Builder {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.synthetic.is_empty()
    }

    fn push_synthetic(&mut self, event: Event, size: usize) {
        self.synthetic.push(event);
        self.bytes += size;
        self.first_at.get_or_insert_with(Instant::now);
    }

    fn push(&mut self, sourced: SourcedEvent, size: usize) {
        let SourcedEvent {
            event,
            range,
            forced,
        } = sourced;
        match self.ranges.last_mut() {
            Some(last) if last.key == range.key && last.end == range.start && !self.last_forced => {
                last.end = range.end;
            }
            _ => self.ranges.push(range),
        }
        self.last_forced = forced;
        self.events.push(event);
        self.bytes += size;
        self.first_at.get_or_insert_with(Instant::now);
    }
}

impl From<CheckpointError> for Error {
    fn from(error: CheckpointError) -> Self {
        Self::State(error)
    }
}

#[cfg(test)]
mod tests;
