//! Durable collector state: identity, acknowledged position, and the send journal.
//!
//! On disk, in `state_dir`:
//! * `state.json`, replaced atomically (temp file, fsync, rename, fsync of the directory):
//!   `{"version":3,"collector_id":"<uuid>","acked_sequence":N,
//!     "files":[{"dev":D,"ino":I,"fp":F,"path":"...","offset":O,"len":L}],
//!     "journald_cursor":"<cursor>"}`. Version 2 files (no `journald_cursor`) are read as they
//!   are. `journald_cursor` is the journal cursor of the last entry the server acked (or
//!   that the filters dropped after it). `offset` is where
//!   the acked prefix of that file ends: everything before it is durable on the server; `len`
//!   is the file's length when last seen, so that a file deleted before it was read to the end
//!   is reported as a gap with an estimate of the bytes lost.
//! * `inflight.log`, append-only JSON lines, one per batch, written before the batch is
//!   first sent: `{"sequence":N,"ranges":[{"dev":D,"ino":I,"fp":F,"path":"...","start":S,"end":E}],
//!   "synthetic":["<hex>"],"journald_cursor":"<cursor>"}`. Re-reading those ranges rebuilds the batch event for event; the
//!   events the collector makes itself (posture, gap) and journald's entries are stored whole,
//!   protobuf in hex, and come first in their batch; `journald_cursor` is where the journal is
//!   read up to once that batch is acked. It is not fsynced (a killed
//!   process keeps the page cache); losing it on power loss is caught by the handshake.
//!   At open, a torn tail (a last line without its newline, or lines after the last good one
//!   that do not parse) is cut off and a garbled line before a good one is skipped, both
//!   with a warning and in [`Loaded::journal_recovery`].
//!
//! Both files go through `logward-durable`: the state file by its atomic replace, the
//! journal as its JSON-lines log (opened without fsync, compacted through the atomic
//! replace). Temp files of a save or compaction that a crash interrupted are removed at open.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use logward_durable::{JsonLines, LogOptions, Recovery, atomic_replace, remove_stale_temps};
use serde::{Deserialize, Serialize};

/// Name of the checkpoint file inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// Name of the send journal inside the state directory.
pub const JOURNAL_FILE: &str = "inflight.log";
const STATE_VERSION: u32 = 3;
/// The previous version, without a journald cursor, still read.
const STATE_VERSION_DOCKER_ONLY: u32 = 2;

/// Stable identity of a tailed file: device and inode, plus a fingerprint of its first line
/// (at most [`crate::docker::files::FP_BYTES`] bytes), so that an inode reused by a new file is
/// a new file. A gzipped copy of a rotated file has the same fingerprint (it is computed over
/// the decompressed bytes) and is found again by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileKey {
    /// `st_dev` of the file.
    pub dev: u64,
    /// `st_ino` of the file.
    pub ino: u64,
    /// CRC-32 of the file's first line (or first bytes).
    pub fp: u32,
}

impl fmt::Display for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{:08x}", self.dev, self.ino, self.fp)
    }
}

/// Checkpointed position of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// Which file.
    #[serde(flatten)]
    pub key: FileKey,
    /// Where it was last seen.
    pub path: PathBuf,
    /// End of the acknowledged prefix.
    pub offset: u64,
    /// The file's length when last seen (for gap estimates).
    #[serde(default)]
    pub len: u64,
}

/// A byte range of a file that a batch's events were read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRange {
    /// Which file.
    #[serde(flatten)]
    pub key: FileKey,
    /// Its path when the batch was built.
    pub path: PathBuf,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// One send-journal record: a batch and the ranges its events came from, in event order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// The batch's sequence number.
    pub sequence: u64,
    /// Where its events came from.
    pub ranges: Vec<FileRange>,
    /// Events the collector made itself (posture, gap): protobuf-encoded, in hex. They come
    /// first in the batch, before the events of `ranges`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synthetic: Vec<String>,
    /// The journald cursor reached once this batch is acked (its journald entries are in
    /// `synthetic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journald_cursor: Option<String>,
}

