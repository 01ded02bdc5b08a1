//! The byte-level log: `\n`-terminated records, appended and fsynced, recovered on open.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::atomic::{atomic_replace, remove_stale_temps, sync_dir};
use crate::error::{Error, Result, io_err};

/// What a bad line before the last good one does to [`Log::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CorruptLines {
    /// It is skipped and reported in [`Recovery::skipped`].
    #[default]
    Skip,
    /// The open fails with [`Error::Corrupt`] and the file is left as it is.
    Fail,
}

/// How a log is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Fsync after each append (one fsync per [`Log::append_lines`] call) and after a
    /// truncation. Off, an append survives a killed process (the page cache keeps it) but
    /// not a power loss. Default on.
    pub sync: bool,
    /// Size budget: an append that would make the log longer than this many bytes is
    /// refused with [`Error::OverBudget`] and counted in [`Log::refused`]. Compaction is not
    /// limited (it is how a log gets back under budget). Default none.
    pub max_bytes: Option<u64>,
    /// What a corrupt line before the last good one does. Default [`CorruptLines::Skip`].
    pub corrupt: CorruptLines,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            sync: true,
            max_bytes: None,
            corrupt: CorruptLines::Skip,
        }
    }
}

/// The end of the file that recovery cut off: the lines after the last good line, of which
/// the last does not end in a newline or none parses. A crash in the middle of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Where it started (the log's length after recovery).
    pub offset: u64,
    /// How many bytes it had.
    pub bytes: u64,
    /// Its non-blank complete lines that did not parse (a trailing fragment not counted).
    pub bad_lines: u64,
    /// Whether it ended in a fragment without a newline.
    pub unterminated: bool,
}

/// A line before the last good one that did not parse, skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLine {
    /// Its number, from 1.
    pub line: u64,
    /// The byte offset where it starts.
    pub offset: u64,
    /// What the parser said.
    pub message: String,
}

/// What [`Log::open`] found, for the caller to log and count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Lines that parsed.
    pub good: u64,
    /// Corrupt lines that were skipped.
    pub skipped: Vec<SkippedLine>,
    /// The torn tail, truncated away by [`Log::open`] (left in place by [`read_lines`]).
    pub torn: Option<TornTail>,
    /// Temp files of an interrupted compaction that were removed.
    pub stale_temps: usize,
}

impl Recovery {
    /// Nothing was skipped, cut or cleaned up.
    pub fn is_clean(&self) -> bool {
        self.skipped.is_empty() && self.torn.is_none() && self.stale_temps == 0
    }
}

/// An open log. Records are lines; appends go to the end and are fsynced before they
/// return (unless [`LogOptions::sync`] is off).
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    dir: PathBuf,
    name: String,
    file: File,
    len: u64,
    lines: u64,
    refused: u64,
    options: LogOptions,
}

