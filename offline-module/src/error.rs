//! The front end's errors.

use offline_core::OfflineError;

use crate::ConfigError;

/// What can go wrong in the module: its own errors (an unknown domain, a bad day count, a
/// configuration that cannot be served) and the storage contract's ([`OfflineError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// An admin operation named a domain the module does not serve.
    #[error("domain `{domain}` is not served by host type `{host_type}`")]
    UnknownDomain {
        /// The domain asked for, normalised.
        domain: String,
        /// The module's host type.
        host_type: String,
    },

    /// `remove_old_messages` was asked for fewer than one day.
    #[error("remove_old_messages needs days >= 1, got {days}")]
    InvalidDays {
        /// The day count given.
        days: u32,
    },

    /// The configuration cannot be served; the error names the key.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The configured backend's crate is not compiled into this build.
    #[error(
        "backend `{backend}` is not built in: enable the `{feature}` feature of offline-module"
    )]
    BackendNotBuilt {
        /// The backend as the configuration names it.
        backend: &'static str,
        /// The cargo feature of `offline-module` that builds it in.
        feature: &'static str,
    },

    /// The configured store did not open (a RocksDB directory locked by another process, say);
    /// the error names the path.
    #[error(transparent)]
    Open(offline_core::BoxError),

    /// The store refused or failed: invalid input (a JID without a localpart), a backend
    /// failure, ...
    #[error(transparent)]
    Store(#[from] OfflineError),
}

impl ModuleError {
    /// Whether retrying the same call later may succeed: the store was unavailable
    /// ([`OfflineError::is_transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store(err) if err.is_transient())
    }
}
