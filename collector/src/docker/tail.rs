//! Tailing one json-file log: complete-line splitting, partial-chunk merging, truncation.
//!
//! A [`Tailer`] reads a file from an offset in bounded chunks and yields [`TailItem`]s, each
//! covering a byte range that starts and ends on an event boundary. Turning bytes into items
//! depends on nothing but the bytes (except the idle flush, which marks its item `forced`),
//! so re-reading a recorded range after a crash rebuilds exactly the same events.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logward_proto::StreamKind;

use super::decode::decode_line;
use super::files::LogReader;
use crate::checkpoint::FileKey;

/// How much a tailer reads from its file at a time.
pub const READ_CHUNK: usize = 64 * 1024;

/// Size limits and timing for turning lines into events.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest event message; a longer (merged) line keeps its head and is flagged truncated.
    pub max_event_bytes: usize,
    /// A pending partial line with no new data for this long is shipped on its own.
    pub partial_idle: Duration,
}

impl Limits {
    /// Longest raw json-file line kept in memory; longer lines are shipped as undecodable.
    /// Docker itself never writes lines anywhere near this (it splits output at 16 KiB).
    pub fn max_line_bytes(&self) -> usize {
        (2 * self.max_event_bytes).max(READ_CHUNK)
    }
}

/// One event's worth of bytes from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailItem {
    /// Offset of the event's first byte.
    pub start: u64,
    /// Offset just past the event's last `\n`.
    pub end: u64,
    /// The event was cut by the idle timer, not by the bytes: a recorded range must end here.
    pub forced: bool,
    /// What the bytes held.
    pub record: Record,
}

/// The content of a [`TailItem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A decoded line, or several partial chunks merged into one.
    Line {
        /// Output stream.
        stream: StreamKind,
        /// Time of the (first) chunk.
        time_nanos: i64,
        /// The text, at most `max_event_bytes` long.
        message: Vec<u8>,
        /// Text beyond `max_event_bytes` was dropped.
        truncated: bool,
        /// The final chunk never came (another stream, a bad line, or the idle timer intervened).
        incomplete: bool,
    },
    /// A line that is not valid json-file output, kept verbatim (head only if overlong).
    Undecodable {
        /// The raw line without its `\n`.
        raw: Vec<u8>,
        /// Why it could not be decoded.
        error: String,
    },
}

struct Pending {
    start: u64,
    end: u64,
    stream: StreamKind,
    time_nanos: i64,
    message: Vec<u8>,
    truncated: bool,
    last_data: Instant,
}

/// Merges Docker's partial chunks; fed one complete line at a time.
pub struct Assembler {
    max_event_bytes: usize,
    pending: Option<Pending>,
    out: VecDeque<TailItem>,
}

impl Assembler {
    /// An assembler with nothing pending.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            pending: None,
            out: VecDeque::new(),
        }
    }

    /// Feeds the line occupying `[start, end)` (`line` excludes the `\n`).
    pub fn push_line(&mut self, line: &[u8], start: u64, end: u64) {
        let decoded = match decode_line(line) {
            Ok(decoded) => decoded,
            Err(err) => {
                self.flush(false);
                let raw = line[..line.len().min(self.max_event_bytes)].to_vec();
                self.emit(
                    start,
                    end,
                    false,
                    Record::Undecodable {
                        raw,
                        error: err.to_string(),
                    },
                );
                return;
            }
        };
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.stream != decoded.stream)
        {
            self.flush(false);
        }
        let pending = self.pending.get_or_insert_with(|| Pending {
            start,
            end,
            stream: decoded.stream,
            time_nanos: decoded.time_nanos,
            message: Vec::new(),
            truncated: false,
            last_data: Instant::now(),
        });
        // Once truncated, nothing more is appended: a later chunk that would fit must
        // not be joined to a head it does not follow (the message stays a prefix).
        let room = if pending.truncated {
            0
        } else {
            self.max_event_bytes - pending.message.len()
        };
        let text = decoded.log.as_bytes();
        if text.len() > room {
            pending
                .message
                .extend_from_slice(&text[..floor_char_boundary(&decoded.log, room)]);
            pending.truncated = true;
        } else {
            pending.message.extend_from_slice(text);
        }
        pending.end = end;
        pending.last_data = Instant::now();
        if !decoded.partial {
            self.finish_pending(false, false);
        }
    }

    /// Records an over-long line `[start, end)` of which only `head` was kept.
    pub fn push_overlong(&mut self, head: Vec<u8>, start: u64, end: u64) {
        self.flush(false);
        let error = format!("line of {} bytes exceeds the line limit", end - start - 1);
        self.emit(start, end, false, Record::Undecodable { raw: head, error });
    }

    /// Ships a pending partial line as it is, marked incomplete.
    pub fn flush(&mut self, forced: bool) {
        self.finish_pending(true, forced);
    }

    /// When the pending partial line last received data.
    pub fn pending_since(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.last_data)
    }

    /// Offset where the pending partial line starts.
    pub fn pending_start(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.start)
    }

    /// Takes the next finished item.
    pub fn pop(&mut self) -> Option<TailItem> {
        self.out.pop_front()
    }

    fn finish_pending(&mut self, incomplete: bool, forced: bool) {
        if let Some(p) = self.pending.take() {
            let record = Record::Line {
                stream: p.stream,
                time_nanos: p.time_nanos,
                message: p.message,
                truncated: p.truncated,
                incomplete,
            };
            self.emit(p.start, p.end, forced, record);
        }
    }

    fn emit(&mut self, start: u64, end: u64, forced: bool, record: Record) {
        self.out.push_back(TailItem {
            start,
            end,
            forced,
            record,
        });
    }
}

