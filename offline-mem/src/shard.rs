//! One shard of the in-memory store: the queues of the users hashed to it, and per-domain
//! indexes over their messages.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use offline_core::{Domain, NewMessage, QueueStats, StoredMessage, UserKey};

/// The queues of some users, and indexes over their messages by domain.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    /// Queues by owner; ordered so that a domain's users are one contiguous range.
    queues: BTreeMap<Arc<UserKey>, Queue>,
    /// Time indexes of the messages above, by domain.
    domains: HashMap<String, DomainIndex>,
}

/// A user's messages in `seq` order, with what the write path needs at hand.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    messages: BTreeMap<u64, NewMessage>,
    stats: QueueStats,
    /// `(expire, seq)` of the messages that expire.
    expiring: BTreeSet<(i64, u64)>,
    /// Dedupe keys of the messages held.
    dedupe_keys: HashSet<String>,
}

/// Messages of one domain by time, so purges cost what they remove.
#[derive(Debug, Default)]
struct DomainIndex {
    by_expire: BTreeMap<(i64, u64), Arc<UserKey>>,
    by_timestamp: BTreeMap<(i64, u64), Arc<UserKey>>,
}

impl DomainIndex {
    fn insert(&mut self, owner: &Arc<UserKey>, seq: u64, message: &NewMessage) {
        self.by_timestamp
            .insert((message.timestamp, seq), Arc::clone(owner));
        if let Some(expire) = message.expire {
            self.by_expire.insert((expire, seq), Arc::clone(owner));
        }
    }

    fn remove(&mut self, seq: u64, message: &NewMessage) {
        self.by_timestamp.remove(&(message.timestamp, seq));
        if let Some(expire) = message.expire {
            self.by_expire.remove(&(expire, seq));
        }
    }

    fn is_empty(&self) -> bool {
        self.by_timestamp.is_empty()
    }
}

impl Queue {
    pub(crate) fn stats(&self) -> QueueStats {
        self.stats
    }

    pub(crate) fn holds_key(&self, key: &str) -> bool {
        self.dedupe_keys.contains(key)
    }

    /// Unexpired messages with `seq > after`, in order, at most `limit`.
    pub(crate) fn fetch(&self, after: Option<u64>, limit: usize, now: i64) -> Vec<StoredMessage> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.messages
            .range((start, Bound::Unbounded))
            .filter(|(_, message)| !message.is_expired(now))
            .take(limit)
            .map(|(&seq, message)| StoredMessage {
                seq,
                message: message.clone(),
            })
            .collect()
    }

    fn insert(&mut self, seq: u64, message: NewMessage) {
        self.stats.add(&message);
        if let Some(expire) = message.expire {
            self.expiring.insert((expire, seq));
        }
        if let Some(key) = &message.dedupe_key {
            self.dedupe_keys.insert(key.clone());
        }
        self.messages.insert(seq, message);
    }

    fn remove(&mut self, seq: u64) -> Option<NewMessage> {
        let message = self.messages.remove(&seq)?;
        self.stats.remove(&message);
        if let Some(expire) = message.expire {
            self.expiring.remove(&(expire, seq));
        }
        if let Some(key) = &message.dedupe_key {
            self.dedupe_keys.remove(key);
        }
        Some(message)
    }

    fn expired_seqs(&self, now: i64) -> Vec<u64> {
        self.expiring
            .range(..=(now, u64::MAX))
            .map(|&(_, seq)| seq)
            .collect()
    }
}

impl Shard {
    pub(crate) fn queue(&self, user: &UserKey) -> Option<&Queue> {
        self.queues.get(user)
    }

    /// Appends messages with the given `seq`s to the user's queue, creating it if needed.
    pub(crate) fn append(
        &mut self,
        user: &UserKey,
        messages: impl IntoIterator<Item = (u64, NewMessage)>,
    ) {
        let owner = match self.queues.get_key_value(user) {
            Some((owner, _)) => Arc::clone(owner),
            None => Arc::new(user.clone()),
        };
        let index = self.domains.entry(user.server().to_owned()).or_default();
        let queue = self.queues.entry(Arc::clone(&owner)).or_default();
        for (seq, message) in messages {
            index.insert(&owner, seq, &message);
            queue.insert(seq, message);
        }
    }

