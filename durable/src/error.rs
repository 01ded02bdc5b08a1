//! The crate's error: every failure names the operation and the path it was done on.

use std::io;
use std::path::{Path, PathBuf};

/// What can go wrong with a durable file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"create"`, `"fsync"`, `"rename"`, …).
        op: &'static str,
        /// The file or directory it was done on.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A record could not be encoded as JSON (not expected for plain data types).
    #[error("encode a record for {}: {source}", path.display())]
    Encode {
        /// The log the record was meant for.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A line before the last good one does not parse, and the log was opened with
    /// [`crate::CorruptLines::Fail`].
    #[error("{} line {line} (byte {offset}) is corrupt: {message}", path.display())]
    Corrupt {
        /// The log.
        path: PathBuf,
        /// The line's number, from 1.
        line: u64,
        /// The byte offset where the line starts.
        offset: u64,
        /// What the parser said.
        message: String,
    },
    /// Bytes to append are not whole lines: a record holds a newline (which would split
    /// it in two), or a block of lines does not end in one.
    #[error("append to {}: {problem}", path.display())]
    Framing {
        /// The log.
        path: PathBuf,
        /// What is wrong.
        problem: &'static str,
    },
    /// An append was refused because the log would grow past its size budget.
    #[error(
        "append to {}: {len} + {add} bytes is over the budget of {budget} bytes",
        path.display()
    )]
    OverBudget {
        /// The log.
        path: PathBuf,
        /// Its length before the append.
        len: u64,
        /// The bytes the append would add.
        add: u64,
        /// [`crate::LogOptions::max_bytes`].
        budget: u64,
    },
}

impl Error {
    /// The operation that failed: the I/O step, or `"encode"`, `"read"` (a corrupt line) or
    /// `"append"` (a refused record).
    pub fn op(&self) -> &'static str {
        match self {
            Error::Io { op, .. } => op,
            Error::Encode { .. } => "encode",
            Error::Corrupt { .. } => "read",
            Error::Framing { .. } | Error::OverBudget { .. } => "append",
        }
    }

    /// The path the operation was done on.
    pub fn path(&self) -> &Path {
        match self {
            Error::Io { path, .. }
            | Error::Encode { path, .. }
            | Error::Corrupt { path, .. }
            | Error::Framing { path, .. }
            | Error::OverBudget { path, .. } => path,
        }
    }

    /// The error as operation, path and an `io::Error` (of kind `InvalidData` or
    /// `StorageFull` where there was no `io::Error`), for crates whose own error keeps
    /// exactly those three.
    pub fn into_parts(self) -> (&'static str, PathBuf, io::Error) {
        let op = self.op();
        match self {
            Error::Io { path, source, .. } => (op, path, source),
            Error::Encode { path, source } => (op, path, io::Error::other(source)),
            Error::OverBudget { .. } => {
                let message = self.to_string();
                let path = self.path().to_owned();
                (
                    op,
                    path,
                    io::Error::new(io::ErrorKind::StorageFull, message),
                )
            }
            Error::Corrupt { .. } | Error::Framing { .. } => {
                let message = self.to_string();
                let path = self.path().to_owned();
                (
                    op,
                    path,
                    io::Error::new(io::ErrorKind::InvalidData, message),
                )
            }
        }
    }

    /// The underlying I/O error's kind, if there is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// For callers whose errors are `io::Error`s: the kind of the underlying error (or
/// `InvalidData`, or `StorageFull` for a refused append), with this error, operation and
/// path included, as its inner error.
impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        let kind = match &error {
            Error::Io { source, .. } => source.kind(),
            Error::OverBudget { .. } => io::ErrorKind::StorageFull,
            Error::Encode { .. } | Error::Corrupt { .. } | Error::Framing { .. } => {
                io::ErrorKind::InvalidData
            }
        };
        io::Error::new(kind, error)
    }
}

/// A closure that wraps an `io::Error` with its operation and path.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_owned();
    move |source| Error::Io { op, path, source }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
