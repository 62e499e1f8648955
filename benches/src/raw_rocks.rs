//! The RocksDB baseline: the same bytes through the same `rocksdb` crate, with none of the
//! store's bookkeeping.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use offline_core::{Domain, NewMessage, Quota, UserKey};
use rocksdb::{
    DB, DBCompressionType, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions,
};

use crate::{Result, Subject};

/// Raw RocksDB: a message is one put of its packet (behind its expiry time) under
/// `server \0 user \0 seq`, a write is one write batch, a pop iterates the user's prefix and
/// deletes what it read. No quota, no indexes, no locks; calls run on the caller's thread.
pub struct RawRocks {
    db: DB,
    sync: bool,
    next_seq: AtomicU64,
}

impl std::fmt::Debug for RawRocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRocks")
            .field("path", &self.db.path())
            .finish()
    }
}

impl RawRocks {
    /// Opens (or creates) a database at `path`, LZ4-compressed as the store's is, with every
    /// write synced to disk when `sync` is set.
    pub fn open(path: &Path, sync: bool) -> Result<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compression_type(DBCompressionType::Lz4);
        Ok(Self {
            db: DB::open(&options, path)?,
            sync,
            next_seq: AtomicU64::new(1),
        })
    }

    fn write_options(&self) -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(self.sync);
        options
    }

    /// `(key, value)` of the entries under `prefix` whose value `keep` accepts, in key order,
    /// at most `limit`.
    fn scan(
        &self,
        prefix: Vec<u8>,
        keep: impl Fn(&[u8]) -> bool,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let mut upper = prefix.clone();
        // Every prefix ends in the 0 separator, so the range ends where that byte is 1.
        if let Some(last) = upper.last_mut() {
            *last = 1;
        }
        let mut read = ReadOptions::default();
        read.set_iterate_upper_bound(upper);
        self.db
            .iterator_opt(IteratorMode::From(&prefix, Direction::Forward), read)
            .filter(|entry| entry.as_ref().map_or(true, |(_, value)| keep(value)))
            .take(limit)
            .map(|entry| Ok(entry?))
            .collect()
    }
}

/// A key and its value.
type Entry = (Box<[u8]>, Box<[u8]>);

fn domain_prefix(server: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(server.len() + 1);
    key.extend_from_slice(server.as_bytes());
    key.push(0);
    key
}

fn user_prefix(user: &UserKey) -> Vec<u8> {
    let mut key = domain_prefix(user.server());
    key.extend_from_slice(user.user().as_bytes());
    key.push(0);
    key
}

fn expire_of(value: &[u8]) -> i64 {
    value
        .get(..8)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(i64::MAX, i64::from_be_bytes)
}

#[async_trait]
impl Subject for RawRocks {
    fn label(&self) -> String {
        "raw rocksdb".to_owned()
    }

    fn checks_quota(&self) -> bool {
        false
    }

    async fn write(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        _quota: Quota,
        _now: i64,
    ) -> Result<u64> {
        let prefix = user_prefix(user);
        let mut batch = WriteBatch::default();
        let first = self
            .next_seq
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        for (seq, message) in (first..).zip(&messages) {
            let mut key = prefix.clone();
            key.extend_from_slice(&seq.to_be_bytes());
            let mut value = Vec::with_capacity(8 + message.packet.len());
            value.extend_from_slice(&message.expire.unwrap_or(i64::MAX).to_be_bytes());
            value.extend_from_slice(message.packet.as_bytes());
            batch.put(key, value);
        }
        self.db.write_opt(batch, &self.write_options())?;
        Ok(messages.len() as u64)
    }

    async fn pop(&self, user: &UserKey, now: i64) -> Result<usize> {
        let entries = self.scan(user_prefix(user), |_| true, usize::MAX)?;
        let mut batch = WriteBatch::default();
        for (key, _) in &entries {
            batch.delete(key);
        }
        self.db.write_opt(batch, &self.write_options())?;
        Ok(entries
            .iter()
            .filter(|(_, value)| expire_of(value) > now)
            .count())
    }

    async fn count(&self, user: &UserKey) -> Result<u64> {
        Ok(self.scan(user_prefix(user), |_| true, usize::MAX)?.len() as u64)
    }

    async fn fetch_page(&self, user: &UserKey, limit: usize, now: i64) -> Result<usize> {
        let live = |value: &[u8]| expire_of(value) > now;
        Ok(self.scan(user_prefix(user), live, limit)?.len())
    }

    async fn remove_expired(&self, domain: &Domain, now: i64) -> Result<u64> {
        let mut batch = WriteBatch::default();
        let expired = |value: &[u8]| expire_of(value) <= now;
        for (key, _) in self.scan(domain_prefix(domain.as_str()), expired, usize::MAX)? {
            batch.delete(key);
        }
        let removed = batch.len() as u64;
        self.db.write_opt(batch, &self.write_options())?;
        Ok(removed)
    }

    async fn clear(&self, domain: &Domain) -> Result<()> {
        let prefix = domain_prefix(domain.as_str());
        let mut upper = prefix.clone();
        if let Some(last) = upper.last_mut() {
            *last = 1;
        }
        let mut batch = WriteBatch::default();
        batch.delete_range(prefix, upper);
        self.db.write_opt(batch, &self.write_options())?;
        Ok(())
    }
}
