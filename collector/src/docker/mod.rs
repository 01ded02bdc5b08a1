//! The Docker source: follows containers and their json-file logs (rotation included), turns
//! their lines into events, and makes the posture and gap audit events.

pub mod chain;
pub mod decode;
pub mod events;
pub mod files;
pub mod posture;
pub mod tail;

/// Moved to [`crate::container::meta`] (shared with journald); kept here for the fuzz targets.
pub use crate::container::meta;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use logward_proto::{Container, Event};
use prost::bytes::Bytes;

use crate::checkpoint::{FileKey, FileRange, FileState};
use crate::container::filter::Filter;
use crate::container::meta::{ContainerMeta, parse_container_config};
use crate::source::{Offer, Position, Queue, Source};
use crate::stamp::{self, FIELD_DECODE_ERROR, FIELD_TRUNCATED, now_nanos, set_field};
use chain::{Chain, Notice, Positions};
use events::{GapReason, gap_event, posture_event};
use files::LogReader;
use posture::{Posture, parse_host_config};
use tail::{Limits, Record, TailItem, Tailer};

/// Field set on partial lines whose final chunk never came.
pub const FIELD_INCOMPLETE: &str = "logward.incomplete";

/// An event together with the file range it was read from.
#[derive(Debug, Clone)]
pub struct SourcedEvent {
    /// The event.
    pub event: Event,
    /// Where its bytes are.
    pub range: FileRange,
    /// The range must not be merged with the next one (see [`TailItem::forced`]).
    pub forced: bool,
}

impl From<SourcedEvent> for Offer {
    fn from(sourced: SourcedEvent) -> Self {
        Self {
            event: Some(sourced.event),
            position: Position::File {
                range: sourced.range,
                forced: sourced.forced,
            },
        }
    }
}

/// A container: its metadata, posture, and files.
struct ContainerState {
    meta: Option<CachedMeta>,
    chain: Chain,
    /// Listed in the last scan (a removed container's files are read to the end first).
    present: bool,
    /// Accepted by the filters.
    accepted: bool,
}

impl ContainerState {
    fn new() -> Self {
        Self {
            meta: None,
            chain: Chain::default(),
            present: false,
            accepted: false,
        }
    }
}

struct CachedMeta {
    proto: Container,
    mtimes: (Option<SystemTime>, Option<SystemTime>),
    posture: Option<Posture>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Availability {
    Unknown,
    Watching,
    Unavailable,
}

/// Settings of a [`DockerSource`] beyond the directory.
pub struct SourceOptions {
    /// Host name stamped on events.
    pub hostname: String,
    /// Event size limits.
    pub limits: Limits,
    /// Which containers are collected.
    pub filter: Filter,
    /// The collector's own container, never collected.
    pub own_id: Option<String>,
    /// Files found by the first scan start at their end (`read_from = "end"`, first start).
    pub start_at_end: bool,
}

/// Totals the source reports in metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceStats {
    /// Lines that failed to decode.
    pub decode_errors: u64,
    /// Gap events emitted.
    pub gaps: u64,
    /// Estimated bytes lost in those gaps.
    pub bytes_lost: u64,
    /// Posture events emitted.
    pub postures: u64,
    /// Failed attempts at starting a log file (each backed off; see [`chain::Notice`]).
    pub read_failures: u64,
}

/// Tails every container log under one Docker directory.
pub struct DockerSource {
    dir: PathBuf,
    options: SourceOptions,
    containers: BTreeMap<String, ContainerState>,
    availability: Availability,
    /// Container ids in round-robin order and where the next round starts.
    order: Vec<String>,
    cursor: usize,
    /// Events the collector made (posture, gap) waiting to be batched.
    synthetic: Queue,
    /// The event read and shown by [`Source::peek`], not taken yet.
    peeked: Option<Offer>,
    stats: SourceStats,
    scanned: bool,
}