/// The largest index `<= at` that is a char boundary of `s`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    (0..=at.min(s.len()))
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

/// Reads one file from an offset and yields complete events.
pub struct Tailer {
    path: PathBuf,
    key: FileKey,
    file: LogReader,
    limits: Limits,
    /// The file's length when last looked at (plain files only).
    len_seen: u64,
    /// Bytes read but not yet split; `buf[pos..]` is unconsumed, `buf[0]` is at `base`.
    buf: Vec<u8>,
    pos: usize,
    base: u64,
    /// File offset up to which bytes have been read.
    read_pos: u64,
    /// An over-long line being discarded: its start and its kept head.
    skip: Option<(u64, Vec<u8>)>,
    /// Stop reading here (re-reading a recorded range).
    limit: Option<u64>,
    asm: Assembler,
}

impl Tailer {
    /// Reads `file` (whose identity is `key`, found at `path`) from `offset`. An offset past
    /// the end of the file (it was truncated while nobody watched) restarts at 0 with a warning.
    pub fn new(
        file: LogReader,
        path: &Path,
        key: FileKey,
        offset: u64,
        limits: Limits,
    ) -> io::Result<Self> {
        let len = file.len()?;
        let mut offset = offset;
        if len < offset {
            tracing::warn!(
                path = %path.display(), offset, len,
                "log file is shorter than its checkpoint, reading it from the start"
            );
            offset = 0;
        }
        Ok(Self {
            path: path.to_owned(),
            key,
            file,
            limits,
            len_seen: if len == u64::MAX { 0 } else { len },
            buf: Vec::new(),
            pos: 0,
            base: offset,
            read_pos: offset,
            skip: None,
            limit: None,
            asm: Assembler::new(limits.max_event_bytes),
        })
    }

    /// Opens the plain file `path` to read from `offset`; its key carries the fingerprint
    /// `0` while the file has no first line yet.
    pub fn open(path: &Path, offset: u64, limits: Limits) -> io::Result<Self> {
        let mut file = LogReader::open(path, false)?;
        let (dev, ino) = file.dev_ino()?;
        let fp = file.fingerprint()?.unwrap_or(0);
        Self::new(file, path, FileKey { dev, ino, fp }, offset, limits)
    }

    /// Reads exactly the events recorded in `[start, end)` of `file`, whose identity the
    /// caller checked. Fewer items come back if the file no longer holds the whole range.
    pub fn read_range(
        file: LogReader,
        path: &Path,
        key: FileKey,
        (start, end): (u64, u64),
        limits: Limits,
    ) -> io::Result<Vec<TailItem>> {
        let mut tailer = Self::new(file, path, key, 0, limits)?;
        tailer.base = start;
        tailer.read_pos = start;
        tailer.limit = Some(end);
        let mut items = Vec::new();
        while let Some(item) = tailer.next_item()? {
            items.push(item);
        }
        tailer.asm.flush(false);
        items.extend(std::iter::from_fn(|| tailer.asm.pop()));
        Ok(items)
    }

