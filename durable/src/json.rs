//! The typed log: one serde record per line, as compact JSON.

use std::marker::PhantomData;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::log::{CorruptLines, Log, LogOptions, Recovery, read_lines};

/// A [`Log`] of JSON records of type `T`, one per line (`serde_json`'s compact form, which
/// never holds a raw newline, then `\n`).
#[derive(Debug)]
pub struct JsonLines<T> {
    log: Log,
    records: PhantomData<fn(T) -> T>,
}

/// What [`JsonLines::open`] read: the records in file order and what recovery found.
#[derive(Debug)]
pub struct Recovered<T> {
    /// The records that parsed, in file order.
    pub records: Vec<T>,
    /// Skipped lines, the torn tail, removed temps.
    pub recovery: Recovery,
}

impl<T: Serialize + DeserializeOwned> JsonLines<T> {
    /// Opens (creating if needed) the log at `path` and reads its records; a line that is
    /// not a `T` counts as corrupt (see [`Log::open`] for what happens to it).
    pub fn open(path: &Path, options: LogOptions) -> Result<(Self, Recovered<T>)> {
        let mut records = Vec::new();
        let (log, recovery) = Log::open(path, options, |line| {
            serde_json::from_slice::<T>(line).map(|record| records.push(record))
        })?;
        let log = JsonLines {
            log,
            records: PhantomData,
        };
        Ok((log, Recovered { records, recovery }))
    }

    /// Reads the records at `path` without changing the file (see [`read_lines`]); `None`
    /// when there is no file.
    pub fn read(path: &Path, corrupt: CorruptLines) -> Result<Option<Recovered<T>>> {
        let mut records = Vec::new();
        let recovery = read_lines(path, corrupt, |line| {
            serde_json::from_slice::<T>(line).map(|record| records.push(record))
        })?;
        Ok(recovery.map(|recovery| Recovered { records, recovery }))
    }

    /// Appends one record (fsynced unless the log was opened without sync).
    pub fn append(&mut self, record: &T) -> Result<()> {
        self.append_batch([record]).map(|_| ())
    }

    /// Appends records with one write and one fsync; returns how many.
    pub fn append_batch<'a>(&mut self, records: impl IntoIterator<Item = &'a T>) -> Result<u64>
    where
        T: 'a,
    {
        let lines = self.encode(records)?;
        self.log.append_lines(&lines)
    }

    /// Replaces the log by `records`, atomically (see [`Log::compact`]).
    pub fn compact<'a>(&mut self, records: impl IntoIterator<Item = &'a T>) -> Result<()>
    where
        T: 'a,
    {
        let lines = self.encode(records)?;
        self.log.compact(&lines)
    }

    fn encode<'a>(&self, records: impl IntoIterator<Item = &'a T>) -> Result<Vec<u8>>
    where
        T: 'a,
    {
        let mut lines = Vec::new();
        for record in records {
            encode_line(&mut lines, record, self.log.path())?;
        }
        Ok(lines)
    }
}

impl<T> JsonLines<T> {
    /// The byte-level log (length, line count, refusals, rotation).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The byte-level log, to rotate or sync it.
    pub fn log_mut(&mut self) -> &mut Log {
        &mut self.log
    }
}

/// Appends `record` to `lines` as one line of compact JSON; `path` names the log in the
/// error.
pub fn encode_line<T: Serialize + ?Sized>(
    lines: &mut Vec<u8>,
    record: &T,
    path: &Path,
) -> Result<()> {
    serde_json::to_writer(&mut *lines, record).map_err(|source| Error::Encode {
        path: path.to_owned(),
        source,
    })?;
    lines.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests;
