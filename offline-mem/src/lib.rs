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

use async_trait::async_trait;
use offline_core::{
    Domain, NewMessage, OfflineBackend, PreparedBatch, QueueStats, Quota, Result, StoredMessage,
    UserKey, WriteReport,
};
use parking_lot::Mutex;

use crate::shard::{Hashed, Queue, Shard, UserHasher, hash_user};

/// The number of shards [`MemBackend::new`] uses.
pub const DEFAULT_SHARDS: usize = 64;

/// The in-memory offline store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MemBackend {
    shards: Box<[Mutex<Shard>]>,
    /// Picks a user's shard, and the user's queue in it, from one hash.
    hasher: UserHasher,
}

impl MemBackend {
    /// An empty store with [`DEFAULT_SHARDS`] shards.
    pub fn new() -> Self {
        Self::with_shards(DEFAULT_SHARDS)
    }

    /// An empty store with `shards` shards (at least one).
    pub fn with_shards(shards: usize) -> Self {
        let hasher = UserHasher::default();
        Self {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(Shard::new(hasher.clone())))
                .collect(),
            hasher,
        }
    }

    /// The user's shard, and the user with its hash for the shard's lookups.
    fn shard<'a>(&self, user: &'a UserKey) -> (&Mutex<Shard>, Hashed<'a>) {
        let hash = hash_user(&self.hasher, user.server(), user.user());
        // The shard goes by high bits: the shard's table places queues by the low ones. The
        // modulo result is below `shards.len()`, so it fits a usize.
        let shard = &self.shards[((hash >> 32) % self.shards.len() as u64) as usize];
        (shard, Hashed { user, hash })
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
        let (shard, user) = self.shard(user);
        shard.lock().write(user, batch, &quota, now)
    }

    async fn pop_messages(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>> {
        let (shard, user) = self.shard(user);
        let mut queue = shard.lock().take_queue(user).unwrap_or_default();
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
        let (shard, user) = self.shard(user);
        Ok(shard
            .lock()
            .queue(user)
            .map(|queue| queue.fetch(after, limit.unwrap_or(usize::MAX), now))
            .unwrap_or_default())
    }

    async fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        let (shard, user) = self.shard(user);
        Ok(shard.lock().remove_all(user, seqs))
    }

    async fn count_messages(&self, user: &UserKey) -> Result<QueueStats> {
        let (shard, user) = self.shard(user);
        Ok(shard
            .lock()
            .queue(user)
            .map(Queue::stats)
            .unwrap_or_default())
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
            .map(|(server, user)| UserKey::from_normalized(&*server, &*user))
            .collect())
    }

    async fn remove_expired_messages(&self, domain: &Domain, now: i64) -> Result<u64> {
        Ok(self.purge(|shard| shard.remove_expired(domain, now)))
    }

    async fn remove_old_messages(&self, domain: &Domain, cutoff: i64) -> Result<u64> {
        Ok(self.purge(|shard| shard.remove_older(domain, cutoff)))
    }

    async fn remove_user(&self, user: &UserKey) -> Result<u64> {
        let (shard, user) = self.shard(user);
        let queue = shard.lock().take_queue(user);
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

    /// A queue is found by its owner's hash and then compared: with every user on one shard
    /// and one username in many domains, hash-tag collisions between those users are certain,
    /// and each must still reach only its own queue, on every path that looks queues up.
    #[tokio::test]
    async fn one_username_in_many_domains_keeps_its_queues_apart() {
        let store = MemBackend::with_shards(1);
        let users: Vec<UserKey> = (0..2_000)
            .map(|n| format!("alice@d{n}.example").parse().unwrap())
            .collect();
        for (n, user) in users.iter().enumerate() {
            let hello = NewMessage::new(
                T0,
                "romeo@example.net/r",
                user.to_string(),
                format!("<m n='{n}'/>"),
            );
            store
                .write_messages(user, vec![hello], Quota::messages(1), T0)
                .await
                .unwrap();
        }
        for (n, user) in users.iter().enumerate() {
            assert_eq!(
                store.count_messages(user).await.unwrap().messages,
                1,
                "{user}"
            );
            if n % 2 == 0 {
                let domain = user.domain();
                store.remove_old_messages(&domain, T0 + 1).await.unwrap();
            } else {
                let popped = store.pop_messages(user, T0).await.unwrap();
                assert_eq!(popped.len(), 1, "{user}");
                assert_eq!(popped[0].message.packet, format!("<m n='{n}'/>"), "{user}");
            }
            assert_eq!(
                store.count_messages(user).await.unwrap().messages,
                0,
                "{user}"
            );
        }
    }

    /// The owners' B-trees compare the first 16 bytes of a username as one number: names
    /// that share those bytes, or are a prefix of one another, stay distinct and in order.
    #[tokio::test]
    async fn usernames_sharing_their_first_bytes_stay_apart_and_in_order() {
        let store = MemBackend::with_shards(1);
        let domain: Domain = "example.com".parse().unwrap();
        let names = [
            "sixteen-bytes-ab",
            "sixteen-bytes-abc",
            "sixteen-bytes-ab-2",
            "sixteen-bytes-b",
            "sixteen",
        ];
        for name in names {
            let user: UserKey = format!("{name}@example.com").parse().unwrap();
            let batch = vec![message(&user, 0)];
            store
                .write_messages(&user, batch, Quota::UNLIMITED, T0)
                .await
                .unwrap();
        }
        let mut sorted = names.to_vec();
        sorted.sort_unstable();
        let listed = store.list_users(Some(&domain), None, 10).await.unwrap();
        let listed: Vec<&str> = listed.iter().map(UserKey::user).collect();
        assert_eq!(listed, sorted);
        for size in [1, 2] {
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let page = store.list_users(None, after.as_ref(), size).await.unwrap();
                let Some(last) = page.last().cloned() else {
                    break;
                };
                paged.extend(page);
                after = Some(last);
            }
            let paged: Vec<&str> = paged.iter().map(UserKey::user).collect();
            assert_eq!(paged, sorted, "in pages of {size}");
        }
        assert_eq!(
            store.remove_old_messages(&domain, T0 + 1).await.unwrap(),
            names.len() as u64
        );
        assert_eq!(index_size(&store), (0, 0));
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
