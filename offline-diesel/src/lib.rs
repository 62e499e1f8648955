//! A relational backend for `offline-core` on `diesel` and `diesel-async`: PostgreSQL,
//! MariaDB and SQLite, each behind its cargo feature (`postgres`, `mysql`, `sqlite`). Many
//! server nodes may share one PostgreSQL database, or a MariaDB Galera cluster (multi-master),
//! and every guarantee of the contract holds across them.
//!
//! - Our own tables (`offline_store_queue`, `offline_store_message`), created by embedded
//!   migrations when the store opens; they never clash with MongooseIM's `offline_message`,
//!   which [`import`] reads.
//! - Writes to one user are serialised, on every node, by the user's row in
//!   `offline_store_queue`: every transaction that changes the queue locks it and updates it
//!   (it carries the next seq and what the queue holds). The quota check, the insert and the
//!   seqs all happen under it. No advisory or session locks, which are node-local on Galera.
//! - Deadlocks, lock wait timeouts and serialisation or certification conflicts are retried
//!   from `BEGIN` with a random pause, a bounded number of times
//!   ([`DieselConfig::conflict_retries`]), then reported as `Unavailable`. A lost connection
//!   is dropped from the pool; the call fails with `Unavailable` unless nothing had been
//!   sent, in which case it runs again on a fresh connection.
//! - Addresses compare byte-wise on every dialect; purges and `list_users` read through
//!   per-server indexes, so they cost what they return or remove.
//! - No C client library: the PostgreSQL and MariaDB drivers are pure Rust; SQLite is compiled
//!   in. No blocking call on async threads.
//!
//! ```no_run
//! use offline_core::{NewMessage, OfflineBackend, Quota, UserKey};
//! use offline_diesel::{DieselBackend, DieselConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = DieselBackend::connect(DieselConfig::new("postgres://offline@db.example.com/xmpp")).await?;
//! let juliet: UserKey = "juliet@example.com".parse()?;
//! let hello = NewMessage::new(1, "romeo@example.net/orchard", "juliet@example.com", "<message/>");
//! store.write_messages(&juliet, vec![hello], Quota::messages(100), 1).await?;
//! assert_eq!(store.pop_messages(&juliet, 2).await?.len(), 1);
//! # Ok(())
//! # }
//! ```

mod config;
mod dialect;
mod error;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub mod import;
#[cfg(feature = "mysql")]
mod mysql;
mod pool;
#[cfg(feature = "postgres")]
mod postgres;
mod query;
mod rows;
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
compile_error!("offline-diesel needs at least one of its features: postgres, mysql, sqlite");

use async_trait::async_trait;
use offline_core::{
    Domain, NewMessage, OfflineBackend, QueueStats, Quota, Result, StoredMessage, UserKey,
    WriteReport,
};

pub use config::{DatabaseKind, DieselConfig};
pub use error::OpenError;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
use store::SqlStore;

/// The relational offline store: a connection pool on one database. Cheap to share behind an
/// `Arc`; the pool closes when it is dropped.
#[derive(Debug)]
pub struct DieselBackend {
    config: DieselConfig,
    kind: DatabaseKind,
    store: Store,
}

/// The store on the dialect the URL named.
#[derive(Debug)]
enum Store {
    #[cfg(feature = "postgres")]
    Postgres(SqlStore<postgres::Postgres>),
    #[cfg(feature = "mysql")]
    Mysql(SqlStore<mysql::Mysql_>),
    #[cfg(feature = "sqlite")]
    Sqlite(SqlStore<sqlite::Sqlite_>),
}

/// Calls the same method on whichever dialect's store this is.
macro_rules! on_store {
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.store {
            #[cfg(feature = "postgres")]
            Store::Postgres($store) => $call,
            #[cfg(feature = "mysql")]
            Store::Mysql($store) => $call,
            #[cfg(feature = "sqlite")]
            Store::Sqlite($store) => $call,
        }
    };
}

impl DieselBackend {
    /// Connects to the database `config.url` names, creates or upgrades the store's tables,
    /// and opens the pool. Must run inside a tokio runtime.
    pub async fn connect(config: DieselConfig) -> Result<Self, OpenError> {
        config.validate()?;
        let kind = config.kind()?;
        let store = match kind {
            #[cfg(feature = "postgres")]
            DatabaseKind::Postgres => Store::Postgres(postgres::open(&config).await?),
            #[cfg(feature = "mysql")]
            DatabaseKind::Mysql => Store::Mysql(mysql::open(&config).await?),
            #[cfg(feature = "sqlite")]
            DatabaseKind::Sqlite => Store::Sqlite(sqlite::open(&config).await?),
            #[allow(unreachable_patterns)]
            kind => {
                return Err(OpenError::NotBuilt {
                    dialect: kind.name(),
                    feature: kind.name(),
                });
            }
        };
        Ok(Self {
            config,
            kind,
            store,
        })
    }

    /// The database this store is on.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &DieselConfig {
        &self.config
    }
}

#[async_trait]
impl OfflineBackend for DieselBackend {
    fn name(&self) -> &'static str {
        error::BACKEND
    }

    async fn write_messages(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<WriteReport> {
        on_store!(self, s => s.write_messages(user, messages, quota, now).await)
    }

    async fn pop_messages(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>> {
        on_store!(self, s => s.pop_messages(user, now).await)
    }

    async fn fetch_messages(
        &self,
        user: &UserKey,
        after: Option<u64>,
        limit: Option<usize>,
        now: i64,
    ) -> Result<Vec<StoredMessage>> {
        on_store!(self, s => s.fetch_messages(user, after, limit, now).await)
    }

    async fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        on_store!(self, s => s.remove_messages(user, seqs).await)
    }

    async fn count_messages(&self, user: &UserKey) -> Result<QueueStats> {
        on_store!(self, s => s.count_messages(user).await)
    }

    async fn list_users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Result<Vec<UserKey>> {
        on_store!(self, s => s.list_users(domain, after, limit).await)
    }

    async fn remove_expired_messages(&self, domain: &Domain, now: i64) -> Result<u64> {
        on_store!(self, s => s.remove_expired_messages(domain, now).await)
    }

    async fn remove_old_messages(&self, domain: &Domain, cutoff: i64) -> Result<u64> {
        on_store!(self, s => s.remove_old_messages(domain, cutoff).await)
    }

    async fn remove_user(&self, user: &UserKey) -> Result<u64> {
        on_store!(self, s => s.remove_user(user).await)
    }

    async fn remove_domain(&self, domain: &Domain) -> Result<u64> {
        on_store!(self, s => s.remove_domain(domain).await)
    }
}

/// Compiles the RDBMS chapter's Rust examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/rdbms.md")]
struct RdbmsChapterDoctests;
