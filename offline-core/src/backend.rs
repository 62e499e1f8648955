//! The storage contract: what every backend crate implements.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::{Domain, NewMessage, QueueStats, Quota, Result, StoredMessage, UserKey, WriteReport};

/// An offline message store.
///
/// Times (`now`, `cutoff`) are microseconds since the Unix epoch, always passed in so the
/// caller owns the clock; `now` may be any `i64` and may move backwards between calls. A
/// message is expired at `now` when its `expire <= now` ([`NewMessage::is_expired`]): expired
/// messages are never returned and never count toward a quota. The paths that say so remove
/// them ([`write_messages`](Self::write_messages) for the user written to,
/// [`pop_messages`](Self::pop_messages), the purges); the reads skip them and remove nothing.
///
/// # Sequence numbers
///
/// Every stored message gets a `seq` that belongs to its user's queue:
///
/// - unique and increasing in arrival order within one user's queue;
/// - never reused for that user: not after the queue empties, not after the whole store
///   empties, not after a restart;
/// - visible in increasing order: once a call has returned seq `s` for a user, no message of
///   that user with a smaller seq can appear later (at-least-once delivery pages by seq and
///   relies on it; writers to one user must be serialised for it).
///
/// A store may number globally, but callers must not rely on seqs being unique across users:
/// on a multi-master database cluster only a per-user counter gives an order.
///
/// The trait is object-safe: a server holds an `Arc<dyn OfflineBackend>`.
///
/// ```
/// use std::sync::Arc;
/// use offline_core::{NewMessage, OfflineBackend, Quota, UserKey};
///
/// async fn store_and_deliver(store: Arc<dyn OfflineBackend>, now: i64) -> offline_core::Result<()> {
///     let juliet: UserKey = "juliet@example.com".parse()?;
///     let message = NewMessage::new(now, "romeo@example.net/orchard", "juliet@example.com",
///         "<message type='chat'><body>Wherefore art thou?</body></message>");
///     store.write_messages(&juliet, vec![message], Quota::messages(100), now).await?;
///     for stored in store.pop_messages(&juliet, now).await? {
///         println!("deliver #{}: {}", stored.seq, stored.message.packet);
///     }
///     Ok(())
/// }
/// ```
#[async_trait]
pub trait OfflineBackend: Send + Sync + Debug + 'static {
    /// A short name used in metric names and errors: `mem`, `rocksdb`, `rdbms`, ...
    fn name(&self) -> &'static str;

    /// Stores a batch for one user, all or nothing.
    ///
    /// Every message is validated first ([`NewMessage::validate`]); any invalid one fails the
    /// batch with [`InvalidInput`](crate::OfflineError::InvalidInput). Messages already expired
    /// at `now` are skipped. The user's expired messages are removed, then, atomically with the
    /// insert, what the queue holds plus the batch is checked against `quota`
    /// ([`Quota::check`]): over it, nothing is written and the result is
    /// [`QuotaExceeded`](crate::OfflineError::QuotaExceeded). A message whose dedupe key the
    /// queue already holds (or that repeats a key earlier in the batch) is skipped and does not
    /// count toward the quota. Under any number of concurrent writers (on one node or on many
    /// nodes sharing the storage) the quota is never exceeded. Stored messages get increasing
    /// `seq`s in batch order.
    async fn write_messages(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<WriteReport>;

    /// Atomically takes the user's whole queue: returns the messages unexpired at `now`,
    /// sorted by `seq` whatever order the storage returns them in, and removes them all
    /// (expired ones silently). A message written concurrently is either returned by this pop
    /// or still stored afterwards, never lost and never returned twice.
    async fn pop_messages(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>>;

    /// Reads without removing anything: the messages unexpired at `now` with `seq > after`, in
    /// `seq` order, at most `limit` of them. Expired messages are skipped, not removed.
    async fn fetch_messages(
        &self,
        user: &UserKey,
        after: Option<u64>,
        limit: Option<usize>,
        now: i64,
    ) -> Result<Vec<StoredMessage>>;

    /// Removes the user's messages with these `seq`s (unknown ones, or other users', are
    /// ignored) and returns how many were removed. With
    /// [`fetch_messages`](Self::fetch_messages) this gives at-least-once delivery.
    async fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64>;

    /// What the user's queue holds now, expired messages not yet removed included.
    async fn count_messages(&self, user: &UserKey) -> Result<QueueStats>;

    /// Users holding messages (expired ones included until removed), ordered by
    /// `(server, user)` byte-wise, starting after `after`, at most `limit`; only `domain`'s
    /// users when given. The cost is per page, not per store.
    async fn list_users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Result<Vec<UserKey>>;

    /// Removes every message of `domain` expired at `now`; returns how many. Costs what it
    /// removes, never touching other domains.
    async fn remove_expired_messages(&self, domain: &Domain, now: i64) -> Result<u64>;

    /// Removes every message of `domain` with `timestamp < cutoff`; returns how many. Costs
    /// what it removes, never touching other domains.
    async fn remove_old_messages(&self, domain: &Domain, cutoff: i64) -> Result<u64>;

    /// Removes the user's whole queue; returns how many messages it held.
    async fn remove_user(&self, user: &UserKey) -> Result<u64>;

    /// Removes every queue of `domain` (and nothing of `sub.domain` or `domain.other`);
    /// returns how many messages they held.
    async fn remove_domain(&self, domain: &Domain) -> Result<u64>;
}
