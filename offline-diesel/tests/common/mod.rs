//! What the test files share: the databases' URLs from the environment, and a factory that
//! gives each case its own namespace on a shared database.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic
)]

pub mod ledger;

use std::time::Duration;

use offline_core::{OfflineError, Result};
use offline_diesel::{DieselBackend, DieselConfig};
use offline_testkit::{Fixture, StoreFactory};

/// Where the local PostgreSQL is (`scripts/test` sets it).
pub const POSTGRES: &str = "OFFLINE_TEST_POSTGRES_URL";
/// Where the local MariaDB is (`scripts/test` sets it).
pub const MYSQL: &str = "OFFLINE_TEST_MYSQL_URL";

/// Whether this is a CI run, where every database must be there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The URL in `variable`, if set.
pub fn url(variable: &str) -> Option<String> {
    std::env::var(variable).ok().filter(|url| !url.is_empty())
}

/// Why a database's tests cannot run here, outside CI (under CI they run and fail).
pub fn unavailable(variable: &str) -> Option<String> {
    (url(variable).is_none() && !in_ci())
        .then(|| format!("{variable} is not set (scripts/test sets it)"))
}

/// The URL in `variable`, or an error saying it is missing.
pub fn required(variable: &str) -> Result<String> {
    url(variable).ok_or_else(|| {
        OfflineError::invalid_input(format!("{variable} is not set, and CI requires it"))
    })
}

/// The pool the tests use: enough connections for the suite's 16 racing writers.
pub fn config(url: &str) -> DieselConfig {
    DieselConfig {
        pool_size: 8,
        checkout_timeout: Duration::from_secs(30),
        ..DieselConfig::new(url)
    }
}

/// Connects, as the contract's error.
pub async fn connect(url: &str) -> Result<DieselBackend> {
    Ok(DieselBackend::connect(config(url)).await?)
}

/// A database shared by every case, each case in its own namespace. Peers are second pools
/// on the same database; `peer_urls` (a Galera cluster's other nodes) are used in turn when
/// given.
pub struct Shared {
    /// The environment variable naming the database.
    pub variable: &'static str,
    /// The database's URL, when it is known some other way.
    pub url: Option<String>,
    /// Other nodes' URLs, for peers.
    pub peer_urls: Vec<String>,
}

impl Shared {
    /// The database named by `variable`.
    pub fn new(variable: &'static str) -> Self {
        Self {
            variable,
            url: None,
            peer_urls: Vec::new(),
        }
    }

    fn url(&self) -> Result<String> {
        match &self.url {
            Some(url) => Ok(url.clone()),
            None => required(self.variable),
        }
    }
}

impl StoreFactory for Shared {
    type Store = DieselBackend;

    fn unavailable(&self) -> Option<String> {
        if self.url.is_some() {
            return None;
        }
        unavailable(self.variable)
    }

    async fn create(&self) -> Result<Fixture<DieselBackend>> {
        Ok(Fixture::in_own_namespace(connect(&self.url()?).await?))
    }

    async fn reopen(&self, store: DieselBackend) -> Result<DieselBackend> {
        drop(store);
        connect(&self.url()?).await
    }

    async fn peer(&self, _store: &DieselBackend) -> Result<DieselBackend> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        match self.peer_urls.len() {
            0 => connect(&self.url()?).await,
            n => connect(&self.peer_urls[NEXT.fetch_add(1, Ordering::Relaxed) % n]).await,
        }
    }
}