    /// Removes one message; drops the queue when it empties.
    pub(crate) fn remove_message(&mut self, user: &UserKey, seq: u64) -> bool {
        let Some(queue) = self.queues.get_mut(user) else {
            return false;
        };
        let Some(message) = queue.remove(seq) else {
            return false;
        };
        let queue_empty = queue.messages.is_empty();
        self.unindex(user.server(), [(seq, &message)]);
        if queue_empty {
            self.queues.remove(user);
        }
        true
    }

    /// Removes the user's messages expired at `now`; returns how many.
    pub(crate) fn remove_expired_of(&mut self, user: &UserKey, now: i64) -> u64 {
        let expired = self
            .queues
            .get(user)
            .map(|queue| queue.expired_seqs(now))
            .unwrap_or_default();
        self.remove_all(user, &expired)
    }

    /// Removes the messages with these `seq`s from the user's queue; returns how many.
    pub(crate) fn remove_all(&mut self, user: &UserKey, seqs: &[u64]) -> u64 {
        let mut removed = 0;
        for &seq in seqs {
            removed += u64::from(self.remove_message(user, seq));
        }
        removed
    }

    /// Takes the user's whole queue out of the shard.
    pub(crate) fn take_queue(&mut self, user: &UserKey) -> Option<BTreeMap<u64, NewMessage>> {
        let queue = self.queues.remove(user)?;
        self.unindex(
            user.server(),
            queue.messages.iter().map(|(&seq, m)| (seq, m)),
        );
        Some(queue.messages)
    }

    /// Owners of queues after `after` (or from the start of `domain`), in order, at most `limit`.
    pub(crate) fn users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Vec<Arc<UserKey>> {
        let domain_start = domain.map(|d| UserKey::from_normalized(d.as_str(), ""));
        let start = match (after, &domain_start) {
            (Some(after), Some(first)) if after < first => Bound::Included(first),
            (Some(after), _) => Bound::Excluded(after),
            (None, Some(first)) => Bound::Included(first),
            (None, None) => Bound::Unbounded,
        };
        self.queues
            .range::<UserKey, _>((start, Bound::Unbounded))
            .map(|(owner, _)| owner)
            .take_while(|owner| domain.is_none_or(|d| owner.is_in(d)))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Removes the domain's messages whose index key falls in `range`; returns how many.
    pub(crate) fn remove_indexed(
        &mut self,
        domain: &Domain,
        which: TimeIndex,
        upto: Bound<(i64, u64)>,
    ) -> u64 {
        let Some(index) = self.domains.get(domain.as_str()) else {
            return 0;
        };
        let entries = match which {
            TimeIndex::Expire => &index.by_expire,
            TimeIndex::Timestamp => &index.by_timestamp,
        };
        let doomed: Vec<(u64, Arc<UserKey>)> = entries
            .range((Bound::Unbounded, upto))
            .map(|(&(_, seq), owner)| (seq, Arc::clone(owner)))
            .collect();
        let mut removed = 0;
        for (seq, owner) in doomed {
            removed += u64::from(self.remove_message(&owner, seq));
        }
        removed
    }

    /// Removes every queue of `domain`; returns how many messages they held.
    pub(crate) fn remove_domain(&mut self, domain: &Domain) -> u64 {
        let owners = self.users(Some(domain), None, usize::MAX);
        let mut removed = 0;
        for owner in owners {
            if let Some(queue) = self.queues.remove(&*owner) {
                removed += queue.messages.len() as u64;
            }
        }
        self.domains.remove(domain.as_str());
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

    fn unindex<'a>(
        &mut self,
        server: &str,
        messages: impl IntoIterator<Item = (u64, &'a NewMessage)>,
    ) {
        let Some(index) = self.domains.get_mut(server) else {
            return;
        };
        for (seq, message) in messages {
            index.remove(seq, message);
        }
        if index.is_empty() {
            self.domains.remove(server);
        }
    }
}

/// Which time a purge goes by.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TimeIndex {
    /// The message's `expire`.
    Expire,
    /// The message's `timestamp`.
    Timestamp,
}
