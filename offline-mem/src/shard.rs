//! One shard of the in-memory store: the queues of the users hashed to it, and per-domain
//! indexes over those queues.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::Arc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use offline_core::{
    Domain, NewMessage, PreparedBatch, QueueStats, Quota, Result, StoredMessage, UserKey,
    WriteReport,
};

/// Hashes users: picks a user's shard and finds its queue there, from one hash per call.
/// Fast and seeded per store; the users are the server's own, not keys a remote sender picks.
pub(crate) type UserHasher = foldhash::quality::RandomState;

/// A user's key and its hash under the store's [`UserHasher`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hashed<'a> {
    /// The user.
    pub(crate) user: &'a UserKey,
    /// [`hash_user`] of the user.
    pub(crate) hash: u64,
}

/// The hash of the user `user` of `server`, the same for a [`UserKey`] and an [`Owner`].
pub(crate) fn hash_user(hasher: &UserHasher, server: &str, user: &str) -> u64 {
    hasher.hash_one((server, user))
}

/// The queues of some users, and indexes over them by domain.
#[derive(Debug)]
pub(crate) struct Shard {
    /// Queues, found by their owner's hash: one lookup per call.
    queues: HashTable<Queue>,
    /// The store's hasher, for purges that find queues by the owners in an index.
    hasher: UserHasher,
    /// Each domain holding a queue here, in name order, with its owners in order and its
    /// time indexes.
    domains: BTreeMap<Arc<str>, DomainIndex>,
    /// The last seq given to a message here. A user's messages all go to one shard, so its
    /// seqs increase in arrival order; seqs are not unique across shards (nor need they be).
    last_seq: u64,
}

/// A user's messages in `seq` order, with what the write path needs at hand.
#[derive(Debug)]
pub(crate) struct Queue {
    /// The user, shared with its domain's indexes.
    owner: Owner,
    /// Appended in increasing `seq` (seqs are taken under the shard's lock).
    messages: Vec<StoredMessage>,
    stats: QueueStats,
    /// `(expire, seq)` of the messages that expire.
    expiring: BTreeSet<(i64, u64)>,
    /// Dedupe keys of the messages held.
    dedupe_keys: HashSet<String>,
    /// The oldest timestamp held.
    oldest: Option<i64>,
}

/// A queue's owner: its username, and its server shared with every queue of that domain in
/// the shard, so a queue that appears costs one allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Owner {
    /// The domain's name, the one its [`DomainIndex`] holds.
    server: Arc<str>,
    /// The username, as the domain's indexes hold it.
    user: Username,
}

impl Owner {
    /// Whether this is `key`'s queue.
    fn is(&self, key: &UserKey) -> bool {
        *self.user.name == *key.user() && *self.server == *key.server()
    }

    /// [`hash_user`] of the owner.
    fn hash(&self, hasher: &UserHasher) -> u64 {
        hash_user(hasher, &self.server, &self.user.name)
    }
}

/// A username in byte order, its first [`Username::HEAD`] bytes also kept inline as one
/// number: comparisons in the indexes' B-trees mostly end on that number, with no pointer
/// to follow. Ordered exactly as the names are, so a B-tree of owners can be searched by a
/// `&str` too.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Username {
    /// The first bytes, big-endian, zero-padded: numbers compare as the bytes do, and when
    /// they are equal the names decide.
    head: u128,
    /// The whole name.
    name: Arc<str>,
}

impl Username {
    /// How many bytes of the name [`head`](Self::head) holds.
    const HEAD: usize = 16;

    /// `name`, in one allocation.
    fn new(name: &str) -> Self {
        let mut head = [0; Self::HEAD];
        let len = name.len().min(Self::HEAD);
        head[..len].copy_from_slice(&name.as_bytes()[..len]);
        Self {
            head: u128::from_be_bytes(head),
            name: Arc::from(name),
        }
    }
}

impl PartialOrd for Username {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Username {
    fn cmp(&self, other: &Self) -> Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| self.name.cmp(&other.name))
    }
}

impl Borrow<str> for Username {
    fn borrow(&self) -> &str {
        &self.name
    }
}

/// One domain's queues in this shard, by their owners' usernames: in name order (for
/// `list_users`), and by the times purges go by. Each queue is in each time index once, under
/// its oldest timestamp and its earliest expiry: a purge visits only the queues that hold
/// something it removes, and a write that changes neither time (the usual case) leaves the
/// indexes alone.
#[derive(Debug)]
struct DomainIndex {
    /// The domain's name, shared by its owners.
    server: Arc<str>,
    /// The owners of the domain's queues.
    owners: BTreeSet<Username>,
    /// Each queue that holds an expiring message, under its earliest expiry.
    by_expire: BTreeSet<(i64, Username)>,
    /// Each queue, under its oldest timestamp.
    by_timestamp: BTreeSet<(i64, Username)>,
}