impl DockerSource {
    /// A source for `dir`; nothing is read until [`DockerSource::poll`].
    pub fn new(dir: &Path, options: SourceOptions) -> Self {
        Self {
            dir: dir.to_owned(),
            options,
            containers: BTreeMap::new(),
            availability: Availability::Unknown,
            order: Vec::new(),
            cursor: 0,
            synthetic: Queue::default(),
            peeked: None,
            stats: SourceStats::default(),
            scanned: false,
        }
    }

    /// The directory watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many containers are being followed.
    pub fn container_count(&self) -> usize {
        self.containers.values().filter(|c| c.accepted).count()
    }

    /// Counters for metrics.
    pub fn stats(&self) -> SourceStats {
        self.stats
    }

    /// Bytes not yet read, per file being read.
    pub fn lag(&self) -> Vec<(PathBuf, u64)> {
        self.containers
            .values()
            .flat_map(|c| c.chain.lag().map(|(p, _, lag)| (p.to_owned(), lag)))
            .collect()
    }

    /// The length last seen of every file being read.
    pub fn lens(&self) -> Vec<(FileKey, u64)> {
        self.containers
            .values()
            .flat_map(|c| c.chain.lens())
            .collect()
    }

    /// Whether the file of a checkpoint entry is still there (being read, or read and not
    /// yet deleted), found by its fingerprint in its container directory.
    pub fn knows(&self, file: &FileState) -> bool {
        container_of(&file.path)
            .and_then(|id| self.containers.get(&id))
            .is_some_and(|c| c.chain.knows(file.key.fp))
    }

    /// Takes the next event the collector made itself.
    pub fn next_synthetic(&mut self) -> Option<Event> {
        self.synthetic.take().and_then(|offer| offer.event)
    }

    /// The events the collector made itself (posture, gap), a source of their own: they are
    /// batched before anything read.
    pub fn made(&mut self) -> &mut Queue {
        &mut self.synthetic
    }

    /// Re-arms every container for reading (new data was written).
    pub fn wake(&mut self, positions: &Positions<'_>) {
        let positions = Positions {
            at_end: false,
            ..*positions
        };
        let mut gaps = Vec::new();
        for (id, container) in &mut self.containers {
            let mut notices = Vec::new();
            let dir = self.dir.join(id);
            container
                .chain
                .wake(&dir, &positions, self.options.limits, &mut notices);
            gaps.extend(notices.into_iter().map(|n| (id.clone(), n)));
        }
        for (id, notice) in gaps {
            self.notice(&id, notice, &mut Vec::new());
        }
    }