    /// The file's identity.
    pub fn key(&self) -> FileKey {
        self.key
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Offset of the first byte not yet handed out in an item.
    pub fn consumed(&self) -> u64 {
        let mut at = self.base + self.pos as u64;
        if let Some((start, _)) = &self.skip {
            at = at.min(*start);
        }
        if let Some(start) = self.asm.pending_start() {
            at = at.min(start);
        }
        at
    }

    /// Bytes of the file not yet read into an event (plain files; 0 for gzipped ones).
    pub fn lag(&self) -> u64 {
        let len = match self.file.len() {
            Ok(u64::MAX) | Err(_) => self.len_seen,
            Ok(len) => len,
        };
        len.saturating_sub(self.consumed())
    }

    /// The file's size on disk (compressed for a `.gz`).
    pub fn disk_len(&self) -> Option<u64> {
        self.file.disk_len().ok()
    }

    /// The file's length when last looked at.
    pub fn len_seen(&self) -> u64 {
        self.len_seen
    }

    /// Ships a pending partial line as it is (the file will never grow again).
    pub fn finish(&mut self) {
        self.asm.flush(false);
    }

    /// Restarts from offset 0 if the file shrank below what was read or, with `deep`, if its
    /// first line changed (it was truncated and written again). Returns the estimate of bytes
    /// lost (what had been written past the last read and is gone) when it did.
    pub fn check_truncation(&mut self, deep: bool) -> io::Result<Option<u64>> {
        let len = self.file.len()?;
        if self.file.is_gz() {
            return Ok(None);
        }
        let rewritten = deep && self.read_pos > 0 && self.file.fingerprint()? != Some(self.key.fp);
        if len >= self.read_pos && !rewritten {
            self.len_seen = len;
            return Ok(None);
        }
        let lost = self.len_seen.saturating_sub(self.read_pos);
        tracing::warn!(
            path = %self.path.display(), offset = self.read_pos, len, bytes_lost_estimate = lost,
            "log file was truncated, reading it again from the start"
        );
        self.buf.clear();
        self.pos = 0;
        self.base = 0;
        self.read_pos = 0;
        self.skip = None;
        self.asm = Assembler::new(self.limits.max_event_bytes);
        self.len_seen = len;
        Ok(Some(lost))
    }

    /// The next complete event, or `None` when the file holds no complete one yet.
    pub fn next_item(&mut self) -> io::Result<Option<TailItem>> {
        loop {
            if let Some(item) = self.asm.pop() {
                return Ok(Some(item));
            }
            if self.split_one() {
                continue;
            }
            if self.fill()? == 0 {
                if self.limit.is_none() && self.idle_pending() {
                    self.asm.flush(true);
                    continue;
                }
                return Ok(None);
            }
        }
    }

    fn idle_pending(&self) -> bool {
        self.asm
            .pending_since()
            .is_some_and(|since| since.elapsed() >= self.limits.partial_idle)
    }

    /// Splits one line off the buffer and feeds it to the assembler. False: need more bytes.
    fn split_one(&mut self) -> bool {
        let unconsumed = &self.buf[self.pos..];
        let newline = unconsumed.iter().position(|&b| b == b'\n');
        let start = self.base + self.pos as u64;
        match (newline, self.skip.take()) {
            (Some(i), None) => {
                let end = start + i as u64 + 1;
                if i > self.limits.max_line_bytes() {
                    // Same verdict whether the line arrived at once or in pieces.
                    let head = unconsumed[..self.limits.max_event_bytes].to_vec();
                    self.asm.push_overlong(head, start, end);
                } else {
                    self.asm.push_line(&unconsumed[..i], start, end);
                }
                self.pos += i + 1;
                true
            }
            (Some(i), Some((skip_start, head))) => {
                let end = start + i as u64 + 1;
                self.asm.push_overlong(head, skip_start, end);
                self.pos += i + 1;
                true
            }
            (None, skip) => {
                let skip = match skip {
                    Some(skip) => Some(skip),
                    None if unconsumed.len() > self.limits.max_line_bytes() => {
                        let head = unconsumed[..self.limits.max_event_bytes].to_vec();
                        Some((start, head))
                    }
                    None => None,
                };
                if skip.is_some() {
                    // Everything buffered belongs to the over-long line: let it go.
                    self.pos = self.buf.len();
                }
                self.skip = skip;
                false
            }
        }
    }

    /// Appends up to one chunk of new bytes to the buffer; returns how many.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        let mut want = READ_CHUNK as u64;
        if let Some(limit) = self.limit {
            want = want.min(limit.saturating_sub(self.read_pos));
        }
        if want == 0 {
            return Ok(0);
        }
        let old = self.buf.len();
        // `want` is at most READ_CHUNK, so the cast cannot truncate.
        self.buf.resize(old + want as usize, 0);
        let read = self.file.read_at(&mut self.buf[old..], self.read_pos);
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(old);
                return Err(e);
            }
        };
        self.buf.truncate(old + n);
        self.read_pos += n as u64;
        if !self.file.is_gz() {
            self.len_seen = self.len_seen.max(self.read_pos);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
