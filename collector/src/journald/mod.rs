//! The journald source: follows the journal with `journalctl --follow --output=json` on a
//! thread of its own, decodes and filters entries, maps Docker journald-driver entries to
//! containers, and hands events with their cursors to the pipeline through a bounded queue.
//! journalctl is restarted with backoff whenever it exits, resuming after the last cursor
//! read; a cursor that is not in the journal any more gives a loud gap event.

pub mod audit;
pub mod decode;
pub mod event;
pub mod reader;

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use logward_proto::Event;
use tokio::sync::Notify;

use crate::config::{Config, JournalStart};
use crate::container::filter::Filter;
use crate::container::meta::{ContainerMeta, parse_container_config};
use crate::source::{Offer, Position, Source};
use crate::stamp::{self, FIELD_DECODE_ERROR, FIELD_TRUNCATED, now_nanos, set_field};
use decode::{ContainerRef, decode_entry};
use event::{EntryFilter, cursor_gap_event, to_event};
use reader::{From, Location, Probe, SharedChild};

/// Entries waiting between the reader thread and the pipeline.
const QUEUE: usize = 256;
/// Values other than MESSAGE are cut at this many bytes.
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Longest backoff between journalctl restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Container metadata cached at most for this many containers.
const META_CACHE: usize = 1024;

/// The journald source handle held by the pipeline. What it offers is an event to ship,
/// or only a cursor to move past (an entry the filters dropped), or both; events the
/// collector made itself and lines that were not entries have no cursor.
pub struct JournaldSource {
    rx: Receiver<Offer>,
    /// The item shown by [`Source::peek`], not taken yet.
    pending: Option<Offer>,
    stop: Arc<AtomicBool>,
    child: SharedChild,
}

/// What the source reads, from the configuration.
pub fn location(config: &Config) -> Location {
    match (&config.journal_dir, config.journal_files.is_empty()) {
        (Some(dir), _) => Location::Dir(dir.clone()),
        (None, false) => Location::Files(config.journal_files.clone()),
        (None, true) => Location::System,
    }
}

impl JournaldSource {
    /// Starts following the journal after `cursor` (or from `journal_start` without one).
    /// `wake` is notified whenever an item is queued.
    pub fn start(config: &Config, cursor: Option<String>, wake: Arc<Notify>) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let child: SharedChild = Arc::default();
        let location = location(config);
        announce(&location, &config.journalctl);
        let worker = Worker {
            journalctl: config.journalctl.clone(),
            location,
            matches: config.matches.clone(),
            start: config.journal_start,
            hostname: config.hostname.clone(),
            docker_dir: (!config.docker_dir.as_os_str().is_empty())
                .then(|| config.docker_dir.clone()),
            entry_filter: EntryFilter::new(config),
            container_filter: Filter::new(&config.filter_spec()).ok(),
            max_event_bytes: config.max_event_bytes,
            tx,
            wake,
            stop: stop.clone(),
            child: child.clone(),
            metas: HashMap::new(),
            exit_logged: false,
        };
        let spawned = std::thread::Builder::new()
            .name("journald".to_owned())
            .spawn(move || worker.run(cursor));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the journald reader thread: journald not collected");
        }
        Self {
            rx,
            pending: None,
            stop,
            child,
        }
    }
}

/// The entries queued by the reader thread, in journal order.
impl Source for JournaldSource {
    fn peek(&mut self) -> Option<&Offer> {
        if self.pending.is_none() {
            self.pending = self.rx.try_recv().ok();
        }
        self.pending.as_ref()
    }

    fn take(&mut self) -> Option<Offer> {
        self.pending.take().or_else(|| self.rx.try_recv().ok())
    }
}

impl Drop for JournaldSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        reader::reap(&self.child, true);
    }
}

fn announce(location: &Location, journalctl: &Path) {
    let found = match location {
        Location::System => ["/var/log/journal", "/run/log/journal"]
            .iter()
            .any(|d| Path::new(d).is_dir()),
        Location::Dir(dir) => dir.is_dir(),
        Location::Files(files) => files.iter().all(|f| f.is_file()),
    };
    if found {
        tracing::info!(journal = %location, journalctl = %journalctl.display(), "journald source reading");
    } else {
        tracing::warn!(
            journal = %location, journalctl = %journalctl.display(),
            "journald source: journal not found, retrying until it appears"
        );
    }
}

