//! Why a store does not open, in words that name the path; and RocksDB's errors as the
//! contract's.

use std::path::{Path, PathBuf};

use offline_core::OfflineError;

use crate::codec::Corrupt;

/// The name errors and metrics give this backend.
pub(crate) const BACKEND: &str = "rocksdb";

/// The store at a path cannot be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The process may not read or write the directory.
    #[error("no permission to open the offline store at {}: {detail}", path.display())]
    PermissionDenied {
        /// The database directory.
        path: PathBuf,
        /// What RocksDB said.
        detail: String,
    },
    /// Another process (or another store in this one) has the directory open.
    #[error(
        "the offline store at {} is locked by another process (or already open in this one)",
        path.display()
    )]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// RocksDB found damaged files.
    #[error("the offline store at {} is corrupted: {detail}", path.display())]
    Corrupted {
        /// The database directory.
        path: PathBuf,
        /// What RocksDB said.
        detail: String,
    },
    /// The directory holds a store written in another format version.
    #[error(
        "the offline store at {} was created by an incompatible version (format {found}; this \
         build reads format {expected})",
        path.display()
    )]
    IncompatibleFormat {
        /// The database directory.
        path: PathBuf,
        /// The format the store was written in.
        found: u64,
        /// The format this build reads and writes.
        expected: u64,
    },
    /// The directory holds a RocksDB database that is not an offline store.
    #[error("{} holds a RocksDB database that is not an offline store", path.display())]
    NotAnOfflineStore {
        /// The database directory.
        path: PathBuf,
    },
    /// Any other failure.
    #[error("cannot open the offline store at {}: {source}", path.display())]
    Other {
        /// The database directory.
        path: PathBuf,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
}

impl OpenError {
    /// Sorts RocksDB's error from opening `path` into what an operator can act on.
    pub(crate) fn from_rocksdb(path: &Path, error: rocksdb::Error) -> Self {
        let path = path.to_owned();
        let detail = error.to_string();
        if detail.contains("Permission denied") {
            Self::PermissionDenied { path, detail }
        } else if detail.contains("LOCK")
            && (detail.contains("Resource temporarily unavailable")
                || detail.contains("lock hold by current process")
                || detail.contains("No locks available"))
        {
            Self::Locked { path }
        } else if error.kind() == rocksdb::ErrorKind::Corruption {
            Self::Corrupted { path, detail }
        } else {
            Self::Other {
                path,
                source: error,
            }
        }
    }
}

impl From<OpenError> for OfflineError {
    fn from(error: OpenError) -> Self {
        OfflineError::backend(BACKEND, error)
    }
}

/// RocksDB's error as the contract's: busy or timed out is worth a retry.
pub(crate) fn backend(error: rocksdb::Error) -> OfflineError {
    use rocksdb::ErrorKind::{Busy, Incomplete, TimedOut, TryAgain};
    match error.kind() {
        Busy | Incomplete | TimedOut | TryAgain => OfflineError::unavailable(BACKEND, error),
        _ => OfflineError::backend(BACKEND, error),
    }
}

impl From<Corrupt> for OfflineError {
    fn from(error: Corrupt) -> Self {
        OfflineError::backend(BACKEND, error)
    }
}