impl DomainIndex {
    /// No queue yet of the domain `server`.
    fn new(server: Arc<str>) -> Self {
        Self {
            server,
            owners: BTreeSet::new(),
            by_expire: BTreeSet::new(),
            by_timestamp: BTreeSet::new(),
        }
    }
}

/// Where a queue sits in its domain's indexes; `None` where it is absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct IndexKeys {
    oldest: Option<i64>,
    earliest_expire: Option<i64>,
}

/// Moves `user`'s queue in `index` from `before` to `after`.
fn move_entry(
    index: &mut BTreeSet<(i64, Username)>,
    user: &Username,
    before: Option<i64>,
    after: Option<i64>,
) {
    if before == after {
        return;
    }
    if let Some(time) = before {
        index.remove(&(time, user.clone()));
    }
    if let Some(time) = after {
        index.insert((time, user.clone()));
    }
}

impl Queue {
    fn new(owner: Owner) -> Self {
        Self {
            owner,
            messages: Vec::new(),
            stats: QueueStats::default(),
            expiring: BTreeSet::new(),
            dedupe_keys: HashSet::new(),
            oldest: None,
        }
    }

    pub(crate) fn stats(&self) -> QueueStats {
        self.stats
    }

    pub(crate) fn holds_key(&self, key: &str) -> bool {
        self.dedupe_keys.contains(key)
    }

    /// Unexpired messages with `seq > after`, in order, at most `limit`.
    pub(crate) fn fetch(&self, after: Option<u64>, limit: usize, now: i64) -> Vec<StoredMessage> {
        let start = after.map_or(0, |after| self.messages.partition_point(|m| m.seq <= after));
        self.messages[start..]
            .iter()
            .filter(|stored| !stored.message.is_expired(now))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The queue's keys, or `None` when it holds nothing (and goes).
    fn keys_unless_empty(&self) -> Option<IndexKeys> {
        (!self.messages.is_empty()).then(|| self.keys())
    }

    fn keys(&self) -> IndexKeys {
        IndexKeys {
            oldest: self.oldest,
            earliest_expire: self.expiring.first().map(|&(expire, _)| expire),
        }
    }

    fn insert(&mut self, seq: u64, message: NewMessage) {
        self.stats.add(&message);
        if let Some(expire) = message.expire {
            self.expiring.insert((expire, seq));
        }
        if let Some(key) = &message.dedupe_key {
            self.dedupe_keys.insert(key.clone());
        }
        self.oldest = Some(
            self.oldest
                .map_or(message.timestamp, |t| t.min(message.timestamp)),
        );
        self.messages.push(StoredMessage { seq, message });
    }

    /// Removes the messages expired at `now`; returns how many.
    fn remove_expired(&mut self, now: i64) -> u64 {
        let mut seqs: Vec<u64> = self
            .expiring
            .range(..=(now, u64::MAX))
            .map(|&(_, seq)| seq)
            .collect();
        seqs.sort_unstable();
        self.remove_seqs(&seqs)
    }

    /// Removes the messages with seqs in `seqs` (sorted); returns how many.
    fn remove_seqs(&mut self, seqs: &[u64]) -> u64 {
        let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
            return 0;
        };
        // Only the stretch of the queue between the first and the last seq is visited.
        let start = self.messages.partition_point(|m| m.seq < first);
        let end = self.messages.partition_point(|m| m.seq <= last);
        self.remove_where(start..end, |m| seqs.binary_search(&m.seq).is_ok())
    }

    /// Removes the messages in `range` of the queue that `doomed` picks; returns how many.
    fn remove_where(
        &mut self,
        range: std::ops::Range<usize>,
        mut doomed: impl FnMut(&StoredMessage) -> bool,
    ) -> u64 {
        let Queue {
            owner: _,
            messages,
            stats,
            expiring,
            dedupe_keys,
            oldest,
        } = self;
        let mut removed = 0;
        let mut oldest_gone = false;
        for gone in messages.extract_if(range, |m| doomed(m)) {
            let message = &gone.message;
            stats.remove(message);
            if let Some(expire) = message.expire {
                expiring.remove(&(expire, gone.seq));
            }
            if let Some(key) = &message.dedupe_key {
                dedupe_keys.remove(key);
            }
            oldest_gone |= *oldest == Some(message.timestamp);
            removed += 1;
        }
        if oldest_gone {
            *oldest = messages.iter().map(|m| m.message.timestamp).min();
        }
        removed
    }
}

impl Shard {
    /// An empty shard whose users are hashed with `hasher`.
    pub(crate) fn new(hasher: UserHasher) -> Self {
        Self {
            queues: HashTable::new(),
            hasher,
            domains: BTreeMap::new(),
            last_seq: 0,
        }
    }

