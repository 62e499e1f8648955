//! An in-memory backend for `offline-core`: the analogue of MongooseIM's `mnesia` backend.
//!
//! Everything is lost when the process exits, so this backend suits tests, development and
//! servers that accept losing offline messages on restart. It is sharded: users are hashed
//! onto independent shards, so writers to different users rarely contend on one lock, and a
//! user's quota check and insert happen under that user's shard lock, which makes them atomic.
//! Per-domain indexes hold each queue once, under its oldest stamp and its earliest expiry:
//! `remove_expired_messages` and `remove_old_messages` visit only the queues holding something
//! they remove, a write that changes neither time (the usual case) leaves the indexes alone,
//! and domain operations never walk another domain's users.
//!
//! ```
//! use offline_core::{NewMessage, OfflineBackend, Quota, UserKey};
//! use offline_mem::MemBackend;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemBackend::new();
//! let juliet: UserKey = "juliet@example.com".parse()?;
//! let hello = NewMessage::new(1, "romeo@example.net/orchard", "juliet@example.com", "<message/>");
//! store.write_messages(&juliet, vec![hello], Quota::messages(100), 1).await?;
//! assert_eq!(store.pop_messages(&juliet, 2).await?.len(), 1);
//! # Ok::<(), offline_core::OfflineError>(())
//! # }).unwrap();
//! ```

mod shard;

use std::hash::BuildHasher;

use async_trait::async_trait;
use offline_core::{
    Domain, NewMessage, OfflineBackend, PreparedBatch, QueueStats, Quota, Result, StoredMessage,
    UserKey, WriteReport,
};
use parking_lot::Mutex;

use crate::shard::Shard;

/// The number of shards [`MemBackend::new`] uses.
pub const DEFAULT_SHARDS: usize = 64;

/// The in-memory offline store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MemBackend {
    shards: Box<[Mutex<Shard>]>,
    /// Picks a user's shard: fast and seeded per store. A collision only puts two users on
    /// one shard.
    hasher: foldhash::fast::RandomState,
}

impl MemBackend {
    /// An empty store with [`DEFAULT_SHARDS`] shards.
    pub fn new() -> Self {
        Self::with_shards(DEFAULT_SHARDS)
    }

    /// An empty store with `shards` shards (at least one).
    pub fn with_shards(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, user: &UserKey) -> &Mutex<Shard> {
        let hash = self.hasher.hash_one(user);
        // The modulo result is below `shards.len()`, so it fits a usize.
        &self.shards[(hash % self.shards.len() as u64) as usize]
    }

    /// Runs a domain purge on every shard; returns how many messages it removed.
    fn purge(&self, purge: impl Fn(&mut Shard) -> u64) -> u64 {
        self.shards
            .iter()
            .map(|shard| purge(&mut shard.lock()))
            .sum()
    }
}

impl Default for MemBackend {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl OfflineBackend for MemBackend {
    fn name(&self) -> &'static str {
        "mem"
    }

