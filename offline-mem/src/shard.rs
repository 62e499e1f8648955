//! One shard of the in-memory store: the queues of the users hashed to it, and per-domain
//! indexes over those queues.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use offline_core::{
    Domain, NewMessage, PreparedBatch, QueueStats, Quota, Result, StoredMessage, UserKey,
    WriteReport,
};

/// The queues of some users, and indexes over them by domain.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    /// Queues by owner: one hash lookup per call. Owners are the server's own users, not
    /// keys a remote sender picks, so a fast seeded hash serves.
    queues: HashMap<Arc<UserKey>, Queue, foldhash::quality::RandomState>,
    /// Each domain holding a queue here, in name order, with its owners in order and its
    /// time indexes.
    domains: BTreeMap<String, DomainIndex>,
    /// The last seq given to a message here. A user's messages all go to one shard, so its
    /// seqs increase in arrival order; seqs are not unique across shards (nor need they be).
    last_seq: u64,
}

/// A user's messages in `seq` order, with what the write path needs at hand.
#[derive(Debug)]
pub(crate) struct Queue {
    /// The user, shared with the shard's map and indexes.
    owner: Arc<UserKey>,
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

/// A queue's owner in its domain's index, ordered by username alone: every owner in one
/// domain's index shares the server, so comparing it would only repeat work.
#[derive(Clone, Debug)]
struct Owner(Arc<UserKey>);

impl PartialEq for Owner {
    fn eq(&self, other: &Self) -> bool {
        self.0.user() == other.0.user()
    }
}

impl Eq for Owner {}

impl PartialOrd for Owner {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Owner {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.user().cmp(other.0.user())
    }
}

impl Borrow<str> for Owner {
    fn borrow(&self) -> &str {
        self.0.user()
    }
}

/// One domain's queues in this shard: their owners in order (for `list_users`), and the
/// queues by the times purges go by. Each queue is in each time index once, under its oldest
/// timestamp and its earliest expiry: a purge visits only the queues that hold something it
/// removes, and a write that changes neither time (the usual case) leaves the indexes alone.
#[derive(Debug, Default)]
struct DomainIndex {
    owners: BTreeSet<Owner>,
    by_expire: BTreeSet<(i64, Owner)>,
    by_timestamp: BTreeSet<(i64, Owner)>,
}

/// Where a queue sits in its domain's indexes; `None` where it is absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct IndexKeys {
    oldest: Option<i64>,
    earliest_expire: Option<i64>,
}

/// Moves `owner` in `index` from `before` to `after`.
fn move_entry(
    index: &mut BTreeSet<(i64, Owner)>,
    owner: &Arc<UserKey>,
    before: Option<i64>,
    after: Option<i64>,
) {
    if before == after {
        return;
    }
    if let Some(time) = before {
        index.remove(&(time, Owner(Arc::clone(owner))));
    }
    if let Some(time) = after {
        index.insert((time, Owner(Arc::clone(owner))));
    }
}

