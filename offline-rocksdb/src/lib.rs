//! An embedded, persistent backend for `offline-core` on RocksDB: the default of a single-node
//! server, and what MongooseIM's default `backend = "mnesia"` maps to.
//!
//! - Crash-safe: every write, pop and removal by seq is one RocksDB write batch, acknowledged
//!   once it is in the write-ahead log; with [`RocksConfig::sync_writes`] (the default) also
//!   once it is on disk. Column families flush atomically. A killed process loses no
//!   acknowledged write (a crash test kills a writer 20 times while memtables flush).
//! - A damaged record is reported with the message's seq by the pop and fetch that meet it,
//!   and removed by `remove_messages`, `remove_user` or `remove_domain` without decoding.
//! - Seqs never repeat, not after a restart: the high-water mark is persisted with every batch
//!   that stores messages.
//! - The quota check and the insert are atomic within the process that owns the store (one
//!   process at a time: RocksDB locks the directory).
//! - Purges cost what they remove: per-domain indexes by expiry and by age, in keys that never
//!   confuse a domain or a user with another ([`keys`](crate#key-layout)).
//! - RocksDB work that may wait runs on tokio's blocking threads (`spawn_blocking`), never on
//!   async workers. With [`RocksConfig::sync_writes`] off, a call is first tried on the calling
//!   thread in memory-only mode: reads served from memtables and the block cache
//!   (`ReadTier::BlockCache`), writes that never stall (`no_slowdown`), a user lock taken only
//!   if free; when any of these would wait, the attempt stops having written nothing and the
//!   call runs on a blocking thread. The hand-off to a blocking thread and back costs more
//!   than the work itself (tens of microseconds against a few). Outside a tokio runtime all
//!   work runs on the calling thread.
//!
//! ```
//! use offline_core::{NewMessage, OfflineBackend, Quota, UserKey};
//! use offline_rocksdb::{RocksBackend, RocksConfig};
//!
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir()?;
//! let store = RocksBackend::open(RocksConfig::new(dir.path()))?;
//! let juliet: UserKey = "juliet@example.com".parse()?;
//! let hello = NewMessage::new(1, "romeo@example.net/orchard", "juliet@example.com", "<message/>");
//! store.write_messages(&juliet, vec![hello], Quota::messages(100), 1).await?;
//! drop(store);
//!
//! // A restart: the message is still there.
//! let store = RocksBackend::open(RocksConfig::new(dir.path()))?;
//! assert_eq!(store.pop_messages(&juliet, 2).await?.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Key layout
//!
//! See the `keys` module: domains and localparts are written escaped and terminated, so that
//! encoded parts sort as the parts do and none is a prefix of another's; times and seqs are
//! big-endian. Column families: `messages` (user, seq), `users` (what each queue holds, and
//! a time before which none of its messages expires), `dedupe` (user, key), `user_expiry`
//! (user, expire, seq), `expiry` and `age` (domain, time, localpart, seq), `meta` (format
//! version, seq high-water mark).

mod codec;
mod config;
mod error;
mod keys;
mod store;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use offline_core::{
    Domain, NewMessage, OfflineBackend, OfflineError, QueueStats, Quota, Result, StoredMessage,
    UserKey, WriteReport,
};

pub use config::{Compression, RocksConfig};
use error::BACKEND;
pub use error::OpenError;
use store::Store;

/// The format version a store is written in; a store of another version does not open.
pub const FORMAT_VERSION: u64 = store::FORMAT_VERSION;

/// The RocksDB offline store. Cheap to share behind an `Arc`; closed when the last clone is
/// dropped.
#[derive(Debug)]
pub struct RocksBackend {
    store: Arc<Store>,
}

impl RocksBackend {
    /// Opens the store at `config.path`, creating it if needed. Errors name the path and say
    /// what is wrong: no permission, locked by another process, corrupted, written by an
    /// incompatible version, or not an offline store.
    pub fn open(config: RocksConfig) -> Result<Self, OpenError> {
        Ok(Self {
            store: Arc::new(Store::open(&config)?),
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Runs RocksDB work: on the calling thread when it can finish from memory without
    /// waiting (stores that do not sync their writes), else off the async worker threads.
    async fn run<T: Send + 'static>(
        &self,
        work: impl Fn(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if let Some(done) = self.store.try_in_memory(&work) {
            return done;
        }
        let store = Arc::clone(&self.store);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(move || work(&store))
                .await
                .map_err(|e| OfflineError::backend(BACKEND, e))?,
            Err(_) => work(&store),
        }
    }
}

#[async_trait]
impl OfflineBackend for RocksBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn write_messages(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<WriteReport> {
        let user = user.clone();
        self.run(move |store| store.write(&user, messages.clone(), quota, now))
            .await
    }

    async fn pop_messages(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>> {
        let user = user.clone();
        self.run(move |store| store.pop(&user, now)).await
    }

    async fn fetch_messages(
        &self,
        user: &UserKey,
        after: Option<u64>,
        limit: Option<usize>,
        now: i64,
    ) -> Result<Vec<StoredMessage>> {
        let user = user.clone();
        self.run(move |store| store.fetch(&user, after, limit, now))
            .await
    }

    async fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        let (user, seqs) = (user.clone(), seqs.to_vec());
        self.run(move |store| store.remove_messages(&user, &seqs))
            .await
    }

    async fn count_messages(&self, user: &UserKey) -> Result<QueueStats> {
        let user = user.clone();
        self.run(move |store| store.count(&user)).await
    }

    async fn list_users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Result<Vec<UserKey>> {
        let (domain, after) = (domain.cloned(), after.cloned());
        self.run(move |store| store.list_users(domain.as_ref(), after.as_ref(), limit))
            .await
    }

    async fn remove_expired_messages(&self, domain: &Domain, now: i64) -> Result<u64> {
        let domain = domain.clone();
        self.run(move |store| store.remove_expired(&domain, now))
            .await
    }

    async fn remove_old_messages(&self, domain: &Domain, cutoff: i64) -> Result<u64> {
        let domain = domain.clone();
        self.run(move |store| store.remove_old(&domain, cutoff))
            .await
    }

    async fn remove_user(&self, user: &UserKey) -> Result<u64> {
        let user = user.clone();
        self.run(move |store| store.remove_user(&user)).await
    }

    async fn remove_domain(&self, domain: &Domain) -> Result<u64> {
        let domain = domain.clone();
        self.run(move |store| store.remove_domain(&domain)).await
    }
}
