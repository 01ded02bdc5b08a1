//! One container's log set as a chain of files read oldest first: rotated files (`.N`,
//! `.N.gz`, or deleted ones still held open) before the live `-json.log`.
//!
//! Every file is opened as soon as it is listed and its descriptor is held, so a file that
//! Docker renames, compresses or deletes is still read to its end. The head of the chain is
//! read; once it is at its end and is no longer the live file, it is finished and the next
//! file starts. Docker never writes a rotated file again, so "at the end and rotated" is final.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::files::gz::{GzReady, twin_of};
use super::files::{LogFile, LogReader, list_container};
use super::tail::{Limits, TailItem, Tailer};
use crate::checkpoint::{FileKey, FileState};

/// Marks a file that is no longer listed in the directory.
const VANISHED: u32 = u32::MAX;

/// Uncompressed bytes a `.gz` is checked over per wake-up, so no file stalls the collector.
pub const GZ_CHECK_BUDGET: u64 = 32 * 1024 * 1024;
/// Failed attempts at a file before it is given up and reported as a gap.
pub const MAX_FAILURES: u32 = 6;
/// First back-off after a failure; doubled after each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Fingerprints of finished files remembered after they left the directory.
const FINISHED_KEPT: usize = 64;

enum Reading {
    /// Open, without a first line yet (so without a fingerprint).
    Waiting(LogReader),
    Tailing(Box<Tailer>),
    /// Given up on (a read failed while starting); dropped at the end of the scan.
    Closed,
}

struct Entry {
    path: PathBuf,
    rotation: u32,
    dev_ino: (u64, u64),
    reading: Reading,
    gz: bool,
    /// Failed attempts at starting this file in a row, and when to try again.
    failures: u32,
    retry_at: Option<Instant>,
}

/// A file read to its end, or a compressed copy of one.
#[derive(Debug, Clone, Copy)]
struct Done {
    fp: u32,
    /// For a verified `.gz`, its compressed size (an inode reused by a new file shows as
    /// another size); `None` for plain files (checked by fingerprint) and for copies known
    /// from their plain twin.
    gz_len: Option<u64>,
}

/// Where the checkpoint and the in-memory read position put each file.
pub struct Positions<'a> {
    /// Acknowledged offsets.
    pub acked: &'a BTreeMap<FileKey, FileState>,
    /// Offsets read and journaled, not yet acked.
    pub read: &'a BTreeMap<FileKey, u64>,
    /// Start new files at their end (`read_from = "end"`, very first start).
    pub at_end: bool,
}

impl Positions<'_> {
    /// Where to start `key`, found in `dir`: exact key, else the same content under another
    /// inode (a gzipped copy). A file's identity is its content (the fingerprint within its
    /// container directory), so acked and journaled (read, not yet acked) positions both
    /// count, whichever inode they were recorded under.
    pub fn start(&self, key: FileKey, dir: &Path) -> Option<u64> {
        let exact = self
            .acked
            .get(&key)
            .map(|f| f.offset)
            .into_iter()
            .chain(self.read.get(&key).copied())
            .max();
        exact.or_else(|| {
            // Journaled ranges carry no directory: their fingerprint (a CRC of a first line
            // holding a nanosecond timestamp) is what ties them to this file.
            let acked = self
                .acked
                .values()
                .filter(|f| f.key.fp == key.fp && f.path.parent() == Some(dir))
                .map(|f| f.offset);
            let read = self
                .read
                .iter()
                .filter(|(k, _)| k.fp == key.fp)
                .map(|(_, &offset)| offset);
            acked.chain(read).max()
        })
    }
}

/// What a scan noticed that the source must report.
pub enum Notice {
    /// A file shrank below what was read.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes that were written past the last read and are gone.
        lost: u64,
    },
    /// Starting a file failed; it is retried after a back-off.
    ReadFailed {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: String,
        /// Failures in a row so far.
        failures: u32,
    },
    /// A file failed [`MAX_FAILURES`] times and was given up: its content is lost.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Its size on disk (compressed for a `.gz`).
        bytes: u64,
        /// The last error.
        error: String,
    },
    /// A file's start position was set without reading (`read_from = "end"`).
    Skipped {
        /// The file.
        key: FileKey,
        /// Its path.
        path: PathBuf,
        /// Where reading starts.
        offset: u64,
    },
}