impl Log {
    /// Opens (creating if needed) the log at `path`, hands every complete non-blank line to
    /// `parse` in file order, and truncates the torn tail away. Temp files of an interrupted
    /// compaction are removed first. The parent directory must exist.
    pub fn open<E: Display>(
        path: &Path,
        options: LogOptions,
        parse: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(Log, Recovery)> {
        let (dir, name) = split(path)?;
        let stale_temps = remove_stale_temps(&dir, &name)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err("open", path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err("read", path))?;
        let mut recovery = scan(path, &bytes, options.corrupt, parse)?;
        recovery.stale_temps = stale_temps;
        let len = match &recovery.torn {
            Some(torn) => {
                file.set_len(torn.offset)
                    .map_err(io_err("truncate", path))?;
                if options.sync {
                    file.sync_data().map_err(io_err("fsync", path))?;
                }
                torn.offset
            }
            None => bytes.len() as u64,
        };
        let lines = recovery.good + recovery.skipped.len() as u64;
        let log = Log {
            path: path.to_owned(),
            dir,
            name,
            file,
            len,
            lines,
            refused: 0,
            options,
        };
        Ok((log, recovery))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the log.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the log holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Lines in the log (good and skipped ones).
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Appends refused by the size budget since the log was opened.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The options it was opened with.
    pub fn options(&self) -> LogOptions {
        self.options
    }

    /// Appends one record (without its newline, which is added).
    pub fn append(&mut self, record: &[u8]) -> Result<()> {
        if record.contains(&b'\n') {
            return Err(self.framing("a record holds a newline"));
        }
        let mut line = Vec::with_capacity(record.len() + 1);
        line.extend_from_slice(record);
        line.push(b'\n');
        self.append_lines(&line).map(|_| ())
    }

    /// Appends whole lines (each ending in a newline) with one write and one fsync, and
    /// returns how many lines they were. If the write fails part way, the log is cut back
    /// to where it was, so that no partial line is left for the next append to extend.
    pub fn append_lines(&mut self, lines: &[u8]) -> Result<u64> {
        if lines.is_empty() {
            return Ok(0);
        }
        if lines.last() != Some(&b'\n') {
            return Err(self.framing("the lines do not end in a newline"));
        }
        let add = lines.len() as u64;
        if let Some(budget) = self.options.max_bytes
            && self.len.saturating_add(add) > budget
        {
            self.refused += 1;
            return Err(Error::OverBudget {
                path: self.path.clone(),
                len: self.len,
                add,
                budget,
            });
        }
        if let Err(source) = self.file.write_all(lines) {
            // Best effort; the write error is the one to report.
            let _ = self.file.set_len(self.len);
            return Err(Error::Io {
                op: "append to",
                path: self.path.clone(),
                source,
            });
        }
        self.len += add;
        let n = count_lines(lines);
        self.lines += n;
        if self.options.sync {
            self.file.sync_data().map_err(io_err("fsync", &self.path))?;
        }
        Ok(n)
    }

    /// Fsyncs what was appended (for a log opened with [`LogOptions::sync`] off).
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(io_err("fsync", &self.path))
    }

    /// Replaces the whole log by `lines` (whole lines, each ending in a newline) through
    /// [`atomic_replace`]: after a crash the log holds either all its old lines or exactly
    /// these. With no lines the file is truncated to zero instead, which is atomic too.
    pub fn compact(&mut self, lines: &[u8]) -> Result<()> {
        if lines.is_empty() {
            self.file
                .set_len(0)
                .map_err(io_err("truncate", &self.path))?;
            if self.options.sync {
                self.file.sync_data().map_err(io_err("fsync", &self.path))?;
            }
        } else {
            if lines.last() != Some(&b'\n') {
                return Err(self.framing("the lines do not end in a newline"));
            }
            atomic_replace(&self.dir, &self.name, lines)?;
            self.file = reopen(&self.path)?;
        }
        self.len = lines.len() as u64;
        self.lines = count_lines(lines);
        Ok(())
    }

    /// Renames the log to `to` (a file name in the same directory, replacing any file of
    /// that name) and starts an empty log at the old path. For logs that rotate rather than
    /// compact.
    pub fn rotate(&mut self, to: &str) -> Result<()> {
        let rotated = self.dir.join(to);
        std::fs::rename(&self.path, &rotated).map_err(io_err("rotate", &self.path))?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(io_err("open", &self.path))?;
        sync_dir(&self.dir)?;
        self.len = 0;
        self.lines = 0;
        Ok(())
    }

    fn framing(&self, problem: &'static str) -> Error {
        Error::Framing {
            path: self.path.clone(),
            problem,
        }
    }
}

/// Reads the log at `path` without changing it, handing every complete non-blank line to
/// `parse` as [`Log::open`] does; the torn tail is reported but not cut. `None` when there
/// is no file. For logs that are only read, such as rotated ones.
pub fn read_lines<E: Display>(
    path: &Path,
    corrupt: CorruptLines,
    parse: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<Option<Recovery>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    scan(path, &bytes, corrupt, parse).map(Some)
}

/// Splits the log's bytes into lines for `parse` and finds the torn tail. Pure.
fn scan<E: Display>(
    path: &Path,
    bytes: &[u8],
    corrupt: CorruptLines,
    mut parse: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<Recovery> {
    let mut recovery = Recovery::default();
    // End of the kept prefix: the last good line, and the blank lines right after it.
    let mut keep = 0;
    // Failures after the last good line: skipped if a good line follows, else torn.
    let mut pending: Vec<SkippedLine> = Vec::new();
    let mut start = 0;
    let mut number = 0;
    while let Some(at) = bytes[start..].iter().position(|&b| b == b'\n') {
        let end = start + at + 1;
        let line = &bytes[start..start + at];
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            if pending.is_empty() {
                keep = end;
            }
        } else {
            match parse(line) {
                Ok(()) => {
                    recovery.good += 1;
                    recovery.skipped.append(&mut pending);
                    keep = end;
                }
                Err(message) => pending.push(SkippedLine {
                    line: number,
                    offset: start as u64,
                    message: message.to_string(),
                }),
            }
        }
        start = end;
    }
    if corrupt == CorruptLines::Fail
        && let Some(first) = recovery.skipped.first()
    {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            line: first.line,
            offset: first.offset,
            message: first.message.clone(),
        });
    }
    if keep < bytes.len() {
        recovery.torn = Some(TornTail {
            offset: keep as u64,
            bytes: (bytes.len() - keep) as u64,
            bad_lines: pending.len() as u64,
            unterminated: start < bytes.len(),
        });
    }
    Ok(recovery)
}

fn count_lines(lines: &[u8]) -> u64 {
    lines.iter().filter(|&&b| b == b'\n').count() as u64
}

fn reopen(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
        .map_err(io_err("reopen", path))
}

/// The directory and file name of a log's path.
fn split(path: &Path) -> Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Io {
            op: "open",
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a UTF-8 file name"),
        })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_owned()))
}

#[cfg(test)]
mod tests;
