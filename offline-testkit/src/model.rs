//! The reference model: the storage contract written as plainly as possible.
//!
//! It favours obviousness over speed (vectors, linear scans) so that it can be trusted as the
//! oracle of the property test, and it spells out the contract's rules itself (limits, expiry,
//! quota) instead of calling `offline-core`'s, so that a bug in those rules cannot pass on
//! both sides. [`ModelBackend`] wraps it as a backend, so the conformance suite checks the
//! model too.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use offline_core::{
    Domain, NewMessage, OfflineBackend, OfflineError, QueueStats, Quota, Result, StoredMessage,
    UserKey, WriteReport,
};
use parking_lot::Mutex;

/// The limits the contract documents, in bytes: a packet, a `from` or `to`, a dedupe key,
/// permanent fields.
const PACKET_LIMIT: usize = 1024 * 1024;
const ADDRESS_LIMIT: usize = 3071;
const DEDUPE_KEY_LIMIT: usize = 1023;
const PERMANENT_FIELDS_LIMIT: usize = 64 * 1024;

/// Every queue, in plain vectors.
#[derive(Clone, Debug, Default)]
pub struct Model {
    last_seq: u64,
    queues: BTreeMap<UserKey, Vec<StoredMessage>>,
}

/// A message is expired once its expiry time is reached.
fn expired(message: &NewMessage, now: i64) -> bool {
    matches!(message.expire, Some(expire) if expire <= now)
}

/// The number and total packet bytes of some messages.
fn totals<'a>(messages: impl IntoIterator<Item = &'a NewMessage>) -> QueueStats {
    let mut stats = QueueStats::default();
    for message in messages {
        stats.messages += 1;
        stats.bytes += message.packet.len() as u64;
    }
    stats
}

/// Whether a message breaks a limit: a negative time, an empty or oversized text, a NUL.
fn invalid(message: &NewMessage) -> bool {
    let bad_text =
        |text: &str, limit: usize| text.is_empty() || text.len() > limit || text.contains('\0');
    message.timestamp < 0
        || message.expire.is_some_and(|expire| expire < 0)
        || bad_text(&message.from, ADDRESS_LIMIT)
        || bad_text(&message.to, ADDRESS_LIMIT)
        || bad_text(&message.packet, PACKET_LIMIT)
        || message
            .dedupe_key
            .as_deref()
            .is_some_and(|key| bad_text(key, DEDUPE_KEY_LIMIT))
        || message
            .permanent_fields
            .as_ref()
            .is_some_and(|fields| fields.len() > PERMANENT_FIELDS_LIMIT)
}

/// Whether `held` plus `incoming` goes over a limit of `quota`.
fn over(quota: Quota, held: QueueStats, incoming: QueueStats) -> bool {
    let beyond = |limit: Option<u64>, held: u64, added: u64| {
        limit.is_some_and(|limit| u128::from(held) + u128::from(added) > u128::from(limit))
    };
    incoming.messages > 0
        && (beyond(quota.max_messages, held.messages, incoming.messages)
            || beyond(quota.max_bytes, held.bytes, incoming.bytes))
}