    /// Looks at the directory once and logs what it found, without opening any file.
    pub fn announce(&mut self) {
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                tracing::info!(
                    dir = %self.dir.display(), containers = entries.count(), "docker source watching"
                );
                self.availability = Availability::Watching;
            }
            Err(error) => {
                tracing::warn!(
                    dir = %self.dir.display(), %error,
                    "docker source unavailable: docker logs will not be collected until it appears"
                );
                self.availability = Availability::Unavailable;
            }
        }
    }

    /// Rescans the directory: follows new containers and files (starting at the positions
    /// given), refreshes metadata and posture, notices rotation, truncation and gaps, and
    /// re-arms every file for reading. Returns the start offsets it set without reading
    /// (`read_from = "end"`), which the caller records as acknowledged. A missing directory
    /// is not an error: it is checked again on every scan.
    pub fn poll(&mut self, positions: &Positions<'_>) -> Vec<(FileKey, PathBuf, u64)> {
        let ids = match list_containers(&self.dir) {
            Ok(ids) => ids,
            Err(error) => {
                if self.availability != Availability::Unavailable {
                    tracing::warn!(
                        dir = %self.dir.display(), %error,
                        "docker source unavailable: docker logs will not be collected"
                    );
                    self.availability = Availability::Unavailable;
                }
                for container in self.containers.values_mut() {
                    container.chain.exhausted = false;
                }
                return Vec::new();
            }
        };
        let positions = Positions {
            at_end: positions.at_end && self.options.start_at_end && !self.scanned,
            ..*positions
        };
        for container in self.containers.values_mut() {
            container.present = false;
        }
        let mut skipped = Vec::new();
        for id in &ids {
            if self
                .options
                .own_id
                .as_deref()
                .is_some_and(|own| id.starts_with(own))
            {
                continue;
            }
            self.scan_container(id, &positions, &mut skipped);
        }
        let absent: Vec<String> = self
            .containers
            .iter()
            .filter(|(_, c)| !c.present)
            .map(|(id, _)| id.clone())
            .collect();
        for id in absent {
            self.scan_container(&id, &positions, &mut skipped);
        }
        self.containers
            .retain(|_, c| c.present || !c.chain.is_empty());
        if !self.scanned {
            self.scanned = true;
            self.report_lost_files(positions.acked);
        }
        if self.availability != Availability::Watching {
            tracing::info!(
                dir = %self.dir.display(), containers = ids.len(), "docker source watching"
            );
            self.availability = Availability::Watching;
        }
        self.order = self.containers.keys().cloned().collect();
        skipped
    }

    fn scan_container(
        &mut self,
        id: &str,
        positions: &Positions<'_>,
        skipped: &mut Vec<(FileKey, PathBuf, u64)>,
    ) {
        let dir = self.dir.join(id);
        let present = dir.is_dir();
        self.containers
            .entry(id.to_owned())
            .or_insert_with(ContainerState::new)
            .present = present;
        if present {
            self.refresh_meta(id, &dir);
        }
        let Some(container) = self.containers.get_mut(id) else {
            return;
        };
        if !container.accepted {
            return;
        }
        let mut notices = Vec::new();
        if let Err(error) =
            container
                .chain
                .scan(&dir, id, positions, self.options.limits, &mut notices)
        {
            tracing::warn!(dir = %dir.display(), %error, "cannot scan container logs, will retry");
        }
        for notice in notices {
            self.notice(id, notice, skipped);
        }
    }

    fn notice(&mut self, id: &str, notice: Notice, skipped: &mut Vec<(FileKey, PathBuf, u64)>) {
        match notice {
            Notice::Truncated { path, lost } => self.gap(id, &path, lost, GapReason::Truncated),
            Notice::ReadFailed { .. } => self.stats.read_failures += 1,
            Notice::Unreadable { path, bytes, .. } => {
                self.gap(id, &path, bytes, GapReason::Unreadable);
            }
            Notice::Skipped { key, path, offset } => {
                tracing::info!(path = %path.display(), offset, "read_from = end: starting at the end of the log");
                skipped.push((key, path, offset));
            }
        }
    }

    /// After the first scan: checkpointed files that are gone with bytes never read.
    fn report_lost_files(&mut self, acked: &BTreeMap<FileKey, FileState>) {
        let lost: Vec<FileState> = acked
            .values()
            .filter(|f| f.len > f.offset && !self.knows(f))
            .cloned()
            .collect();
        for file in lost {
            let id = container_of(&file.path).unwrap_or_default();
            let excluded = self.containers.get(&id).is_some_and(|c| !c.accepted);
            if !excluded {
                self.gap(
                    &id,
                    &file.path,
                    file.len - file.offset,
                    GapReason::DeletedBeforeRead,
                );
            }
        }
    }

    fn gap(&mut self, id: &str, path: &Path, lost: u64, reason: GapReason) {
        let container = self.container(id);
        tracing::warn!(
            container = %id, file = %path.display(), bytes_lost_estimate = lost,
            reason = reason.as_str(), "log lines lost before they were read"
        );
        self.stats.gaps += 1;
        self.stats.bytes_lost += lost;
        self.synthetic.push(Offer::unplaced(gap_event(
            &self.options.hostname,
            &container,
            &path.display().to_string(),
            lost,
            reason,
            now_nanos(),
        )));
    }

    /// The next event from any container, round-robin; `None` when all are drained for now.
    /// It reads past an event held by [`Source::peek`]: the pipeline reads through [`Source`].
    pub fn next_event(&mut self) -> Option<SourcedEvent> {
        let n = self.order.len();
        for step in 0..n {
            let index = (self.cursor + step) % n;
            let Some(container) = self.containers.get_mut(&self.order[index]) else {
                continue;
            };
            if container.chain.exhausted {
                continue;
            }
            if let Some((key, path, item)) = container.chain.next_item() {
                self.cursor = (index + 1) % n;
                let id = self.order[index].clone();
                return Some(self.sourced(key, path, &id, item));
            }
        }
        None
    }

    /// Rebuilds the events of a recorded range, in order. The file is found by its identity
    /// wherever it now is in its container directory (renamed by rotation, or gzipped).
    pub fn replay(&mut self, range: &FileRange) -> io::Result<Vec<Event>> {
        let (path, reader) = find_file(&range.path, range.key)?;
        let items = Tailer::read_range(
            reader,
            &path,
            range.key,
            (range.start, range.end),
            self.options.limits,
        )?;
        let container_id = container_of(&range.path).unwrap_or_default();
        if let Some(dir) = range.path.parent() {
            self.containers
                .entry(container_id.clone())
                .or_insert_with(ContainerState::new);
            self.refresh_meta(&container_id, dir);
        }
        if items.last().map_or(range.start, |i| i.end) != range.end {
            tracing::warn!(
                path = %path.display(), start = range.start, end = range.end,
                "recorded range is no longer complete in the file, resending what is left"
            );
        }
        Ok(items
            .into_iter()
            .map(|item| {
                self.sourced(range.key, range.path.clone(), &container_id, item)
                    .event
            })
            .collect())
    }

    fn sourced(
        &mut self,
        key: FileKey,
        path: PathBuf,
        container_id: &str,
        item: TailItem,
    ) -> SourcedEvent {
        let range = FileRange {
            key,
            path,
            start: item.start,
            end: item.end,
        };
        let mut event = Event {
            container: Some(self.container(container_id)),
            ..stamp::event(&self.options.hostname, logward_proto::Source::Docker)
        };
        match item.record {
            Record::Line {
                stream,
                time_nanos,
                message,
                truncated,
                incomplete,
            } => {
                event.timestamp_nanos = time_nanos;
                event.stream = stream as i32;
                event.message = Bytes::from(message);
                if truncated {
                    set_field(&mut event, FIELD_TRUNCATED, "true");
                }
                if incomplete {
                    set_field(&mut event, FIELD_INCOMPLETE, "true");
                }
            }
            Record::Undecodable { raw, error } => {
                self.stats.decode_errors += 1;
                let count = self.stats.decode_errors;
                if count == 1 || count.is_multiple_of(1000) {
                    tracing::warn!(
                        path = %range.path.display(), offset = range.start, %error, count,
                        "docker log line is not valid json-file output, shipping it raw"
                    );
                }
                event.timestamp_nanos = now_nanos();
                event.message = Bytes::from(raw);
                set_field(&mut event, FIELD_DECODE_ERROR, &error);
            }
        }
        SourcedEvent {
            event,
            range,
            forced: item.forced,
        }
    }

    fn container(&self, id: &str) -> Container {
        self.containers
            .get(id)
            .and_then(|c| c.meta.as_ref())
            .map_or_else(
                || ContainerMeta::unknown(id).to_proto(),
                |cached| cached.proto.clone(),
            )
    }

    /// (Re-)reads `config.v2.json` and `hostconfig.json` when their mtimes changed, applies
    /// the filters, and emits a posture event when the posture is new or changed.
    fn refresh_meta(&mut self, id: &str, dir: &Path) {
        let config_path = dir.join("config.v2.json");
        let host_path = dir.join("hostconfig.json");
        let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
        let mtimes = (mtime(&config_path), mtime(&host_path));
        let Some(container) = self.containers.get_mut(id) else {
            return;
        };
        if container.meta.as_ref().is_some_and(|m| m.mtimes == mtimes) {
            return;
        }
        let meta = read_meta(id, &config_path);
        let posture = match std::fs::read(&host_path) {
            Ok(bytes) => match parse_host_config(&bytes, &meta.user, &meta.apparmor_profile) {
                Ok(posture) => Some(posture),
                Err(error) => {
                    tracing::warn!(path = %host_path.display(), %error, "cannot parse container host config");
                    None
                }
            },
            Err(error) => {
                tracing::debug!(path = %host_path.display(), %error, "no container host config");
                None
            }
        };
        let accepted = self
            .options
            .filter
            .accepts(&meta.name, &meta.image, &meta.labels);
        if accepted != container.accepted || container.meta.is_none() {
            tracing::info!(
                container = %id, name = %meta.name, image = %meta.image, accepted,
                "docker container found"
            );
        }
        let mut proto = meta.to_proto();
        if proto.id != id {
            proto.id = id.to_owned();
        }
        // A posture counts as emitted only if the container was collected when it was seen.
        let previous = container
            .meta
            .take()
            .and_then(|m| m.posture)
            .filter(|_| container.accepted);
        container.accepted = accepted;
        if accepted
            && let Some(posture) = &posture
            && previous.as_ref() != Some(posture)
        {
            self.stats.postures += 1;
            self.synthetic.push(Offer::unplaced(posture_event(
                &self.options.hostname,
                &proto,
                posture,
                now_nanos(),
            )));
        }
        container.meta = Some(CachedMeta {
            proto,
            mtimes,
            posture,
        });
    }
}

