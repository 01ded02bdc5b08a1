//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong in the alerting library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file under the data dir could not be read, written or synced.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The configuration is not valid.
    #[error("invalid alerting config: {0}")]
    Config(String),
    /// A request named something that does not exist (an alert or silence id).
    #[error("{0}")]
    NotFound(String),
    /// A request was not valid (a bad matcher, an expiry in the past).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
