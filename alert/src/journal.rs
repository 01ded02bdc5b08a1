//! Durable JSON-lines logs of keyed records: append + fsync, replay, atomic compaction.
//!
//! Every line is `{"op":"put","v":{…}}` or `{"op":"del","id":"…"}`. The file is a
//! `logward-durable` log: a torn tail (a crash in the middle of a write: a last line without
//! its newline, or lines after the last good one that do not parse) is cut off at load; a
//! corrupt line elsewhere is skipped; both with a warning. Compaction replaces the log
//! atomically (temp file, fsync, rename, fsync of the directory), so a crash leaves either
//! the old or the new log; a temp file such a crash left is removed at load.

use std::collections::BTreeMap;
use std::path::Path;

use logward_durable::{Log, LogOptions, Recovery, encode_line};
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
    log: Log,
}

impl Journal {
    /// Opens (or creates) the log and replays it into the live records, in key order.
    pub(crate) fn open<T: DeserializeOwned + Keyed>(
        path: &Path,
    ) -> Result<(Self, BTreeMap<String, T>)> {
        remove_old_temp(path)?;
        let mut live = BTreeMap::new();
        let (log, recovery) = Log::open(path, LogOptions::default(), |line| {
            serde_json::from_slice::<Line<T>>(line).map(|line| match line {
                Line::Put { v } => {
                    live.insert(v.key().to_owned(), v);
                }
                Line::Del { id } => {
                    live.remove(&id);
                }
            })
        })
        .map_err(durable)?;
        report(path, &recovery);
        Ok((Journal { log }, live))
    }

    /// Appends puts of `put` and deletions of `del`, then syncs.
    pub(crate) fn append<'a, T: Serialize + 'a>(
        &mut self,
        put: impl IntoIterator<Item = &'a T>,
        del: impl IntoIterator<Item = &'a str>,
    ) -> Result<()> {
        let path = self.log.path();
        let mut buf = Vec::new();
        for v in put {
            encode_line(&mut buf, &Line::Put { v }, path).map_err(durable)?;
        }
        for id in del {
            let line = Line::<()>::Del { id: id.to_owned() };
            encode_line(&mut buf, &line, path).map_err(durable)?;
        }
        self.log.append_lines(&buf).map_err(durable)?;
        Ok(())
    }

    /// True when the log holds many more lines than live records.
    pub(crate) fn wants_compaction(&self, live: usize) -> bool {
        self.log.lines() > 2 * live as u64 + 256
    }

    /// Replaces the log with one put per live record, atomically.
    pub(crate) fn compact<'a, T: Serialize + 'a>(
        &mut self,
        live: impl IntoIterator<Item = &'a T>,
    ) -> Result<()> {
        let mut buf = Vec::new();
        for v in live {
            encode_line(&mut buf, &Line::Put { v }, self.log.path()).map_err(durable)?;
        }
        self.log.compact(&buf).map_err(durable)?;
        tracing::debug!(path = %self.log.path().display(), records = self.log.lines(), "compacted");
        Ok(())
    }
}

fn durable(error: logward_durable::Error) -> Error {
    let (op, path, source) = error.into_parts();
    Error::io(op, path, source)
}

/// Removes `<stem>.compact.tmp`, the temp name of compactions before `logward-durable`
/// (whose own temps `Log::open` clears).
fn remove_old_temp(path: &Path) -> Result<()> {
    let tmp = path.with_extension("compact.tmp");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {
            tracing::warn!(path = %tmp.display(), "removed the temp file of an interrupted compaction");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove stale temp", &tmp, e)),
    }
}

/// Logs what recovery found.
fn report(path: &Path, recovery: &Recovery) {
    for skipped in &recovery.skipped {
        tracing::warn!(path = %path.display(), line = skipped.line, error = %skipped.message, "skipping a corrupt line");
    }
    if let Some(torn) = &recovery.torn {
        tracing::warn!(path = %path.display(), torn_bytes = torn.bytes, "cutting a torn last line");
    }
    if recovery.stale_temps > 0 {
        tracing::warn!(path = %path.display(), files = recovery.stale_temps, "removed the temp file of an interrupted compaction");
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write as _;

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

    #[test]
    fn line_format_is_unchanged_and_old_files_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        // As written before logward-durable, with the old compaction temp left by a crash.
        std::fs::write(
            &path,
            "{\"op\":\"put\",\"v\":{\"id\":\"a\",\"n\":1}}\n{\"op\":\"put\",\"v\":{\"id\":\"b\",\"n\":2}}\n{\"op\":\"del\",\"id\":\"a\"}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("j.compact.tmp"), "partial").unwrap();
        let (mut j, live) = Journal::open::<Rec>(&path).unwrap();
        assert_eq!(live.values().collect::<Vec<_>>(), vec![&rec("b", 2)]);
        assert!(!dir.path().join("j.compact.tmp").exists());
        j.append(&[rec("c", 3)], ["b"]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with(
                "{\"op\":\"put\",\"v\":{\"id\":\"c\",\"n\":3}}\n{\"op\":\"del\",\"id\":\"b\"}\n"
            ),
            "{text}"
        );
        j.compact(live.values()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"op\":\"put\",\"v\":{\"id\":\"b\",\"n\":2}}\n"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp left");
    }

    #[test]
    fn corrupt_middle_line_is_skipped_and_bad_last_line_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let good = "{\"op\":\"put\",\"v\":{\"id\":\"a\",\"n\":1}}\n";
        std::fs::write(&path, format!("{good}garbage\n{good}\0\0\0\n")).unwrap();
        let (_, live) = Journal::open::<Rec>(&path).unwrap();
        assert_eq!(live.values().collect::<Vec<_>>(), vec![&rec("a", 1)]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{good}garbage\n{good}")
        );
    }
}