impl Queue {
    fn new(owner: Arc<UserKey>) -> Self {
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
    pub(crate) fn queue(&self, user: &UserKey) -> Option<&Queue> {
        self.queues.get(user)
    }

    /// `write_messages` on the user's queue: its expired messages removed, the batch's
    /// messages whose dedupe key it holds skipped, the quota checked, then the rest appended
    /// with the shard's next seqs.
    pub(crate) fn write(
        &mut self,
        user: &UserKey,
        mut batch: PreparedBatch,
        quota: &Quota,
        now: i64,
    ) -> Result<WriteReport> {
        let queue = match self.queues.get_mut(user) {
            Some(queue) => queue,
            None => {
                let owner = Arc::new(user.clone());
                let domain = match self.domains.get_mut(user.server()) {
                    Some(domain) => domain,
                    None => self.domains.entry(user.server().to_owned()).or_default(),
                };
                domain.owners.insert(Owner(Arc::clone(&owner)));
                let queue = Queue::new(Arc::clone(&owner));
                self.queues.entry(owner).or_insert(queue)
            }
        };
        let before = queue.keys();
        if !queue.expiring.is_empty() {
            queue.remove_expired(now);
        }
        batch.skip_held_duplicates(|key| queue.holds_key(key));
        let checked = batch.check_quota(user, quota, queue.stats());
        let (messages, report) = batch.into_parts();
        if checked.is_ok() && !messages.is_empty() {
            for message in messages {
                self.last_seq += 1;
                queue.insert(self.last_seq, message);
            }
        }
        let after = queue.keys_unless_empty();
        if after != Some(before) {
            let owner = Arc::clone(&queue.owner);
            self.settle(&owner, before, after);
        }
        checked.map(|()| report)
    }

    /// Removes the user's messages expired at `now`; returns how many.
    pub(crate) fn remove_expired_of(&mut self, user: &UserKey, now: i64) -> u64 {
        self.change_queue(user, |queue| queue.remove_expired(now))
    }

    /// Removes the messages with these `seq`s from the user's queue; returns how many.
    pub(crate) fn remove_all(&mut self, user: &UserKey, seqs: &[u64]) -> u64 {
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        seqs.dedup();
        self.change_queue(user, |queue| queue.remove_seqs(&seqs))
    }

    /// Takes the user's whole queue out of the shard.
    pub(crate) fn take_queue(&mut self, user: &UserKey) -> Option<Vec<StoredMessage>> {
        let (owner, queue) = self.queues.remove_entry(user)?;
        self.unindex(&owner, queue.keys());
        Some(queue.messages)
    }

    /// Owners of queues after `after` (or from the start of `domain`), in `(server, user)`
    /// order, at most `limit`.
    pub(crate) fn users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Vec<Arc<UserKey>> {
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
                Some(after) if after.server() == server => Bound::Excluded(after.user()),
                _ => Bound::Unbounded,
            };
            let room = limit - owners.len();
            owners.extend(
                index
                    .owners
                    .range::<str, _>((start, Bound::Unbounded))
                    .take(room)
                    .map(|owner| Arc::clone(&owner.0)),
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
            .map(|owner| self.remove_expired_of(owner, now))
            .sum()
    }

    /// Removes the domain's messages stamped before `cutoff`; returns how many.
    pub(crate) fn remove_older(&mut self, domain: &Domain, cutoff: i64) -> u64 {
        let owners = self.indexed(domain, TimeIndex::Timestamp, |oldest| oldest < cutoff);
        owners
            .iter()
            .map(|owner| {
                self.change_queue(owner, |queue| {
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
        index
            .owners
            .iter()
            .filter_map(|owner| self.queues.remove(&*owner.0))
            .map(|queue| queue.messages.len() as u64)
            .sum()
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
    ) -> Vec<Arc<UserKey>> {
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
            .map(|(_, owner)| Arc::clone(&owner.0))
            .collect()
    }

    /// Applies a removal to the user's queue, then moves the queue in its domain's indexes
    /// and drops it if it emptied; returns what `change` returned.
    fn change_queue(&mut self, user: &UserKey, change: impl FnOnce(&mut Queue) -> u64) -> u64 {
        let Some(queue) = self.queues.get_mut(user) else {
            return 0;
        };
        let before = queue.keys();
        let removed = change(queue);
        let after = queue.keys_unless_empty();
        if after != Some(before) {
            let owner = Arc::clone(&queue.owner);
            self.settle(&owner, before, after);
        }
        removed
    }

    /// After a change to the owner's queue, which sat in the indexes under `before`: drops
    /// the queue if it emptied (`after` is `None`), else moves it to `after`.
    fn settle(&mut self, owner: &Arc<UserKey>, before: IndexKeys, after: Option<IndexKeys>) {
        let Some(after) = after else {
            self.queues.remove(&**owner);
            self.unindex(owner, before);
            return;
        };
        // A queue is in its domain's index from its creation.
        let Some(index) = self.domains.get_mut(owner.server()) else {
            return;
        };
        move_entry(&mut index.by_timestamp, owner, before.oldest, after.oldest);
        move_entry(
            &mut index.by_expire,
            owner,
            before.earliest_expire,
            after.earliest_expire,
        );
    }

    /// Takes a removed queue out of its domain's indexes, and the domain out of the shard
    /// when it was its last.
    fn unindex(&mut self, owner: &Arc<UserKey>, keys: IndexKeys) {
        let Some(index) = self.domains.get_mut(owner.server()) else {
            return;
        };
        move_entry(&mut index.by_timestamp, owner, keys.oldest, None);
        move_entry(&mut index.by_expire, owner, keys.earliest_expire, None);
        index.owners.remove(owner.user());
        if index.owners.is_empty() {
            self.domains.remove(owner.server());
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
