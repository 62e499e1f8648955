//! The in-memory baseline: the map anyone would write first.

use std::collections::HashMap;

use async_trait::async_trait;
use offline_core::{Domain, NewMessage, Quota, UserKey};
use parking_lot::Mutex;

use crate::{Result, Subject};

/// One `Mutex<HashMap<UserKey, Vec<NewMessage>>>`: a quota check on the queue's length and
/// bytes, a push, and `remove` for a pop. No seqs, no dedupe, no indexes: purges scan every
/// queue.
#[derive(Debug, Default)]
pub struct NaiveMap {
    queues: Mutex<HashMap<UserKey, Vec<NewMessage>>>,
}

impl NaiveMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Subject for NaiveMap {
    fn label(&self) -> String {
        "naive map".to_owned()
    }

    async fn write(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        _now: i64,
    ) -> Result<u64> {
        let mut queues = self.queues.lock();
        let queue = match queues.get_mut(user) {
            Some(queue) => queue,
            None => queues.entry(user.clone()).or_default(),
        };
        let count = (queue.len() + messages.len()) as u64;
        let over_bytes = quota.max_bytes.is_some_and(|max| {
            queue
                .iter()
                .chain(&messages)
                .map(NewMessage::size)
                .sum::<u64>()
                > max
        });
        if quota.max_messages.is_some_and(|max| count > max) || over_bytes {
            return Ok(0);
        }
        let stored = messages.len() as u64;
        queue.extend(messages);
        Ok(stored)
    }

    async fn pop(&self, user: &UserKey, now: i64) -> Result<usize> {
        let queue = self.queues.lock().remove(user).unwrap_or_default();
        Ok(queue.into_iter().filter(|m| !m.is_expired(now)).count())
    }

    async fn count(&self, user: &UserKey) -> Result<u64> {
        Ok(self.queues.lock().get(user).map_or(0, |q| q.len() as u64))
    }

    async fn fetch_page(&self, user: &UserKey, limit: usize, now: i64) -> Result<usize> {
        let page: Vec<NewMessage> = self.queues.lock().get(user).map_or_else(Vec::new, |q| {
            q.iter()
                .filter(|m| !m.is_expired(now))
                .take(limit)
                .cloned()
                .collect()
        });
        Ok(page.len())
    }

    async fn remove_expired(&self, domain: &Domain, now: i64) -> Result<u64> {
        let mut removed = 0;
        self.queues.lock().retain(|user, queue| {
            if user.is_in(domain) {
                let before = queue.len();
                queue.retain(|m| !m.is_expired(now));
                removed += (before - queue.len()) as u64;
            }
            !queue.is_empty()
        });
        Ok(removed)
    }

    async fn clear(&self, domain: &Domain) -> Result<()> {
        self.queues.lock().retain(|user, _| !user.is_in(domain));
        Ok(())
    }
}
