//! Where the database is and how the pool behaves.

use std::fmt;
use std::time::Duration;

use crate::error::OpenError;

/// The database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatabaseKind {
    /// PostgreSQL (`postgres://`, `postgresql://`).
    Postgres,
    /// MariaDB 10.5 or later (`mysql://`, `mariadb://`).
    Mysql,
    /// SQLite (`sqlite://path`, `sqlite:path`).
    Sqlite,
}

impl DatabaseKind {
    /// The database a URL's scheme names.
    pub fn of_url(url: &str) -> Result<Self, OpenError> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme);
        match scheme.map(str::to_ascii_lowercase).as_deref() {
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            Some("mysql" | "mariadb") => Ok(Self::Mysql),
            Some("sqlite") => Ok(Self::Sqlite),
            _ => Err(OpenError::InvalidUrl {
                reason: "expected a postgres://, postgresql://, mysql://, mariadb:// or \
                         sqlite:// URL"
                    .into(),
            }),
        }
    }

    /// The name used in errors and logs, which is also the cargo feature that builds it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }
}

/// How to reach the database and how the pool behaves.
///
/// ```
/// use std::time::Duration;
/// use offline_diesel::DieselConfig;
///
/// let config = DieselConfig {
///     pool_size: 20,
///     checkout_timeout: Duration::from_secs(2),
///     ..DieselConfig::new("postgres://offline@db.example.com/xmpp")
/// };
/// assert_eq!(config.connect_timeout, Duration::from_secs(5));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DieselConfig {
    /// `postgres://user:password@host:port/database`, `mysql://...` (MariaDB), or
    /// `sqlite://path/to/file.db`.
    pub url: String,
    /// Connections the pool may open (default 10, MongooseIM's `workers`).
    pub pool_size: usize,
    /// How long opening one connection may take (default 5 s).
    pub connect_timeout: Duration,
    /// How long a call may wait for a free connection (default 5 s); past it the call fails
    /// with `Unavailable`.
    pub checkout_timeout: Duration,
    /// How many times a transaction that lost a deadlock, a lock wait or a serialisation or
    /// certification conflict is run again from `BEGIN` (default 32), with a random pause
    /// that grows with each attempt (up to a quarter of a second), before the call fails
    /// with `Unavailable`. Writers to one user through different Galera nodes lose to each
    /// other at certification: with two nodes' writers and poppers racing on one user, a
    /// call needed up to 14 attempts in the tests.
    pub conflict_retries: u32,
}

impl DieselConfig {
    /// The defaults, for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 10,
            connect_timeout: Duration::from_secs(5),
            checkout_timeout: Duration::from_secs(5),
            conflict_retries: 32,
        }
    }

    /// The database the URL names.
    pub fn kind(&self) -> Result<DatabaseKind, OpenError> {
        DatabaseKind::of_url(&self.url)
    }

    /// Checks the settings, naming the one that is wrong.
    pub(crate) fn validate(&self) -> Result<(), OpenError> {
        if self.pool_size == 0 {
            return Err(OpenError::InvalidSetting {
                key: "pool_size",
                reason: "must be at least 1".into(),
            });
        }
        for (key, timeout) in [
            ("connect_timeout", self.connect_timeout),
            ("checkout_timeout", self.checkout_timeout),
        ] {
            if timeout.is_zero() {
                return Err(OpenError::InvalidSetting {
                    key,
                    reason: "must be longer than zero".into(),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Debug for DieselConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselConfig")
            .field("url", &redacted(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("checkout_timeout", &self.checkout_timeout)
            .field("conflict_retries", &self.conflict_retries)
            .finish()
    }
}

/// The URL without its password.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_database() {
        for (url, kind) in [
            ("postgres://u@h/d", DatabaseKind::Postgres),
            ("PostgreSQL://u@h/d", DatabaseKind::Postgres),
            ("mysql://root@h/test", DatabaseKind::Mysql),
            ("mariadb://root@h/test", DatabaseKind::Mysql),
            ("sqlite://offline.db", DatabaseKind::Sqlite),
        ] {
            assert_eq!(DatabaseKind::of_url(url).unwrap(), kind, "{url}");
        }
        assert!(DatabaseKind::of_url("redis://h").is_err());
        assert!(DatabaseKind::of_url("offline.db").is_err());
    }

    #[test]
    fn passwords_never_show() {
        let config = DieselConfig::new("postgres://offline:s3cret@db:5432/xmpp");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("offline:***@db:5432/xmpp"), "{shown}");
        assert_eq!(redacted("sqlite://offline.db"), "sqlite://offline.db");
    }

    #[test]
    fn settings_are_checked_by_name() {
        let zero_pool = DieselConfig {
            pool_size: 0,
            ..DieselConfig::new("sqlite://x")
        };
        assert!(
            zero_pool
                .validate()
                .unwrap_err()
                .to_string()
                .contains("pool_size")
        );
        let zero_wait = DieselConfig {
            checkout_timeout: Duration::ZERO,
            ..DieselConfig::new("sqlite://x")
        };
        assert!(
            zero_wait
                .validate()
                .unwrap_err()
                .to_string()
                .contains("checkout_timeout")
        );
    }
}