struct Worker {
    journalctl: PathBuf,
    location: Location,
    matches: Vec<String>,
    start: JournalStart,
    hostname: String,
    docker_dir: Option<PathBuf>,
    entry_filter: EntryFilter,
    container_filter: Option<Filter>,
    max_event_bytes: usize,
    tx: SyncSender<Offer>,
    wake: Arc<Notify>,
    stop: Arc<AtomicBool>,
    child: SharedChild,
    metas: HashMap<String, ContainerMeta>,
    exit_logged: bool,
}

enum Sent {
    Ok,
    Closed,
}

impl Worker {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn send(&self, item: Offer) -> Sent {
        let mut item = item;
        loop {
            match self.tx.try_send(item) {
                Ok(()) => {
                    self.wake.notify_one();
                    return Sent::Ok;
                }
                Err(TrySendError::Full(back)) => {
                    item = back;
                    self.wake.notify_one();
                    if !reader::sleep_unless_stopped(Duration::from_millis(5), &self.stop) {
                        return Sent::Closed;
                    }
                }
                Err(TrySendError::Disconnected(_)) => return Sent::Closed,
            }
        }
    }

    fn run(mut self, mut cursor: Option<String>) {
        let mut backoff = Duration::from_millis(100);
        let mut unavailable_logged = false;
        while !self.stopped() {
            let from = match &cursor {
                None => From::Start(self.start),
                Some(c) => match reader::probe(&self.journalctl, &self.location, c, &self.stop) {
                    Ok(Probe::Valid) => From::After(c.clone()),
                    Ok(Probe::Invalid(reason)) => {
                        tracing::warn!(
                            cursor = %c, %reason, journal = %self.location,
                            "journald cursor is not in the journal: gap, reading from the oldest retained entry"
                        );
                        let gap = cursor_gap_event(&self.hostname, c, &reason, now_nanos());
                        if let Sent::Closed = self.send(Offer::unplaced(gap)) {
                            return;
                        }
                        From::Start(JournalStart::Beginning)
                    }
                    Ok(Probe::Unavailable(reason)) => {
                        self.unavailable(&reason, &mut unavailable_logged);
                        if !reader::sleep_unless_stopped(MAX_BACKOFF, &self.stop) {
                            return;
                        }
                        continue;
                    }
                    Err(error) => {
                        self.unavailable(&error.to_string(), &mut unavailable_logged);
                        if !reader::sleep_unless_stopped(MAX_BACKOFF, &self.stop) {
                            return;
                        }
                        continue;
                    }
                },
            };
            let read = match self.follow(&from, &mut cursor) {
                Ok(n) => n,
                Err(error) => {
                    self.unavailable(&error.to_string(), &mut unavailable_logged);
                    0
                }
            };
            if self.stopped() {
                return;
            }
            if read > 0 {
                backoff = Duration::from_millis(100);
                unavailable_logged = false;
            }
            if !reader::sleep_unless_stopped(backoff, &self.stop) {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn unavailable(&self, reason: &str, logged: &mut bool) {
        if !*logged {
            tracing::warn!(
                journal = %self.location, %reason,
                "journald source unavailable, retrying"
            );
            *logged = true;
        }
    }

    /// Runs one journalctl follow process to its end; returns the entries read.
    fn follow(&mut self, from: &From, cursor: &mut Option<String>) -> std::io::Result<u64> {
        let args = reader::follow_args(&self.location, &self.matches, from);
        tracing::info!(from = ?from, "journalctl following");
        let (stdout, err_thread) = reader::spawn(&self.journalctl, &args, &self.child)?;
        let mut lines = BufReader::with_capacity(256 * 1024, stdout);
        let mut line = Vec::new();
        let cap = self.max_event_bytes.saturating_mul(4).max(1 << 20);
        let mut read = 0u64;
        let mut bad = 0u64;
        while let Some(cut) = reader::read_line_capped(&mut lines, &mut line, cap)? {
            if self.stopped() {
                break;
            }
            read += 1;
            let item = match decode_entry(&line, self.max_event_bytes, MAX_FIELD_BYTES) {
                Ok(entry) => {
                    *cursor = Some(entry.cursor.clone());
                    let entry_cursor = entry.cursor.clone();
                    let event = self.entry_event(entry);
                    Offer {
                        event,
                        position: Position::Cursor(entry_cursor),
                    }
                }
                Err(error) => {
                    bad += 1;
                    if bad == 1 || bad.is_multiple_of(1000) {
                        tracing::warn!(%error, cut, count = bad, "journalctl printed a line that is not a journal entry, shipping it raw");
                    }
                    Offer::unplaced(raw_event(
                        &self.hostname,
                        &line[..line.len().min(self.max_event_bytes)],
                        &error.to_string(),
                        cut || line.len() > self.max_event_bytes,
                    ))
                }
            };
            if let Sent::Closed = self.send(item) {
                reader::reap(&self.child, true);
                return Ok(read);
            }
        }
        let status = reader::reap(&self.child, self.stopped());
        let stderr = err_thread.join().unwrap_or_default();
        if self.stopped() {
            return Ok(read);
        }
        // Repeated exits without a single entry (no journal yet) are logged once.
        if read > 0 || !self.exit_logged {
            tracing::warn!(
                status = ?status, stderr = %stderr, entries = read, journal = %self.location,
                "journalctl exited, restarting it after the last cursor read"
            );
        } else {
            tracing::debug!(status = ?status, stderr = %stderr, "journalctl exited again");
        }
        self.exit_logged = read == 0;
        Ok(read)
    }

    fn entry_event(&mut self, entry: decode::JournalEntry) -> Option<Event> {
        if !self.entry_filter.accepts(&entry) {
            return None;
        }
        let container = match &entry.container {
            Some(reference) => {
                let meta = self.container_meta(reference);
                if let Some(filter) = &self.container_filter
                    && reference.verified
                    && !filter.accepts(&meta.name, &meta.image, &meta.labels)
                {
                    return None;
                }
                Some(meta.to_proto())
            }
            None => None,
        };
        Some(to_event(
            entry,
            &self.hostname,
            container,
            now_nanos(),
            self.max_event_bytes,
        ))
    }

    /// Metadata of a journald-driver container: `config.v2.json` under the Docker
    /// directory when readable, else what the entry carries.
    fn container_meta(&mut self, reference: &ContainerRef) -> ContainerMeta {
        if let Some(meta) = self.metas.get(&reference.id) {
            return meta.clone();
        }
        let from_entry = ContainerMeta {
            id: reference.id.clone(),
            name: reference.name.trim_start_matches('/').to_owned(),
            image: reference.image.clone(),
            ..ContainerMeta::default()
        };
        let meta = self
            .docker_dir
            .as_ref()
            .filter(|_| {
                reference.id.len() == 64 && reference.id.bytes().all(|b| b.is_ascii_hexdigit())
            })
            .and_then(|dir| std::fs::read(dir.join(&reference.id).join("config.v2.json")).ok())
            .and_then(|bytes| parse_container_config(&bytes).ok())
            .map_or(from_entry, |mut meta| {
                meta.id.clone_from(&reference.id);
                meta
            });
        if self.metas.len() >= META_CACHE {
            self.metas.clear();
        }
        self.metas.insert(reference.id.clone(), meta.clone());
        meta
    }
}

fn raw_event(hostname: &str, line: &[u8], error: &str, cut: bool) -> Event {
    let mut event = Event {
        timestamp_nanos: now_nanos(),
        message: prost::bytes::Bytes::copy_from_slice(line),
        ..stamp::event(hostname, logward_proto::Source::Journald)
    };
    set_field(&mut event, FIELD_DECODE_ERROR, error);
    if cut {
        set_field(&mut event, FIELD_TRUNCATED, "true");
    }
    event
}