/// The files of one container.
#[derive(Default)]
pub struct Chain {
    entries: Vec<Entry>,
    /// Files read to their end (and gzipped copies of them) still in the directory, with
    /// their fingerprints.
    done: HashMap<(u64, u64), Done>,
    /// Fingerprints of files read to their end, kept after they left the directory (their
    /// compressed copy may be verified later), newest last.
    finished: VecDeque<u32>,
    /// Files given up on (see [`Notice::Unreadable`]), not opened again while listed.
    given_up: HashSet<(u64, u64)>,
    /// Nothing more to read until the next scan or wake-up.
    pub exhausted: bool,
}

impl Chain {
    /// Whether no file is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a file with this fingerprint is being read, or was read and is still there.
    pub fn knows(&self, fp: u32) -> bool {
        self.done.values().any(|d| d.fp == fp)
            || self.finished.contains(&fp)
            || self.entries.iter().any(|e| match &e.reading {
                Reading::Tailing(t) => t.key().fp == fp,
                Reading::Waiting(_) | Reading::Closed => false,
            })
    }

    /// Re-lists `dir` and brings the chain up to date.
    pub fn scan(
        &mut self,
        dir: &Path,
        id: &str,
        positions: &Positions<'_>,
        limits: Limits,
        notices: &mut Vec<Notice>,
    ) -> io::Result<()> {
        let listed = match list_container(dir, id) {
            Ok(listed) => listed,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut present = HashSet::new();
        for file in &listed {
            let Ok(meta) = std::fs::metadata(&file.path) else {
                continue;
            };
            let dev_ino = (meta.dev(), meta.ino());
            present.insert(dev_ino);
            if let Some(entry) = self.entries.iter_mut().find(|e| e.dev_ino == dev_ino) {
                entry.path.clone_from(&file.path);
                entry.rotation = file.rotation;
                continue;
            }
            // From here on only the open descriptor is trusted: the path may have been
            // renamed since it was listed (the next scan sees it where it is then).
            let mut reader = match LogReader::open(&file.path, file.gz) {
                Ok(reader) => reader,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => {
                    tracing::warn!(path = %file.path.display(), %error, "cannot open docker log, will retry");
                    continue;
                }
            };
            if reader.dev_ino().ok() != Some(dev_ino) || self.given_up.contains(&dev_ino) {
                continue;
            }
            if let Some(done) = self.done.get(&dev_ino).copied() {
                // The same file, unless its inode was reused by a new one.
                let same = match done.gz_len {
                    _ if !file.gz => reader.fingerprint().ok().flatten() == Some(done.fp),
                    Some(len) => reader.disk_len().ok() == Some(len),
                    None => true,
                };
                if same {
                    continue;
                }
                self.done.remove(&dev_ino);
            }
            self.add(file, reader, dev_ino);
        }
        self.done.retain(|d, _| present.contains(d));
        self.given_up.retain(|d| present.contains(d));
        for entry in &mut self.entries {
            if !present.contains(&entry.dev_ino) {
                entry.rotation = VANISHED;
            }
        }
        self.start_waiting(dir, positions, limits, notices);
        self.sort();
        for entry in &mut self.entries {
            if let Reading::Tailing(tailer) = &mut entry.reading
                && let Some(lost) = tailer.check_truncation(true)?
            {
                notices.push(Notice::Truncated {
                    path: entry.path.clone(),
                    lost,
                });
            }
        }
        self.exhausted = false;
        Ok(())
    }

    /// Oldest first: vanished files, then the highest rotation (a plain file before its
    /// compressed copy), the live file last.
    fn sort(&mut self) {
        self.entries
            .sort_by_key(|e| (std::cmp::Reverse(e.rotation), e.gz));
    }

    /// The fingerprint of a file held (being read, or read to its end) with this identity.
    fn held_fp(&self, dev_ino: (u64, u64)) -> Option<u32> {
        if let Some(done) = self.done.get(&dev_ino) {
            return Some(done.fp);
        }
        self.entries
            .iter()
            .find(|e| e.dev_ino == dev_ino)
            .and_then(|e| match &e.reading {
                Reading::Tailing(t) => Some(t.key().fp),
                Reading::Waiting(_) | Reading::Closed => None,
            })
    }

    fn add(&mut self, file: &LogFile, reader: LogReader, dev_ino: (u64, u64)) {
        if file.gz {
            // dockerd compresses `.N` into `.N.gz` while `.N` exists: a `.gz` appearing next
            // to a plain file this chain holds is that file's copy, known without decoding.
            let twin = twin_of(&file.path).and_then(|twin| std::fs::metadata(twin).ok());
            if let Some(meta) = twin
                && let Some(fp) = self.held_fp((meta.dev(), meta.ino()))
            {
                self.done.insert(dev_ino, Done { fp, gz_len: None });
                return;
            }
        }
        self.entries.push(Entry {
            path: file.path.clone(),
            rotation: file.rotation,
            dev_ino,
            reading: Reading::Waiting(reader),
            gz: file.gz,
            failures: 0,
            retry_at: None,
        });
    }

    /// Counts a failure of `entry`, backs it off, and gives it up after [`MAX_FAILURES`].
    /// Returns whether it was given up.
    fn failed(entry: &mut Entry, error: &str, notices: &mut Vec<Notice>) -> bool {
        entry.failures += 1;
        let backoff = FIRST_BACKOFF * 2u32.saturating_pow(entry.failures - 1);
        entry.retry_at = Some(Instant::now() + backoff);
        tracing::warn!(
            path = %entry.path.display(), %error, failures = entry.failures,
            retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
            "cannot read docker log, backing off"
        );
        notices.push(Notice::ReadFailed {
            path: entry.path.clone(),
            error: error.to_owned(),
            failures: entry.failures,
        });
        if entry.failures < MAX_FAILURES {
            return false;
        }
        let bytes = match &entry.reading {
            Reading::Waiting(reader) => reader.disk_len().unwrap_or(0),
            Reading::Tailing(_) | Reading::Closed => 0,
        };
        tracing::warn!(
            path = %entry.path.display(), %error, bytes,
            "giving up on docker log after repeated failures"
        );
        notices.push(Notice::Unreadable {
            path: entry.path.clone(),
            bytes,
            error: error.to_owned(),
        });
        true
    }

    /// Starts tailing files that got a first line, at their checkpointed offset.
    fn start_waiting(
        &mut self,
        dir: &Path,
        positions: &Positions<'_>,
        limits: Limits,
        notices: &mut Vec<Notice>,
    ) {
        let mut finished: Vec<(usize, Done)> = Vec::new();
        let mut given_up: Vec<usize> = Vec::new();
        let now = Instant::now();
        for index in 0..self.entries.len() {
            let entry = &mut self.entries[index];
            if entry.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            let Reading::Waiting(reader) = &mut entry.reading else {
                continue;
            };
            match reader.check(GZ_CHECK_BUDGET) {
                GzReady::Ready => {}
                GzReady::Progress => continue,
                GzReady::Pending(why) => {
                    // Without its plain twin, a `.gz` that ends early is one dockerd never
                    // finished (it died compressing): that is a failure, backed off.
                    let twin = twin_of(&entry.path).is_some_and(|t| t.exists());
                    if !entry.gz || twin {
                        continue;
                    }
                    if Self::failed(entry, why, notices) {
                        given_up.push(index);
                    }
                    continue;
                }
                GzReady::Corrupt(error) => {
                    if Self::failed(entry, &error, notices) {
                        given_up.push(index);
                    }
                    continue;
                }
            }
            let Reading::Waiting(reader) = &mut entry.reading else {
                continue;
            };
            let gz_len = if entry.gz {
                reader.disk_len().ok()
            } else {
                None
            };
            let key = match reader.key() {
                Ok(Some(key)) => key,
                Ok(None) => continue,
                Err(error) => {
                    if Self::failed(entry, &error.to_string(), notices) {
                        given_up.push(index);
                    }
                    continue;
                }
            };
            if entry.gz && self.knows(key.fp) {
                // A compressed copy of a file already read or being read is not read again.
                finished.push((index, Done { fp: key.fp, gz_len }));
                continue;
            }
            let entry = &mut self.entries[index];
            let Reading::Waiting(reader) = &mut entry.reading else {
                continue;
            };
            let mut offset = positions.start(key, dir);
            if offset.is_none() && positions.at_end {
                // Rotated files are skipped whole, the live file from its last complete line.
                if entry.rotation != 0 {
                    finished.push((index, Done { fp: key.fp, gz_len }));
                    continue;
                }
                let end = reader.len().map_or(0, |len| last_line_end(reader, len));
                notices.push(Notice::Skipped {
                    key,
                    path: entry.path.clone(),
                    offset: end,
                });
                offset = Some(end);
            }
            let Reading::Waiting(reader) = std::mem::replace(&mut entry.reading, Reading::Closed)
            else {
                continue;
            };
            match Tailer::new(reader, &entry.path, key, offset.unwrap_or(0), limits) {
                Ok(tailer) => {
                    tracing::debug!(
                        path = %entry.path.display(), offset = tailer.consumed(), key = %key,
                        "tailing docker log"
                    );
                    entry.reading = Reading::Tailing(Box::new(tailer));
                }
                Err(error) => {
                    tracing::warn!(path = %entry.path.display(), %error, "cannot read docker log, will retry");
                }
            }
        }
        for index in given_up {
            let entry = &mut self.entries[index];
            entry.reading = Reading::Closed;
            self.given_up.insert(entry.dev_ino);
        }
        for (index, done) in finished.into_iter().rev() {
            let entry = self.entries.remove(index);
            self.done.insert(entry.dev_ino, done);
        }
        self.entries.retain(|e| match e.reading {
            Reading::Closed => false,
            Reading::Waiting(_) => e.rotation != VANISHED,
            Reading::Tailing(_) => true,
        });
    }

    /// The next event of this container, reading its oldest unfinished file.
    pub fn next_item(&mut self) -> Option<(FileKey, PathBuf, TailItem)> {
        while let Some(head) = self.entries.first_mut() {
            let Reading::Tailing(tailer) = &mut head.reading else {
                break;
            };
            match tailer.next_item() {
                Ok(Some(item)) => return Some((tailer.key(), head.path.clone(), item)),
                Ok(None) if head.rotation == 0 => break,
                Ok(None) => {
                    tailer.finish();
                    if let Ok(Some(item)) = tailer.next_item() {
                        return Some((tailer.key(), head.path.clone(), item));
                    }
                    tracing::debug!(path = %head.path.display(), "rotated docker log read to its end");
                    let fp = tailer.key().fp;
                    let gz_len = if head.gz { tailer.disk_len() } else { None };
                    let entry = self.entries.remove(0);
                    if entry.rotation != VANISHED {
                        self.done.insert(entry.dev_ino, Done { fp, gz_len });
                    }
                    self.finished.push_back(fp);
                    if self.finished.len() > FINISHED_KEPT {
                        self.finished.pop_front();
                    }
                }
                Err(error) => {
                    tracing::warn!(path = %head.path.display(), %error, "cannot read docker log, will retry");
                    break;
                }
            }
        }
        self.exhausted = true;
        None
    }

    /// Starts files that got their first line, notices files that shrank (a cheap `fstat`
    /// each), and re-arms the chain for reading.
    pub fn wake(
        &mut self,
        dir: &Path,
        positions: &Positions<'_>,
        limits: Limits,
        notices: &mut Vec<Notice>,
    ) {
        if self
            .entries
            .iter()
            .any(|e| matches!(e.reading, Reading::Waiting(_)))
        {
            self.start_waiting(dir, positions, limits, notices);
            self.sort();
        }
        for entry in &mut self.entries {
            if let Reading::Tailing(tailer) = &mut entry.reading
                && let Ok(Some(lost)) = tailer.check_truncation(false)
            {
                notices.push(Notice::Truncated {
                    path: entry.path.clone(),
                    lost,
                });
            }
        }
        self.exhausted = false;
    }

    /// Bytes not yet read, per file.
    pub fn lag(&self) -> impl Iterator<Item = (&Path, FileKey, u64)> + '_ {
        self.entries.iter().filter_map(|e| match &e.reading {
            Reading::Tailing(t) => Some((e.path.as_path(), t.key(), t.lag())),
            Reading::Waiting(_) | Reading::Closed => None,
        })
    }

    /// Length last seen, per file being read.
    pub fn lens(&self) -> impl Iterator<Item = (FileKey, u64)> + '_ {
        self.entries.iter().filter_map(|e| match &e.reading {
            Reading::Tailing(t) => Some((t.key(), t.len_seen())),
            Reading::Waiting(_) | Reading::Closed => None,
        })
    }
}

/// Offset just past the last `\n` at or before `len` (0 if none in the last 64 KiB).
fn last_line_end(reader: &mut LogReader, len: u64) -> u64 {
    let from = len.saturating_sub(64 * 1024);
    let mut buf = vec![0u8; usize::try_from(len - from).unwrap_or(0)];
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read_at(&mut buf[filled..], from + filled as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    buf[..filled]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(from, |i| from + i as u64 + 1)
}
