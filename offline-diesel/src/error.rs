//! Why a store does not open, and the databases' errors as the contract's.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use offline_core::{BoxError, OfflineError};

/// The name errors and metrics give this backend.
pub(crate) const BACKEND: &str = "rdbms";

/// The store cannot be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL names no database this crate knows, or cannot be used as it is.
    #[error("invalid database URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The URL names a database whose cargo feature is off in this build.
    #[error("the {dialect} backend is not built in: enable the `{feature}` cargo feature")]
    NotBuilt {
        /// `postgres`, `mysql` or `sqlite`.
        dialect: &'static str,
        /// The cargo feature to enable.
        feature: &'static str,
    },
    /// A setting is out of range.
    #[error("invalid setting `{key}`: {reason}")]
    InvalidSetting {
        /// The setting's name.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The database did not answer, or refused the connection.
    #[error("cannot connect to the {dialect} database")]
    Connect {
        /// `postgres`, `mysql` or `sqlite`.
        dialect: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The server cannot run this store (for instance a MySQL without `RETURNING`).
    #[error("unsupported {dialect} server: {reason}")]
    Unsupported {
        /// `postgres`, `mysql` or `sqlite`.
        dialect: &'static str,
        /// Why, and what would do.
        reason: String,
    },
    /// Creating or upgrading the store's tables failed.
    #[error("cannot create the offline store's tables in the {dialect} database")]
    Migrate {
        /// `postgres`, `mysql` or `sqlite`.
        dialect: &'static str,
        /// The migration's error.
        #[source]
        source: BoxError,
    },
}

impl From<OpenError> for OfflineError {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::Connect { .. } => OfflineError::unavailable(BACKEND, error),
            _ => OfflineError::backend(BACKEND, error),
        }
    }
}

/// How one attempt at an operation ended, when it did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The database failed. `started` is false when nothing the attempt sent could have
    /// changed anything (the `BEGIN` failed, or the operation only reads), so that a lost
    /// connection may be retried on another.
    Db {
        /// The database's error.
        error: DieselError,
        /// Whether a change may have reached the database.
        started: bool,
    },
    /// The contract refuses the call (quota, invalid input): never retried.
    Refused(OfflineError),
}

impl Failure {
    /// A failure before anything could change: the `BEGIN`, or a read.
    pub(crate) fn before_start(error: DieselError) -> Self {
        Self::Db {
            error,
            started: false,
        }
    }
}

impl From<DieselError> for Failure {
    fn from(error: DieselError) -> Self {
        Self::Db {
            error,
            started: true,
        }
    }
}

impl From<OfflineError> for Failure {
    fn from(error: OfflineError) -> Self {
        Self::Refused(error)
    }
}

/// What to do about a database error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// A deadlock, a lock wait timeout, a serialisation failure, a Galera certification
    /// conflict, or a key another node inserted first: the transaction is rolled back and may
    /// be retried from `BEGIN`.
    Conflict,
    /// The connection is gone (killed, server restarted, network): drop it.
    Lost,
    /// The statement was larger than the server accepts (`max_allowed_packet`); the server
    /// closes the connection after it.
    TooLarge,
    /// The database refused a value (too long for its column).
    Refused,
    /// Anything else.
    Other,
}

/// Sorts a database error. MariaDB's driver reports most server errors without their code,
/// so the server's messages are matched too.
pub(crate) fn classify(error: &DieselError) -> Class {
    match error {
        DieselError::DatabaseError(kind, info) => {
            let message = info.message();
            match kind {
                // Under the queue row's lock a duplicate seq or dedupe key cannot happen on one
                // node; on Galera it means another node committed first (MariaDB reports some
                // of those as 1062 rather than 1213): run again on fresh data.
                DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::UniqueViolation => {
                    Class::Conflict
                }
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection => {
                    Class::Lost
                }
                _ => classify_message(message),
            }
        }
        DieselError::BrokenTransactionManager => Class::Lost,
        _ => Class::Other,
    }
}

fn classify_message(message: &str) -> Class {
    const CONFLICT: &[&str] = &[
        // MariaDB 1213 and 1205, Galera certification conflicts (reported as 1213).
        "try restarting transaction",
        // PostgreSQL 40P01.
        "deadlock detected",
        // SQLite's busy timeout ran out.
        "database is locked",
    ];
    const LOST: &[&str] = &[
        // PostgreSQL 57P01 (pg_terminate_backend), 57P02, 57P03.
        "terminating connection",
        "the database system is shutting down",
        "the database system is starting up",
        "connection closed",
        // MariaDB KILL (1927), a connection the server dropped, the driver's I/O errors.
        "Connection was killed",
        "Lost connection",
        "server has gone away",
        "Connection to the server is closed",
        "Input/output error",
        "Broken pipe",
        "Connection reset",
        // Galera: a node outside the primary component (1047).
        "WSREP has not yet prepared node",
    ];
    if message.contains("max_allowed_packet") {
        Class::TooLarge
    } else if message.contains("Data too long") || message.contains("value too long") {
        Class::Refused
    } else if CONFLICT.iter().any(|m| message.contains(m)) {
        Class::Conflict
    } else if LOST.iter().any(|m| message.contains(m)) {
        Class::Lost
    } else {
        Class::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn server_messages_are_sorted() {
        let unknown = DatabaseErrorKind::Unknown;
        let cases = [
            (
                database(
                    unknown,
                    "Deadlock found when trying to get lock; try restarting transaction",
                ),
                Class::Conflict,
            ),
            (
                database(
                    unknown,
                    "Lock wait timeout exceeded; try restarting transaction",
                ),
                Class::Conflict,
            ),
            (database(unknown, "deadlock detected"), Class::Conflict),
            (
                database(
                    DatabaseErrorKind::SerializationFailure,
                    "could not serialize",
                ),
                Class::Conflict,
            ),
            (
                database(
                    unknown,
                    "terminating connection due to administrator command",
                ),
                Class::Lost,
            ),
            (
                database(DatabaseErrorKind::UnableToSendCommand, "connection closed"),
                Class::Lost,
            ),
            (database(unknown, "Connection was killed"), Class::Lost),
            (
                database(
                    unknown,
                    "WSREP has not yet prepared node for application use",
                ),
                Class::Lost,
            ),
            (
                database(
                    unknown,
                    "Got a packet bigger than 'max_allowed_packet' bytes",
                ),
                Class::TooLarge,
            ),
            (
                database(unknown, "Data too long for column 'username' at row 1"),
                Class::Refused,
            ),
            (
                database(
                    DatabaseErrorKind::UniqueViolation,
                    "Duplicate entry 'example.com-juliet-574' for key 'PRIMARY'",
                ),
                Class::Conflict,
            ),
            (database(unknown, "syntax error at or near"), Class::Other),
            (DieselError::NotFound, Class::Other),
        ];
        for (error, class) in cases {
            assert_eq!(classify(&error), class, "{error}");
        }
    }
}
