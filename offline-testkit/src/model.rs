//! The reference model: the storage contract written as plainly as possible.
//!
//! It favours obviousness over speed (vectors, linear scans) so that it can be trusted as the
//! oracle of the property test. [`ModelBackend`] wraps it as a backend, so the conformance
//! suite checks the model too.

use std::collections::BTreeMap;

use async_trait::async_trait;
use offline_core::{
    Domain, NewMessage, OfflineBackend, QueueStats, Quota, Result, StoredMessage, UserKey,
    WriteReport,
};
use parking_lot::Mutex;

/// Every queue, in plain vectors.
#[derive(Clone, Debug, Default)]
pub struct Model {
    last_seq: u64,
    queues: BTreeMap<UserKey, Vec<StoredMessage>>,
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
        for message in &batch {
            message.validate()?;
        }
        self.remove_where(|key, s| key == user && s.message.is_expired(now));
        let held = self.queues.get(user).cloned().unwrap_or_default();
        let mut report = WriteReport::default();
        let mut accepted: Vec<NewMessage> = Vec::new();
        for message in batch {
            let repeats_key = |other: &NewMessage| {
                message.dedupe_key.is_some() && other.dedupe_key == message.dedupe_key
            };
            if message.is_expired(now) {
                report.expired += 1;
            } else if held.iter().any(|s| repeats_key(&s.message))
                || accepted.iter().any(repeats_key)
            {
                report.duplicates += 1;
            } else {
                accepted.push(message);
            }
        }
        let held_stats = QueueStats::of(held.iter().map(|s| &s.message));
        quota.check(user, held_stats, QueueStats::of(&accepted))?;
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
            .filter(|s| !s.message.is_expired(now))
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
            .filter(|s| !s.message.is_expired(now))
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
        QueueStats::of(queue.iter().map(|s| &s.message))
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
            .filter(|key| domain.is_none_or(|d| key.is_in(d)))
            .filter(|key| after.is_none_or(|after| *key > after))
            .take(limit)
            .cloned()
            .collect()
    }

    /// `remove_expired_messages`.
    pub fn remove_expired(&mut self, domain: &Domain, now: i64) -> u64 {
        self.remove_where(|key, s| key.is_in(domain) && s.message.is_expired(now))
    }

    /// `remove_old_messages`.
    pub fn remove_old(&mut self, domain: &Domain, cutoff: i64) -> u64 {
        self.remove_where(|key, s| key.is_in(domain) && s.message.timestamp < cutoff)
    }

    /// `remove_user`.
    pub fn remove_user(&mut self, user: &UserKey) -> u64 {
        self.remove_where(|key, _| key == user)
    }

    /// `remove_domain`.
    pub fn remove_domain(&mut self, domain: &Domain) -> u64 {
        self.remove_where(|key, _| key.is_in(domain))
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

/// The [`Model`] as a backend, named `model`.
#[derive(Debug, Default)]
pub struct ModelBackend(Mutex<Model>);

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