impl Model {
    /// `write_messages`: validate all, drop the user's expired, skip expired and duplicate
    /// messages, check the quota, append.
    pub fn write(
        &mut self,
        user: &UserKey,
        batch: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<WriteReport> {
        if batch.iter().any(invalid) {
            return Err(OfflineError::invalid_input("a message breaks a limit"));
        }
        self.remove_where(|key, s| key == user && expired(&s.message, now));
        let held = self.queues.get(user).cloned().unwrap_or_default();
        let mut report = WriteReport::default();
        let mut accepted: Vec<NewMessage> = Vec::new();
        for message in batch {
            let repeats_key = |other: &NewMessage| {
                message.dedupe_key.is_some() && other.dedupe_key == message.dedupe_key
            };
            if expired(&message, now) {
                report.expired += 1;
            } else if held.iter().any(|s| repeats_key(&s.message))
                || accepted.iter().any(repeats_key)
            {
                report.duplicates += 1;
            } else {
                accepted.push(message);
            }
        }
        let (stored, incoming) = (totals(held.iter().map(|s| &s.message)), totals(&accepted));
        if over(quota, stored, incoming) {
            return Err(OfflineError::QuotaExceeded {
                user: user.clone(),
                quota,
                stored,
                incoming,
            });
        }
        report.stored = accepted.len() as u64;
        for message in accepted {
            self.last_seq += 1;
            let seq = self.last_seq;
            self.queues
                .entry(user.clone())
                .or_default()
                .push(StoredMessage { seq, message });
        }
        Ok(report)
    }

    /// `pop_messages`: the unexpired messages; the queue is gone.
    pub fn pop(&mut self, user: &UserKey, now: i64) -> Vec<StoredMessage> {
        let queue = self.queues.remove(user).unwrap_or_default();
        queue
            .into_iter()
            .filter(|s| !expired(&s.message, now))
            .collect()
    }

    /// `fetch_messages`.
    pub fn fetch(
        &self,
        user: &UserKey,
        after: Option<u64>,
        limit: Option<usize>,
        now: i64,
    ) -> Vec<StoredMessage> {
        let queue = self.queues.get(user).cloned().unwrap_or_default();
        queue
            .into_iter()
            .filter(|s| after.is_none_or(|after| s.seq > after))
            .filter(|s| !expired(&s.message, now))
            .take(limit.unwrap_or(usize::MAX))
            .collect()
    }

    /// `remove_messages`.
    pub fn remove(&mut self, user: &UserKey, seqs: &[u64]) -> u64 {
        self.remove_where(|key, s| key == user && seqs.contains(&s.seq))
    }

    /// `count_messages`: everything held, expired included.
    pub fn count(&self, user: &UserKey) -> QueueStats {
        let queue = self.queues.get(user).cloned().unwrap_or_default();
        totals(queue.iter().map(|s| &s.message))
    }

    /// `list_users`.
    pub fn list_users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Vec<UserKey> {
        self.queues
            .keys()
            .filter(|key| domain.is_none_or(|d| key.server() == d.as_str()))
            .filter(|key| after.is_none_or(|after| *key > after))
            .take(limit)
            .cloned()
            .collect()
    }

    /// `remove_expired_messages`.
    pub fn remove_expired(&mut self, domain: &Domain, now: i64) -> u64 {
        self.remove_where(|key, s| key.server() == domain.as_str() && expired(&s.message, now))
    }

    /// `remove_old_messages`.
    pub fn remove_old(&mut self, domain: &Domain, cutoff: i64) -> u64 {
        self.remove_where(|key, s| key.server() == domain.as_str() && s.message.timestamp < cutoff)
    }

    /// `remove_user`.
    pub fn remove_user(&mut self, user: &UserKey) -> u64 {
        self.remove_where(|key, _| key == user)
    }

    /// `remove_domain`.
    pub fn remove_domain(&mut self, domain: &Domain) -> u64 {
        self.remove_where(|key, _| key.server() == domain.as_str())
    }

    fn remove_where(&mut self, doomed: impl Fn(&UserKey, &StoredMessage) -> bool) -> u64 {
        let mut removed = 0;
        for (key, queue) in &mut self.queues {
            let before = queue.len();
            queue.retain(|s| !doomed(key, s));
            removed += (before - queue.len()) as u64;
        }
        self.queues.retain(|_, queue| !queue.is_empty());
        removed
    }
}

/// The [`Model`] as a backend, named `model`. Instances made with
/// [`on_same_storage`](Self::on_same_storage) share one model, as a reopened store or a second
/// node shares the data of the first.
#[derive(Debug, Default)]
pub struct ModelBackend(Arc<Mutex<Model>>);

impl ModelBackend {
    /// Another instance on this one's data.
    pub fn on_same_storage(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

#[async_trait]
impl OfflineBackend for ModelBackend {
    fn name(&self) -> &'static str {
        "model"
    }

    async fn write_messages(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<WriteReport> {
        self.0.lock().write(user, messages, quota, now)
    }

    async fn pop_messages(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>> {
        Ok(self.0.lock().pop(user, now))
    }

    async fn fetch_messages(
        &self,
        user: &UserKey,
        after: Option<u64>,
        limit: Option<usize>,
        now: i64,
    ) -> Result<Vec<StoredMessage>> {
        Ok(self.0.lock().fetch(user, after, limit, now))
    }

    async fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        Ok(self.0.lock().remove(user, seqs))
    }

    async fn count_messages(&self, user: &UserKey) -> Result<QueueStats> {
        Ok(self.0.lock().count(user))
    }

    async fn list_users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Result<Vec<UserKey>> {
        Ok(self.0.lock().list_users(domain, after, limit))
    }

    async fn remove_expired_messages(&self, domain: &Domain, now: i64) -> Result<u64> {
        Ok(self.0.lock().remove_expired(domain, now))
    }

    async fn remove_old_messages(&self, domain: &Domain, cutoff: i64) -> Result<u64> {
        Ok(self.0.lock().remove_old(domain, cutoff))
    }

    async fn remove_user(&self, user: &UserKey) -> Result<u64> {
        Ok(self.0.lock().remove_user(user))
    }

    async fn remove_domain(&self, domain: &Domain) -> Result<u64> {
        Ok(self.0.lock().remove_domain(domain))
    }
}