    /// The user's queue, if it holds anything.
    pub(crate) fn queue(&self, user: Hashed<'_>) -> Option<&Queue> {
        self.queues
            .find(user.hash, |queue| queue.owner.is(user.user))
    }

    /// `write_messages` on the user's queue: its expired messages removed, the batch's
    /// messages whose dedupe key it holds skipped, the quota checked, then the rest appended
    /// with the shard's next seqs.
    pub(crate) fn write(
        &mut self,
        user: Hashed<'_>,
        mut batch: PreparedBatch,
        quota: &Quota,
        now: i64,
    ) -> Result<WriteReport> {
        let Shard {
            queues,
            hasher,
            domains,
            last_seq,
        } = self;
        let entry = queues.entry(
            user.hash,
            |queue| queue.owner.is(user.user),
            |queue| queue.owner.hash(hasher),
        );
        let queue = match entry {
            Entry::Occupied(queue) => queue.into_mut(),
            Entry::Vacant(room) => {
                let key = user.user;
                let index = match domains.get_mut(key.server()) {
                    Some(index) => index,
                    None => {
                        let server: Arc<str> = Arc::from(key.server());
                        let index = DomainIndex::new(Arc::clone(&server));
                        domains.entry(server).or_insert(index)
                    }
                };
                let owner = Owner {
                    server: Arc::clone(&index.server),
                    user: Username::new(key.user()),
                };
                index.owners.insert(owner.user.clone());
                room.insert(Queue::new(owner)).into_mut()
            }
        };
        let before = queue.keys();
        if !queue.expiring.is_empty() {
            queue.remove_expired(now);
        }
        batch.skip_held_duplicates(|key| queue.holds_key(key));
        let checked = batch.check_quota(user.user, quota, queue.stats());
        let (messages, report) = batch.into_parts();
        if checked.is_ok() && !messages.is_empty() {
            for message in messages {
                *last_seq += 1;
                queue.insert(*last_seq, message);
            }
        }
        let after = queue.keys_unless_empty();
        if after != Some(before) {
            let owner = queue.owner.clone();
            self.settle(user.hash, &owner, before, after);
        }
        checked.map(|()| report)
    }

    /// Removes the messages with these `seq`s from the user's queue; returns how many.
    pub(crate) fn remove_all(&mut self, user: Hashed<'_>, seqs: &[u64]) -> u64 {
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        seqs.dedup();
        self.change_queue(
            user.hash,
            |queue| queue.owner.is(user.user),
            |queue| queue.remove_seqs(&seqs),
        )
    }

    /// Takes the user's whole queue out of the shard.
    pub(crate) fn take_queue(&mut self, user: Hashed<'_>) -> Option<Vec<StoredMessage>> {
        let found = self
            .queues
            .find_entry(user.hash, |queue| queue.owner.is(user.user));
        let (queue, _) = found.ok()?.remove();
        self.unindex(&queue.owner, queue.keys());
        Some(queue.messages)
    }

    /// Owners of queues after `after` (or from the start of `domain`), as `(server, user)`
    /// in that order, at most `limit`.
    pub(crate) fn users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Vec<(Arc<str>, Arc<str>)> {
        let first = match (domain, after) {
            (Some(domain), Some(after)) if after.server() > domain.as_str() => return Vec::new(),
            (Some(domain), _) => Bound::Included(domain.as_str()),
            (None, Some(after)) => Bound::Included(after.server()),
            (None, None) => Bound::Unbounded,
        };
        let last = domain.map_or(Bound::Unbounded, |d| Bound::Included(d.as_str()));
        let mut owners = Vec::new();
        for (server, index) in self.domains.range::<str, _>((first, last)) {
            let start = match after {
                Some(after) if after.server() == &**server => Bound::Excluded(after.user()),
                _ => Bound::Unbounded,
            };
            let room = limit - owners.len();
            owners.extend(
                index
                    .owners
                    .range::<str, _>((start, Bound::Unbounded))
                    .take(room)
                    .map(|user| (Arc::clone(server), Arc::clone(&user.name))),
            );
            if owners.len() >= limit {
                break;
            }
        }
        owners
    }

    /// Removes the domain's messages expired at `now`; returns how many.
    pub(crate) fn remove_expired(&mut self, domain: &Domain, now: i64) -> u64 {
        let owners = self.indexed(domain, TimeIndex::Expire, |expire| expire <= now);
        owners
            .iter()
            .map(|owner| self.change_owned(owner, |queue| queue.remove_expired(now)))
            .sum()
    }