fn read_meta(id: &str, config_path: &Path) -> ContainerMeta {
    match std::fs::read(config_path) {
        Ok(bytes) => parse_container_config(&bytes).unwrap_or_else(|error| {
            tracing::warn!(path = %config_path.display(), %error, "cannot parse container config");
            ContainerMeta::unknown(id)
        }),
        Err(error) => {
            tracing::debug!(path = %config_path.display(), %error, "no container config");
            ContainerMeta::unknown(id)
        }
    }
}

/// The container id of a log file path: the name of its directory.
fn container_of(path: &Path) -> Option<String> {
    path.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
}

/// Container directories under `dir`, sorted.
fn list_containers(dir: &Path) -> io::Result<Vec<String>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Ok(id) = entry.file_name().into_string()
        {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

/// Finds the file `key` near `recorded` (same container directory): the recorded path if it
/// still is that file, else any log of the container with the same device, inode and
/// fingerprint, else a gzipped one with the same fingerprint.
fn find_file(recorded: &Path, key: FileKey) -> io::Result<(PathBuf, LogReader)> {
    let is_key = |reader: &mut LogReader| -> bool {
        reader.dev_ino().ok() == Some((key.dev, key.ino))
            && reader.fingerprint().ok().flatten() == Some(key.fp)
    };
    if let Ok(mut reader) = LogReader::open(recorded, false)
        && is_key(&mut reader)
    {
        return Ok((recorded.to_owned(), reader));
    }
    let dir = recorded.parent().unwrap_or(Path::new("."));
    let id = container_of(recorded).unwrap_or_default();
    for file in files::list_container(dir, &id)? {
        let Ok(mut reader) = LogReader::open(&file.path, file.gz) else {
            continue;
        };
        let found = if file.gz {
            reader.fingerprint().ok().flatten() == Some(key.fp)
        } else {
            is_key(&mut reader)
        };
        if found {
            return Ok((file.path, reader));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("the file {key} recorded as {} is gone", recorded.display()),
    ))
}

/// The logs read, one event at a time in round-robin order over the containers.
impl Source for DockerSource {
    fn peek(&mut self) -> Option<&Offer> {
        if self.peeked.is_none() {
            self.peeked = self.next_event().map(Offer::from);
        }
        self.peeked.as_ref()
    }

    fn take(&mut self) -> Option<Offer> {
        self.peeked
            .take()
            .or_else(|| self.next_event().map(Offer::from))
    }
}

#[cfg(test)]
mod tests;
