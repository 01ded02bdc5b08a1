//! The Docker source: finds json-file logs, tails them, and turns their lines into events.

pub mod decode;
pub mod meta;
pub mod tail;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use logward_proto::{Container, Event, Source, Values};
use prost::bytes::Bytes;

use crate::checkpoint::{FileKey, FileRange};
use meta::{ContainerMeta, parse_container_config};
use tail::{Limits, Record, TailItem, Tailer, discover};

/// Field set on events whose message was cut at `max_event_bytes`.
pub const FIELD_TRUNCATED: &str = "logward.truncated";
/// Field set on lines that could not be decoded; holds the error.
pub const FIELD_DECODE_ERROR: &str = "logward.decode_error";
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

struct Watched {
    tailer: Tailer,
    container_id: String,
    /// No more data this round (or a read failed); skipped until the next poll.
    exhausted: bool,
    /// The file vanished from the directory; dropped once drained.
    gone: bool,
}

struct CachedMeta {
    proto: Container,
    mtime: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Availability {
    Unknown,
    Watching,
    Unavailable,
}

/// Tails every container log under one Docker directory.
pub struct DockerSource {
    dir: PathBuf,
    hostname: String,
    limits: Limits,
    files: BTreeMap<FileKey, Watched>,
    containers: HashMap<String, CachedMeta>,
    availability: Availability,
    /// Keys in round-robin order and where the next round starts.
    order: Vec<FileKey>,
    cursor: usize,
    decode_errors: u64,
}

impl DockerSource {
    /// A source for `dir`; nothing is read until [`DockerSource::poll`].
    pub fn new(dir: &Path, hostname: &str, limits: Limits) -> Self {
        Self {
            dir: dir.to_owned(),
            hostname: hostname.to_owned(),
            limits,
            files: BTreeMap::new(),
            containers: HashMap::new(),
            availability: Availability::Unknown,
            order: Vec::new(),
            cursor: 0,
            decode_errors: 0,
        }
    }

    /// How many files are being tailed.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Keys of every tailed file.
    pub fn keys(&self) -> impl Iterator<Item = FileKey> + '_ {
        self.files.keys().copied()
    }

