//! What can go wrong in a command, as one line for stderr, and its exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use offline_module::offline_core::OfflineError;
use offline_module::{ConfigError, ModuleError};

/// A command's failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The configuration file cannot be read or is wrong; the error names the key.
    #[error("{}: {source}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        source: ConfigError,
    },
    /// A domain no configuration serves.
    #[error("domain `{domain}`: {why}")]
    UnknownDomain {
        /// The domain, normalised.
        domain: String,
        /// Why it is not served.
        why: String,
    },
    /// The module refused or failed.
    #[error(transparent)]
    Module(#[from] ModuleError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] OfflineError),
    /// The command cannot run as asked (exit code 2, as for bad arguments).
    #[error("{0}")]
    Usage(String),
    /// A command failed otherwise (a migration's verification, an import's source).
    #[error("{0}")]
    Failed(String),
    /// The output cannot be written.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
    /// A benchmark failed.
    #[error(transparent)]
    Bench(offline_module::offline_core::BoxError),
}

impl CliError {
    /// 2 for a usage error, 1 for any other failure.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}