    async fn write_messages(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<WriteReport> {
        let batch = PreparedBatch::new(messages, now)?;
        self.shard(user).lock().write(user, batch, &quota, now)
    }

    async fn pop_messages(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>> {
        let mut queue = self.shard(user).lock().take_queue(user).unwrap_or_default();
        queue.retain(|stored| !stored.message.is_expired(now));
        Ok(queue)
    }

    async fn fetch_messages(
        &self,
        user: &UserKey,
        after: Option<u64>,
        limit: Option<usize>,
        now: i64,
    ) -> Result<Vec<StoredMessage>> {
        let shard = self.shard(user).lock();
        Ok(shard
            .queue(user)
            .map(|queue| queue.fetch(after, limit.unwrap_or(usize::MAX), now))
            .unwrap_or_default())
    }

    async fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        Ok(self.shard(user).lock().remove_all(user, seqs))
    }

    async fn count_messages(&self, user: &UserKey) -> Result<QueueStats> {
        let shard = self.shard(user).lock();
        Ok(shard.queue(user).map(|q| q.stats()).unwrap_or_default())
    }

    async fn list_users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Result<Vec<UserKey>> {
        // Each shard contributes its first `limit` candidates; the page is the smallest of all.
        let mut candidates: Vec<_> = self
            .shards
            .iter()
            .flat_map(|shard| shard.lock().users(domain, after, limit))
            .collect();
        candidates.sort_unstable();
        candidates.truncate(limit);
        Ok(candidates
            .into_iter()
            .map(|owner| (*owner).clone())
            .collect())
    }

    async fn remove_expired_messages(&self, domain: &Domain, now: i64) -> Result<u64> {
        Ok(self.purge(|shard| shard.remove_expired(domain, now)))
    }

    async fn remove_old_messages(&self, domain: &Domain, cutoff: i64) -> Result<u64> {
        Ok(self.purge(|shard| shard.remove_older(domain, cutoff)))
    }

    async fn remove_user(&self, user: &UserKey) -> Result<u64> {
        let queue = self.shard(user).lock().take_queue(user);
        Ok(queue.map_or(0, |messages| messages.len() as u64))
    }

    async fn remove_domain(&self, domain: &Domain) -> Result<u64> {
        Ok(self.purge(|shard| shard.remove_domain(domain)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000_000;

    fn message(to: &UserKey, n: i64) -> NewMessage {
        NewMessage::new(
            T0 - n,
            "romeo@example.net/r",
            to.to_string(),
            format!("<m n='{n}'/>"),
        )
        .expires_at(T0 + 10 + n)
    }

    /// Index entries and indexed domains over every shard.
    fn index_size(store: &MemBackend) -> (usize, usize) {
        store
            .shards
            .iter()
            .fold((0, 0), |(entries, domains), shard| {
                let (e, d) = shard.lock().index_size();
                (entries + e, domains + d)
            })
    }

    /// The name metric names and `backend = "memory"` rely on.
    #[test]
    fn the_store_is_named_mem() {
        assert_eq!(MemBackend::default().name(), "mem");
    }

    /// Every removal path takes emptied queues out of the per-domain time indexes too, so
    /// they do not grow with every queue ever held.
    #[tokio::test]
    async fn every_removal_path_empties_the_time_indexes() {
        let store = MemBackend::with_shards(4);
        let domain: Domain = "example.com".parse().unwrap();
        let user = |name: &str| -> UserKey { format!("{name}@example.com").parse().unwrap() };
        let write = |to: UserKey, now: i64| {
            let store = &store;
            async move {
                let batch = (0..3).map(|n| message(&to, n)).collect();
                store
                    .write_messages(&to, batch, Quota::UNLIMITED, now)
                    .await
                    .unwrap();
            }
        };
        for path in [
            "pop",
            "remove_messages",
            "remove_messages one by one",
            "remove_expired in steps",
            "remove_old in steps",
            "expiry at write",
            "remove_expired",
            "remove_old",
            "remove_user",
            "remove_domain",
        ] {
            let juliet = user("juliet");
            write(juliet.clone(), T0).await;
            assert_eq!(
                index_size(&store),
                (2, 1),
                "{path}: the queue indexed by its oldest stamp and its earliest expiry"
            );
            match path {
                "pop" => drop(store.pop_messages(&juliet, T0).await.unwrap()),
                "remove_messages" => {
                    let held = store.fetch_messages(&juliet, None, None, T0).await.unwrap();
                    let seqs: Vec<u64> = held.iter().map(|s| s.seq).collect();
                    store.remove_messages(&juliet, &seqs).await.unwrap();
                }
                "remove_messages one by one" => {
                    let held = store.fetch_messages(&juliet, None, None, T0).await.unwrap();
                    for stored in held {
                        store.remove_messages(&juliet, &[stored.seq]).await.unwrap();
                    }
                }
                // Messages n = 0, 1, 2 are stamped T0 - n and expire at T0 + 10 + n: each
                // first step removes the queue's earliest expiry or oldest stamp, not all.
                "remove_expired in steps" => {
                    for now in [T0 + 10, T0 + 100] {
                        store.remove_expired_messages(&domain, now).await.unwrap();
                    }
                }
                "remove_old in steps" => {
                    for cutoff in [T0 - 1, T0 + 1] {
                        store.remove_old_messages(&domain, cutoff).await.unwrap();
                    }
                }
                "expiry at write" => {
                    let empty = Vec::new();
                    store
                        .write_messages(&juliet, empty, Quota::UNLIMITED, T0 + 100)
                        .await
                        .unwrap();
                }
                "remove_expired" => drop(
                    store
                        .remove_expired_messages(&domain, T0 + 100)
                        .await
                        .unwrap(),
                ),
                "remove_old" => drop(store.remove_old_messages(&domain, T0 + 1).await.unwrap()),
                "remove_user" => drop(store.remove_user(&juliet).await.unwrap()),
                _ => drop(store.remove_domain(&domain).await.unwrap()),
            }
            assert_eq!(
                store.count_messages(&juliet).await.unwrap(),
                QueueStats::default(),
                "{path} empties the queue"
            );
            assert_eq!(
                index_size(&store),
                (0, 0),
                "{path} leaves index entries behind"
            );
        }
    }
}
