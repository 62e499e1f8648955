//! The one interface every benchmarked store and baseline is driven through.

use std::sync::Arc;

use async_trait::async_trait;
use offline_core::{Domain, NewMessage, OfflineBackend, OfflineError, Quota, UserKey};

use crate::Result;

/// What a benchmark asks of a store: the contract's hot paths, each reduced to what the
/// harness checks (how many messages moved).
#[async_trait]
pub trait Subject: Send + Sync {
    /// A short name for tables and plots (`rocksdb`, `raw rocksdb`, ...).
    fn label(&self) -> String;

    /// Whether [`write`](Self::write) checks the quota (raw RocksDB puts do not).
    fn checks_quota(&self) -> bool {
        true
    }

    /// Writes `messages` to `user` unless that takes the queue over `quota` (where it checks
    /// quotas); returns how many were stored (0 when the quota refused them).
    async fn write(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<u64>;

    /// Takes the user's whole queue; returns how many unexpired messages came back.
    async fn pop(&self, user: &UserKey, now: i64) -> Result<usize>;

    /// How many messages the user holds.
    async fn count(&self, user: &UserKey) -> Result<u64>;

    /// Reads the first `limit` unexpired messages of the user's queue without removing them;
    /// returns how many.
    async fn fetch_page(&self, user: &UserKey, limit: usize, now: i64) -> Result<usize>;

    /// Removes the domain's messages expired at `now`; returns how many.
    async fn remove_expired(&self, domain: &Domain, now: i64) -> Result<u64>;

    /// Removes everything the domain holds (between benchmark samples, untimed).
    async fn clear(&self, domain: &Domain) -> Result<()>;

    /// Removes what the subject created for the benchmark (the SQL baseline's table).
    async fn tear_down(&self) -> Result<()> {
        Ok(())
    }
}

/// One of our backends, through its [`OfflineBackend`] implementation.
#[derive(Clone, Debug)]
pub struct Ours(pub Arc<dyn OfflineBackend>);

impl Ours {
    /// Wraps `store`.
    pub fn new(store: impl OfflineBackend) -> Self {
        Self(Arc::new(store))
    }
}

#[async_trait]
impl Subject for Ours {
    fn label(&self) -> String {
        self.0.name().to_owned()
    }

    async fn write(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<u64> {
        match self.0.write_messages(user, messages, quota, now).await {
            Ok(report) => Ok(report.stored),
            Err(OfflineError::QuotaExceeded { .. }) => Ok(0),
            Err(other) => Err(other.into()),
        }
    }

    async fn pop(&self, user: &UserKey, now: i64) -> Result<usize> {
        Ok(self.0.pop_messages(user, now).await?.len())
    }

    async fn count(&self, user: &UserKey) -> Result<u64> {
        Ok(self.0.count_messages(user).await?.messages)
    }

    async fn fetch_page(&self, user: &UserKey, limit: usize, now: i64) -> Result<usize> {
        Ok(self
            .0
            .fetch_messages(user, None, Some(limit), now)
            .await?
            .len())
    }

    async fn remove_expired(&self, domain: &Domain, now: i64) -> Result<u64> {
        Ok(self.0.remove_expired_messages(domain, now).await?)
    }

    async fn clear(&self, domain: &Domain) -> Result<()> {
        self.0.remove_domain(domain).await?;
        Ok(())
    }
}