/// The checkpoint proper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// This collector's identity, generated once.
    pub collector_id: String,
    /// Highest sequence whose batch and all before it are acknowledged.
    pub acked_sequence: u64,
    /// Acknowledged offsets by file.
    pub files: BTreeMap<FileKey, FileState>,
    /// The journal cursor up to which every entry is acked (or filtered out).
    pub journald_cursor: Option<String>,
}

impl State {
    /// A brand-new identity that has shipped nothing.
    pub fn fresh() -> Self {
        Self {
            collector_id: uuid::Uuid::new_v4().to_string(),
            acked_sequence: 0,
            files: BTreeMap::new(),
            journald_cursor: None,
        }
    }

    /// Serialized form of the state file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        let file = StateFile {
            version: STATE_VERSION,
            collector_id: self.collector_id.clone(),
            acked_sequence: self.acked_sequence,
            files: self.files.values().cloned().collect(),
            journald_cursor: self.journald_cursor.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let file: StateFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if file.version != STATE_VERSION && file.version != STATE_VERSION_DOCKER_ONLY {
            return Err(format!("unsupported state version {}", file.version));
        }
        if uuid::Uuid::parse_str(&file.collector_id).is_err() {
            return Err(format!(
                "collector_id {:?} is not a UUID",
                file.collector_id
            ));
        }
        Ok(Self {
            collector_id: file.collector_id,
            acked_sequence: file.acked_sequence,
            files: file.files.into_iter().map(|f| (f.key, f)).collect(),
            journald_cursor: file.journald_cursor,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    collector_id: String,
    acked_sequence: u64,
    files: Vec<FileState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    journald_cursor: Option<String>,
}

/// Why the state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// State could not be serialized (not expected to happen).
    #[error("cannot encode collector state: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<logward_durable::Error> for CheckpointError {
    fn from(error: logward_durable::Error) -> Self {
        match error {
            logward_durable::Error::Encode { source, .. } => Self::Encode(source),
            other => {
                let (op, path, source) = other.into_parts();
                Self::Io { op, path, source }
            }
        }
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CheckpointError {
    let path = path.to_owned();
    move |source| CheckpointError::Io { op, path, source }
}

/// What [`StateDir::open`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The checkpoint (fresh if there was none or it was unusable).
    pub state: State,
    /// Journal records of batches not yet covered by `acked_sequence`, in sequence order.
    pub journal: Vec<JournalRecord>,
    /// The state was created now (first start or a corrupt file).
    pub fresh: bool,
    /// There was no state file at all: the very first start (not a corrupt file).
    pub first_start: bool,
    /// What opening the send journal found: skipped lines, a torn tail cut off, temp files
    /// of an interrupted compaction removed (each also logged as a warning).
    pub journal_recovery: Recovery,
}

/// The state directory with its journal open for appending.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    journal: JsonLines<JournalRecord>,
}

/// The send journal is not fsynced: see the module documentation.
const JOURNAL_OPTIONS: LogOptions = LogOptions {
    sync: false,
    max_bytes: None,
    corrupt: logward_durable::CorruptLines::Skip,
};

impl StateDir {
    /// Opens (creating if needed) the state directory and loads what it holds. A corrupt state
    /// file is renamed aside and replaced by a fresh identity that re-reads every file from
    /// the start; the journal then goes aside too, since it belongs to the old identity.
    pub fn open(dir: &Path) -> Result<(Self, Loaded), CheckpointError> {
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let stale = remove_stale_temps(dir, STATE_FILE)?;
        if stale > 0 {
            tracing::warn!(dir = %dir.display(), files = stale, "removed temp files of an interrupted checkpoint save");
        }
        let state_path = dir.join(STATE_FILE);
        let journal_path = dir.join(JOURNAL_FILE);
        let mut first_start = false;
        let loaded = match std::fs::read(&state_path) {
            Ok(bytes) => match State::from_bytes(&bytes) {
                Ok(state) => Some(state),
                Err(error) => {
                    let aside = set_aside(&state_path)?;
                    tracing::warn!(
                        path = %state_path.display(), aside = %aside.display(), %error,
                        "collector state is corrupt: starting over with a new collector id and \
                         re-reading every log from the start (duplicates are likely)"
                    );
                    None
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                first_start = true;
                None
            }
            Err(error) => {
                let aside = set_aside(&state_path)?;
                tracing::warn!(
                    path = %state_path.display(), aside = %aside.display(), %error,
                    "collector state is unreadable: starting over with a new collector id and \
                     re-reading every log from the start (duplicates are likely)"
                );
                None
            }
        };
        let fresh = loaded.is_none();
        let state = loaded.unwrap_or_else(State::fresh);
        if fresh && journal_path.exists() {
            let aside = set_aside(&journal_path)?;
            tracing::warn!(aside = %aside.display(), "set aside the send journal of an earlier collector id");
        }
        let (file, recovered) = JsonLines::open(&journal_path, JOURNAL_OPTIONS)?;
        report(&journal_path, &recovered.recovery);
        let journal = unacked(recovered.records, state.acked_sequence);
        let state_dir = Self {
            dir: dir.to_owned(),
            journal: file,
        };
        if fresh {
            state_dir.save(&state)?;
        }
        Ok((
            state_dir,
            Loaded {
                state,
                journal,
                fresh,
                first_start,
                journal_recovery: recovered.recovery,
            },
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Bytes currently in the journal.
    pub fn journal_len(&self) -> u64 {
        self.journal.log().len()
    }

    /// Saves the checkpoint atomically and durably.
    pub fn save(&self, state: &State) -> Result<(), CheckpointError> {
        write_atomic(&self.dir, STATE_FILE, &state.to_bytes()?)
    }

    /// Appends a record; called before the batch is first sent.
    pub fn append(&mut self, record: &JournalRecord) -> Result<(), CheckpointError> {
        Ok(self.journal.append(record)?)
    }

    /// Replaces the journal by `records` (all batches still unacknowledged). Call only after
    /// the state covering every dropped record has been saved.
    pub fn compact(&mut self, records: &[JournalRecord]) -> Result<(), CheckpointError> {
        Ok(self.journal.compact(records)?)
    }
}

/// Keeps the journal records above `acked`, in sequence order (the last of a sequence wins).
fn unacked(records: Vec<JournalRecord>, acked: u64) -> Vec<JournalRecord> {
    let by_sequence: BTreeMap<u64, JournalRecord> = records
        .into_iter()
        .filter(|r| r.sequence > acked)
        .map(|r| (r.sequence, r))
        .collect();
    by_sequence.into_values().collect()
}

/// Logs what recovery of the journal found. A torn or garbled line is dropped: the
/// handshake catches anything that was really sent.
fn report(path: &Path, recovery: &Recovery) {
    for skipped in &recovery.skipped {
        tracing::warn!(
            path = %path.display(), line = skipped.line, error = %skipped.message,
            "skipping unreadable send journal record"
        );
    }
    if let Some(torn) = &recovery.torn {
        tracing::warn!(
            path = %path.display(), offset = torn.offset, bytes = torn.bytes,
            "cut a torn send journal tail"
        );
    }
    if recovery.stale_temps > 0 {
        tracing::warn!(
            path = %path.display(), files = recovery.stale_temps,
            "removed temp files of an interrupted send journal compaction"
        );
    }
}

/// Renames `path` to `<path>.corrupt-<unix seconds>`.
fn set_aside(path: &Path) -> Result<PathBuf, CheckpointError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{secs}"));
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside).map_err(io_err("rename aside", path))?;
    Ok(aside)
}

/// Writes `dir/name` atomically: temp file, fsync, rename, fsync the directory (see
/// [`logward_durable::atomic_replace`]).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), CheckpointError> {
    Ok(atomic_replace(dir, name, bytes)?)
}

#[cfg(test)]
mod tests;
