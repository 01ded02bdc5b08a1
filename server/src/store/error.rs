//! The store's errors, with their class for clients and the typed cause of a failed
//! write ("disk full" is read from the I/O error's kind, never from its text).

use std::io;
use std::path::PathBuf;

use tantivy::TantivyError;
use tantivy::directory::error::{LockError, OpenDirectoryError, OpenReadError, OpenWriteError};

use crate::error::ErrorClass;
use crate::store::manifest::ManifestError;

/// Why a write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The disk (or a quota) is full.
    StorageFull,
    /// Any other I/O failure.
    Io,
    /// A failure that carries no I/O error.
    Other,
}

impl Cause {
    /// The cause of an I/O error: `ENOSPC` and `EDQUOT` are a full storage.
    pub fn of_io(e: &io::Error) -> Cause {
        let full = matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        ) || matches!(e.raw_os_error(), Some(28 | 122));
        if full { Cause::StorageFull } else { Cause::Io }
    }

    /// The cause of a tantivy error, from the I/O error inside it where there is one.
    pub fn of_tantivy(e: &TantivyError) -> Cause {
        let io = match e {
            TantivyError::IoError(e) => Some(&**e),
            TantivyError::OpenWriteError(OpenWriteError::IoError { io_error, .. })
            | TantivyError::OpenReadError(OpenReadError::IoError { io_error, .. })
            | TantivyError::OpenDirectoryError(OpenDirectoryError::IoError { io_error, .. }) => {
                Some(&**io_error)
            }
            TantivyError::LockFailure(LockError::IoError(e), _) => Some(&**e),
            // tantivy flattens the I/O errors of its commit threads into text
            // (`InternalError`, `ErrorInThread`); the OS error number that std's
            // `io::Error` display ends with is all that is left of the kind there.
            TantivyError::InternalError(text)
            | TantivyError::ErrorInThread(text)
            | TantivyError::SystemError(text) => return Cause::of_flattened_io(text),
            _ => None,
        };
        io.map_or(Cause::Other, Cause::of_io)
    }

    /// The cause of an I/O error that only survives as std's display text, which ends
    /// `(os error N)`: the errno is read, not the words.
    fn of_flattened_io(text: &str) -> Cause {
        let errno = text
            .rfind("(os error ")
            .and_then(|i| text[i + "(os error ".len()..].split(')').next())
            .and_then(|n| n.parse::<i32>().ok());
        match errno {
            Some(n) => Cause::of_io(&io::Error::from_raw_os_error(n)),
            None => Cause::Other,
        }
    }

    /// The cause of a manifest failure.
    pub fn of_manifest(e: &ManifestError) -> Cause {
        match e {
            ManifestError::Read { source, .. } | ManifestError::Write { source, .. } => {
                Cause::of_io(source)
            }
            ManifestError::Corrupt { .. } => Cause::Other,
        }
    }
}

/// A failed write: what failed, in words, and its typed cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub cause: Cause,
}

impl Failure {
    /// A failure with no I/O error behind it.
    pub fn other(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            cause: Cause::Other,
        }
    }

    /// A tantivy failure while doing `what`.
    pub fn tantivy(what: &str, e: &TantivyError) -> Self {
        Failure {
            message: format!("{what}: {e}"),
            cause: Cause::of_tantivy(e),
        }
    }

    /// A store failure while doing `what`.
    pub fn store(what: &str, e: &StoreError) -> Self {
        let cause = match e {
            StoreError::CreateDir { source, .. } => Cause::of_io(source),
            StoreError::Open { source, .. } | StoreError::Search(source) => {
                Cause::of_tantivy(source)
            }
            StoreError::Manifest(m) => Cause::of_manifest(m),
            StoreError::Commit { cause, .. } => *cause,
            StoreError::Closed => Cause::Other,
        };
        Failure {
            message: format!("{what}{}{e}", if what.is_empty() { "" } else { ": " }),
            cause,
        }
    }

    /// The store error answered to every batch this failure leaves unstored.
    pub fn to_error(&self) -> StoreError {
        StoreError::Commit {
            message: self.message.clone(),
            cause: self.cause,
        }
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot open the index in {path}: {source}")]
    Open { path: PathBuf, source: TantivyError },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("commit failed, batch not stored: {message}")]
    Commit { message: String, cause: Cause },
    #[error("the store is shutting down")]
    Closed,
    #[error("search failed: {0}")]
    Search(#[from] TantivyError),
}

impl StoreError {
    /// The class a client sees. Nothing is acked in any of these cases, so a collector
    /// keeps the batch and resends it.
    pub fn status(&self) -> ErrorClass {
        match self {
            StoreError::Closed => ErrorClass::Unavailable,
            StoreError::Commit {
                cause: Cause::StorageFull,
                ..
            } => ErrorClass::StorageFull,
            _ => ErrorClass::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn storage_full_is_read_from_the_error_kind() {
        let full = io::Error::from_raw_os_error(28);
        assert_eq!(Cause::of_io(&full), Cause::StorageFull);
        assert_eq!(
            Cause::of_io(&io::Error::from_raw_os_error(122)),
            Cause::StorageFull
        );
        let wrapped = TantivyError::IoError(Arc::new(io::Error::from_raw_os_error(28)));
        assert_eq!(Cause::of_tantivy(&wrapped), Cause::StorageFull);
        // Text that merely mentions a full disk is not one.
        let text = io::Error::other("No space left on device");
        assert_eq!(Cause::of_io(&text), Cause::Io);
        assert_eq!(
            Cause::of_tantivy(&TantivyError::InternalError("No space left".into())),
            Cause::Other
        );
        // What tantivy's commit really returns on a full tmpfs.
        let flattened = TantivyError::InternalError("No space left on device (os error 28)".into());
        assert_eq!(Cause::of_tantivy(&flattened), Cause::StorageFull);
    }
}
