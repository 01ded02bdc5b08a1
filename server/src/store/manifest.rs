//! The manifest: the one authoritative commit point of the store.
//!
//! Invariant: an event is acknowledged only once the manifest that covers it is durable,
//! and the manifest is written only after every partition holding a part of that
//! generation has committed. Each document carries the generation of the commit that
//! added it (`_gen`). On open, and after a failed commit, every partition drops the
//! documents whose generation is above the manifest's: they were never acked, so their
//! collectors resend them and the high-water marks below let each batch in exactly once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the manifest inside the partitions directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What the manifest records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version, 1.
    pub version: u32,
    /// The last generation whose documents are durable and acknowledged.
    pub generation: u64,
    /// Per collector, the highest batch sequence held durably (the high-water mark).
    pub collectors: HashMap<String, u64>,
}

/// The manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("manifest {path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write manifest {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Manifest {
    /// Reads the manifest of `dir`; a missing file is an empty store.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest {
                version: 1,
                ..Manifest::default()
            }),
            Err(source) => Err(ManifestError::Read { path, source }),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ManifestError::Corrupt {
                path,
                message: e.to_string(),
            }),
        }
    }

    /// Writes the manifest atomically and durably (`logward_durable::atomic_replace`:
    /// temp file, fsync, rename, fsync of the directory).
    pub fn store(&self, dir: &Path) -> Result<(), ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = serde_json::to_vec(self).map_err(|e| ManifestError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        logward_durable::atomic_replace(dir, MANIFEST_FILE, &bytes).map_err(|e| {
            ManifestError::Write {
                path,
                source: e.into(),
            }
        })
    }

    /// Removes temp files an interrupted [`Manifest::store`] left; only the writer
    /// thread writes the manifest, so call it before that starts.
    pub fn remove_stale_temps(dir: &Path) -> Result<usize, ManifestError> {
        logward_durable::remove_stale_temps(dir, MANIFEST_FILE).map_err(|e| ManifestError::Write {
            path: dir.join(MANIFEST_FILE),
            source: e.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_manifest_is_empty_and_stored_one_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = Manifest::load(dir.path()).expect("load");
        assert_eq!((empty.generation, empty.collectors.len()), (0, 0));
        let m = Manifest {
            version: 1,
            generation: 7,
            collectors: [("c".to_owned(), 42)].into(),
        };
        m.store(dir.path()).expect("store");
        assert_eq!(Manifest::load(dir.path()).expect("load"), m);
        std::fs::write(dir.path().join(MANIFEST_FILE), b"{").expect("write");
        assert!(matches!(
            Manifest::load(dir.path()),
            Err(ManifestError::Corrupt { .. })
        ));
    }
}
