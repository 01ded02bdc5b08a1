//! Durable JSON-lines logs of keyed records: append + fsync, replay, atomic compaction.
//!
//! Every line is `{"op":"put","v":{…}}` or `{"op":"del","id":"…"}`. A torn last line (a
//! crash in the middle of a write) is cut off at load; a corrupt line elsewhere is skipped
//! with a warning. Compaction writes the live records to a temp file, syncs it, renames it
//! over the log and syncs the directory, so a crash leaves either the old or the new log.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A record with a stable id.
pub(crate) trait Keyed {
    fn key(&self) -> &str;
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Line<T> {
    Put { v: T },
    Del { id: String },
}

/// An open log file; appends are synced before they return.
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    lines: usize,
}

impl Journal {
    /// Opens (or creates) the log and replays it into the live records, in key order.
    pub(crate) fn open<T: DeserializeOwned + Keyed>(
        path: &Path,
    ) -> Result<(Self, BTreeMap<String, T>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| Error::io("open", path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io("read", path, e))?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < bytes.len() {
            tracing::warn!(path = %path.display(), torn_bytes = bytes.len() - complete, "cutting a torn last line");
            file.set_len(complete as u64)
                .and_then(|()| file.sync_data())
                .map_err(|e| Error::io("truncate", path, e))?;
            file.seek(SeekFrom::End(0))
                .map_err(|e| Error::io("seek", path, e))?;
        }
        let mut live = BTreeMap::new();
        let mut lines = 0;
        for (n, line) in BufReader::new(&bytes[..complete]).lines().enumerate() {
            let line = line.map_err(|e| Error::io("read", path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            lines += 1;
            match serde_json::from_str::<Line<T>>(&line) {
                Ok(Line::Put { v }) => {
                    live.insert(v.key().to_owned(), v);
                }
                Ok(Line::Del { id }) => {
                    live.remove(&id);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), line = n + 1, error = %e, "skipping a corrupt line");
                }
            }
        }
        let journal = Journal {
            path: path.to_owned(),
            file,
            lines,
        };
        Ok((journal, live))
    }

    /// Appends puts of `put` and deletions of `del`, then syncs.
    pub(crate) fn append<'a, T: Serialize + 'a>(
        &mut self,
        put: impl IntoIterator<Item = &'a T>,
        del: impl IntoIterator<Item = &'a str>,
    ) -> Result<()> {
        let mut buf = Vec::new();
        let mut n = 0;
        for v in put {
            write_line(&mut buf, &Line::Put { v })?;
            n += 1;
        }
        for id in del {
            write_line(&mut buf, &Line::<()>::Del { id: id.to_owned() })?;
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        self.file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io("append", &self.path, e))?;
        self.lines += n;
        Ok(())
    }

    /// True when the log holds many more lines than live records.
    pub(crate) fn wants_compaction(&self, live: usize) -> bool {
        self.lines > 2 * live + 256
    }

    /// Replaces the log with one put per live record, atomically.
    pub(crate) fn compact<'a, T: Serialize + 'a>(
        &mut self,
        live: impl IntoIterator<Item = &'a T>,
    ) -> Result<()> {
        let tmp = self.path.with_extension("compact.tmp");
        let mut buf = Vec::new();
        let mut n = 0;
        for v in live {
            write_line(&mut buf, &Line::Put { v })?;
            n += 1;
        }
        let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(&buf)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io("rename", &tmp, e))?;
        sync_dir(&self.path)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io("open", &self.path, e))?;
        self.lines = n;
        tracing::debug!(path = %self.path.display(), records = n, "compacted");
        Ok(())
    }
}

fn write_line<T: Serialize>(buf: &mut Vec<u8>, line: &Line<T>) -> Result<()> {
    serde_json::to_writer(&mut *buf, line)
        .map_err(|e| Error::io("encode", "<record>", std::io::Error::other(e)))?;
    buf.push(b'\n');
    Ok(())
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync dir", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Rec {
        id: String,
        n: u32,
    }
    impl Keyed for Rec {
        fn key(&self) -> &str {
            &self.id
        }
    }

    fn rec(id: &str, n: u32) -> Rec {
        Rec { id: id.into(), n }
    }

    #[test]
    fn replays_puts_and_deletes_and_survives_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        {
            let (mut j, live) = Journal::open::<Rec>(&path).unwrap();
            assert!(live.is_empty());
            j.append(&[rec("a", 1), rec("b", 2)], []).unwrap();
            j.append(&[rec("a", 3)], ["b"]).unwrap();
        }
        // A crash in the middle of a write leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"op":"put","v":{"id":"c","#).unwrap();
        drop(f);
        let (mut j, live) = Journal::open::<Rec>(&path).unwrap();
        assert_eq!(live.values().collect::<Vec<_>>(), vec![&rec("a", 3)]);
        j.append(&[rec("d", 4)], []).unwrap();
        j.compact(live.values()).unwrap();
        j.append(&[rec("e", 5)], []).unwrap();
        let (_, live) = Journal::open::<Rec>(&path).unwrap();
        assert_eq!(live.keys().collect::<Vec<_>>(), vec!["a", "e"]);
    }
}