    /// Removes the domain's messages stamped before `cutoff`; returns how many.
    pub(crate) fn remove_older(&mut self, domain: &Domain, cutoff: i64) -> u64 {
        let owners = self.indexed(domain, TimeIndex::Timestamp, |oldest| oldest < cutoff);
        owners
            .iter()
            .map(|owner| {
                self.change_owned(owner, |queue| {
                    let all = 0..queue.messages.len();
                    queue.remove_where(all, |m| m.message.timestamp < cutoff)
                })
            })
            .sum()
    }

    /// Removes every queue of `domain`; returns how many messages they held.
    pub(crate) fn remove_domain(&mut self, domain: &Domain) -> u64 {
        let Some(index) = self.domains.remove(domain.as_str()) else {
            return 0;
        };
        let mut removed = 0;
        for user in index.owners {
            let owner = Owner {
                server: Arc::clone(&index.server),
                user,
            };
            let found = self
                .queues
                .find_entry(owner.hash(&self.hasher), |queue| queue.owner == owner);
            if let Ok(queue) = found {
                removed += queue.remove().0.messages.len() as u64;
            }
        }
        removed
    }

    /// Entries of the per-domain time indexes, and domains indexed: zero when the shard holds
    /// nothing.
    #[cfg(test)]
    pub(crate) fn index_size(&self) -> (usize, usize) {
        let entries = self
            .domains
            .values()
            .map(|index| index.by_expire.len() + index.by_timestamp.len())
            .sum();
        (entries, self.domains.len())
    }

    /// The owners of the domain's queues whose time in `which` index passes `selected`, which
    /// holds for a prefix of the index.
    fn indexed(
        &self,
        domain: &Domain,
        which: TimeIndex,
        selected: impl Fn(i64) -> bool,
    ) -> Vec<Owner> {
        let Some(index) = self.domains.get(domain.as_str()) else {
            return Vec::new();
        };
        let entries = match which {
            TimeIndex::Expire => &index.by_expire,
            TimeIndex::Timestamp => &index.by_timestamp,
        };
        entries
            .iter()
            .take_while(|(time, _)| selected(*time))
            .map(|(_, user)| Owner {
                server: Arc::clone(&index.server),
                user: user.clone(),
            })
            .collect()
    }

    /// [`change_queue`](Self::change_queue) for an owner found in an index.
    fn change_owned(&mut self, owner: &Owner, change: impl FnOnce(&mut Queue) -> u64) -> u64 {
        let hash = owner.hash(&self.hasher);
        self.change_queue(hash, |queue| queue.owner == *owner, change)
    }

    /// Applies a removal to the queue that `is_it` picks among those whose owner's hash is
    /// `hash`, then moves the queue in its domain's indexes and drops it if it emptied;
    /// returns what `change` returned.
    fn change_queue(
        &mut self,
        hash: u64,
        is_it: impl Fn(&Queue) -> bool,
        change: impl FnOnce(&mut Queue) -> u64,
    ) -> u64 {
        let Some(queue) = self.queues.find_mut(hash, is_it) else {
            return 0;
        };
        let before = queue.keys();
        let removed = change(queue);
        let after = queue.keys_unless_empty();
        if after != Some(before) {
            let owner = queue.owner.clone();
            self.settle(hash, &owner, before, after);
        }
        removed
    }

    /// After a change to the owner's queue (whose hash is `hash`), which sat in the indexes
    /// under `before`: drops the queue if it emptied (`after` is `None`), else moves it to
    /// `after`.
    fn settle(&mut self, hash: u64, owner: &Owner, before: IndexKeys, after: Option<IndexKeys>) {
        let Some(after) = after else {
            if let Ok(queue) = self.queues.find_entry(hash, |queue| queue.owner == *owner) {
                queue.remove();
            }
            self.unindex(owner, before);
            return;
        };
        // A queue is in its domain's index from its creation.
        let Some(index) = self.domains.get_mut(&*owner.server) else {
            return;
        };
        let user = &owner.user;
        move_entry(&mut index.by_timestamp, user, before.oldest, after.oldest);
        move_entry(
            &mut index.by_expire,
            user,
            before.earliest_expire,
            after.earliest_expire,
        );
    }

    /// Takes a removed queue out of its domain's indexes, and the domain out of the shard
    /// when it was its last.
    fn unindex(&mut self, owner: &Owner, keys: IndexKeys) {
        let Some(index) = self.domains.get_mut(&*owner.server) else {
            return;
        };
        move_entry(&mut index.by_timestamp, &owner.user, keys.oldest, None);
        move_entry(
            &mut index.by_expire,
            &owner.user,
            keys.earliest_expire,
            None,
        );
        index.owners.remove(&owner.user);
        if index.owners.is_empty() {
            self.domains.remove(&*owner.server);
        }
    }
}

/// Which time a purge goes by.
#[derive(Clone, Copy, Debug)]
enum TimeIndex {
    /// The queue's earliest `expire`.
    Expire,
    /// The queue's oldest `timestamp`.
    Timestamp,
}
