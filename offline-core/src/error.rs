//! The one error type every backend returns.

use std::error::Error as StdError;

use crate::{QueueStats, Quota, UserKey};

/// A boxed error from a backend's native library (a database driver, RocksDB, ...).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Result alias used throughout the offline store.
pub type Result<T, E = OfflineError> = std::result::Result<T, E>;

/// Everything that can go wrong in the offline store.
///
/// Variants are *semantic*: every backend maps its native errors into them at its boundary,
/// so callers (and the conformance suite) can react the same way whatever the backend.
/// Errors of the front end (an unknown domain, a bad day count) are not here: they belong to
/// the `offline-module` crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// Storing the batch would take the user's queue over its quota; nothing was written.
    #[error("offline queue of {user} is full: {stored} held + {incoming} incoming exceeds {quota}")]
    QuotaExceeded {
        /// The recipient whose queue is full.
        user: UserKey,
        /// The limits that were applied.
        quota: Quota,
        /// What the queue held (after removing expired messages).
        stored: QueueStats,
        /// What the batch would have added (after dropping duplicates and expired messages).
        incoming: QueueStats,
    },

    /// The caller passed something the store cannot accept (a JID without a localpart, an empty
    /// or oversized packet, a NUL byte, ...); nothing was written.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong, in words an operator can act on.
        reason: String,
        /// The underlying parse error, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// The backend cannot be reached right now (connection refused or dropped, pool timed out);
    /// the operation may succeed if retried.
    ///
    /// The outcome may be unknown: a write whose commit was sent but whose reply was lost may
    /// or may not have been stored. Retrying a write whose messages carry dedupe keys is safe
    /// (a message already stored is skipped as a duplicate); without keys a retry may store a
    /// message twice.
    #[error("{backend} backend unavailable")]
    Unavailable {
        /// The backend's [`name`](crate::OfflineBackend::name).
        backend: &'static str,
        /// The native error.
        #[source]
        source: BoxError,
    },

    /// Any other failure inside a backend.
    #[error("{backend} backend failed")]
    Backend {
        /// The backend's [`name`](crate::OfflineBackend::name).
        backend: &'static str,
        /// The native error.
        #[source]
        source: BoxError,
    },
}

impl OfflineError {
    /// An [`InvalidInput`](Self::InvalidInput) error with a reason and no underlying cause.
    pub fn invalid_input(reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            reason: reason.into(),
            source: None,
        }
    }

    /// A [`Backend`](Self::Backend) error wrapping a native error.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            backend,
            source: source.into(),
        }
    }

    /// An [`Unavailable`](Self::Unavailable) error wrapping a native error.
    pub fn unavailable(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            backend,
            source: source.into(),
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}