    /// Lines that failed to decode so far.
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }

    /// Looks at the directory once and logs what it found, without opening any file.
    pub fn announce(&mut self) {
        match discover(&self.dir) {
            Ok(found) => {
                tracing::info!(
                    dir = %self.dir.display(), containers = found.len(), "docker source watching"
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

    /// Rescans the directory: starts tailing new files at `start_offset(key)`, refreshes
    /// container metadata, notices truncation, and re-arms every file for reading. Returns
    /// whether the directory could be listed. A missing directory is not an error: it is
    /// checked again on every poll.
    pub fn poll(&mut self, start_offset: &dyn Fn(FileKey) -> u64) -> bool {
        let found = match discover(&self.dir) {
            Ok(found) => found,
            Err(error) => {
                if self.availability != Availability::Unavailable {
                    tracing::warn!(
                        dir = %self.dir.display(), %error,
                        "docker source unavailable: docker logs will not be collected"
                    );
                    self.availability = Availability::Unavailable;
                }
                for watched in self.files.values_mut() {
                    watched.exhausted = false;
                }
                return false;
            }
        };
        let mut present = Vec::with_capacity(found.len());
        for log in &found {
            self.refresh_meta(&log.container_id, &log.config_path);
            let key = match log.log_path.metadata() {
                Ok(meta) => FileKey::of(&meta),
                Err(_) => continue,
            };
            present.push(key);
            if self.files.contains_key(&key) {
                continue;
            }
            match Tailer::open(&log.log_path, start_offset(key), self.limits) {
                Ok(tailer) => {
                    tracing::debug!(
                        path = %log.log_path.display(), offset = tailer.consumed(),
                        container = %log.container_id, "tailing docker log"
                    );
                    self.files.insert(
                        tailer.key(),
                        Watched {
                            tailer,
                            container_id: log.container_id.clone(),
                            exhausted: false,
                            gone: false,
                        },
                    );
                }
                Err(error) => tracing::warn!(
                    path = %log.log_path.display(), %error, "cannot open docker log, will retry"
                ),
            }
        }
        for (key, watched) in &mut self.files {
            watched.gone = !present.contains(key);
            watched.exhausted = false;
            if let Err(error) = watched.tailer.check_truncation() {
                tracing::warn!(path = %watched.tailer.path().display(), %error, "cannot stat docker log");
            }
        }
        self.containers
            .retain(|id, _| found.iter().any(|l| &l.container_id == id));
        if self.availability != Availability::Watching {
            tracing::info!(
                dir = %self.dir.display(), containers = found.len(), "docker source watching"
            );
            self.availability = Availability::Watching;
        }
        self.order = self.files.keys().copied().collect();
        true
    }

    /// The next event from any file, round-robin; `None` when every file is drained for now.
    pub fn next_event(&mut self) -> Option<SourcedEvent> {
        let n = self.order.len();
        for step in 0..n {
            let index = (self.cursor + step) % n;
            let key = self.order[index];
            let Some(watched) = self.files.get_mut(&key) else {
                continue;
            };
            if watched.exhausted {
                continue;
            }
            match watched.tailer.next_item() {
                Ok(Some(item)) => {
                    self.cursor = (index + 1) % n;
                    let path = watched.tailer.path().to_owned();
                    let container_id = watched.container_id.clone();
                    return Some(self.sourced(key, path, &container_id, item));
                }
                Ok(None) => {
                    watched.exhausted = true;
                    if watched.gone {
                        tracing::info!(path = %watched.tailer.path().display(), "docker log removed, stop tailing");
                        self.files.remove(&key);
                    }
                }
                Err(error) => {
                    tracing::warn!(path = %watched.tailer.path().display(), %error, "cannot read docker log, will retry");
                    watched.exhausted = true;
                }
            }
        }
        None
    }

    /// Rebuilds the events of a recorded range, in order.
    pub fn replay(&mut self, range: &FileRange) -> io::Result<Vec<Event>> {
        let items =
            Tailer::read_range(&range.path, range.key, range.start, range.end, self.limits)?;
        let container_id = range
            .path
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let config_path = range.path.with_file_name("config.v2.json");
        self.refresh_meta(&container_id, &config_path);
        if items.last().map_or(range.start, |i| i.end) != range.end {
            tracing::warn!(
                path = %range.path.display(), start = range.start, end = range.end,
                "recorded range is no longer complete in the file, resending what is left"
            );
        }
        let path = range.path.clone();
        Ok(items
            .into_iter()
            .map(|item| {
                self.sourced(range.key, path.clone(), &container_id, item)
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
            host: self.hostname.clone(),
            source: Source::Docker as i32,
            container: Some(self.container(container_id)),
            ..Event::default()
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
                self.decode_errors += 1;
                if self.decode_errors == 1 || self.decode_errors.is_multiple_of(1000) {
                    tracing::warn!(
                        path = %range.path.display(), offset = range.start, %error,
                        count = self.decode_errors,
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
        self.containers.get(id).map_or_else(
            || ContainerMeta::unknown(id).to_proto(),
            |cached| cached.proto.clone(),
        )
    }

    /// (Re-)reads `config.v2.json` when its mtime changed.
    fn refresh_meta(&mut self, id: &str, config_path: &Path) {
        let mtime = config_path.metadata().and_then(|m| m.modified()).ok();
        if let Some(cached) = self.containers.get(id)
            && cached.mtime == mtime
        {
            return;
        }
        let meta = match std::fs::read(config_path) {
            Ok(bytes) => match parse_container_config(&bytes) {
                Ok(meta) => meta,
                Err(error) => {
                    tracing::warn!(path = %config_path.display(), %error, "cannot parse container config");
                    ContainerMeta::unknown(id)
                }
            },
            Err(error) => {
                tracing::debug!(path = %config_path.display(), %error, "no container config");
                ContainerMeta::unknown(id)
            }
        };
        let mut proto = meta.to_proto();
        if proto.id != id {
            proto.id = id.to_owned();
        }
        self.containers
            .insert(id.to_owned(), CachedMeta { proto, mtime });
    }
}

fn set_field(event: &mut Event, name: &str, value: &str) {
    event.fields.insert(
        name.to_owned(),
        Values {
            values: vec![value.to_owned()],
        },
    );
}

/// The current time in nanoseconds since the Unix epoch.
pub fn now_nanos() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos).unwrap_or(i64::MAX)
}
