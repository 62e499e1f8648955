//! The suite catches the mistakes persistent and shared backends make.
//!
//! `PlainMap` is the backend a contributor writes from the docs: one locked map, the shared
//! write rules of `PreparedBatch`. Without a flaw it passes the whole suite, reopen and peer
//! cases included, numbering seqs globally or per user; each flaw below is a mistake a real
//! backend can make, and the test for it runs the case that must catch it and expects that
//! case to fail.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use offline_core::{
    Domain, NewMessage, OfflineBackend, PreparedBatch, QueueStats, Quota, Result, StoredMessage,
    UserKey, WriteReport,
};
use offline_testkit::{Fixture, StoreFactory, cases, run_case};
use parking_lot::Mutex;

/// A mistake `PlainMap` can be made to have.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Flaw {
    /// None: the correct backend.
    None,
    /// Numbering restarts when the store empties (SQLite's rowid without AUTOINCREMENT).
    SeqRestartsWhenEmpty,
    /// A reopened store numbers on from the highest seq it holds, so seqs of messages already
    /// delivered come back.
    SeqFromHighestHeldOnReopen,
    /// Writes and pops are serialised by a lock of each instance, not of the storage they
    /// share: two nodes check the quota, or read a queue, at the same time.
    LockPerInstance,
    /// Users and dedupe keys compare as a case- and accent-insensitive, space-padded collation
    /// compares them (MySQL's default).
    FoldingCollation,
    /// A write takes its seqs, then inserts in a later step, without serialising writers of
    /// one user: messages become visible out of seq order (SQL sequences committed late).
    SeqsVisibleOutOfOrder,
    /// A write inserts its batch in two steps with an await between (two auto-committed
    /// statements): a write dropped in between leaves half its batch.
    BatchSplitAcrossAwait,
}

/// How seqs are numbered: both are correct.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Numbering {
    /// One counter for the store.
    Global,
    /// A counter per user, each starting at 1 (as on a multi-master cluster).
    PerUser,
}

/// What every instance on one storage shares.
#[derive(Debug, Default)]
struct Data {
    next_seq: u64,
    /// The last seq of each user, with [`Numbering::PerUser`]; never forgotten.
    user_seqs: BTreeMap<(String, String), u64>,
    /// Queues by `(server, user)` (folded, with that flaw), with the key as first written.
    queues: BTreeMap<(String, String), (UserKey, BTreeMap<u64, NewMessage>)>,
}

#[derive(Debug)]
struct PlainMap {
    data: Arc<Mutex<Data>>,
    /// The lock of this instance only (the flaw `LockPerInstance` serialises with it).
    instance: tokio::sync::Mutex<()>,
    numbering: Numbering,
    flaw: Flaw,
}

/// The time a database takes to answer one statement, between the two steps of a flawed
/// operation.
async fn round_trip() {
    tokio::time::sleep(std::time::Duration::from_micros(100)).await;
}

/// How a folding collation sees a string: lower case, accents and trailing spaces dropped.
fn fold(text: &str) -> String {
    let folded: String = text
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ä' => 'a',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ò' | 'ó' | 'ô' | 'ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ß' => 's',
            c => c,
        })
        .collect();
    folded.trim_end_matches(' ').to_owned()
}

impl PlainMap {
    fn new(numbering: Numbering, flaw: Flaw) -> Self {
        Self {
            data: Arc::default(),
            instance: tokio::sync::Mutex::new(()),
            numbering,
            flaw,
        }
    }

    fn on_same_storage(&self) -> Self {
        Self {
            data: Arc::clone(&self.data),
            instance: tokio::sync::Mutex::new(()),
            numbering: self.numbering,
            flaw: self.flaw,
        }
    }

    /// Closes and opens the store: with the flaw, numbering goes on from the highest seq held.
    fn reopened(self) -> Self {
        if self.flaw == Flaw::SeqFromHighestHeldOnReopen {
            let mut data = self.data.lock();
            let highest = data.queues.values().flat_map(|(_, q)| q.keys()).max();
            data.next_seq = highest.copied().unwrap_or(0);
            data.user_seqs.clear();
        }
        self.on_same_storage()
    }

    fn key(&self, user: &UserKey) -> (String, String) {
        match self.flaw {
            Flaw::FoldingCollation => (fold(user.server()), fold(user.user())),
            _ => (user.server().to_owned(), user.user().to_owned()),
        }
    }

    fn same_dedupe_key(&self, held: Option<&str>, key: &str) -> bool {
        match self.flaw {
            Flaw::FoldingCollation => held.is_some_and(|held| fold(held) == fold(key)),
            _ => held == Some(key),
        }
    }

    /// Removes what `doomed` picks from every queue; returns how many.
    fn remove_where(&self, doomed: impl Fn(&UserKey, &NewMessage) -> bool) -> u64 {
        let mut data = self.data.lock();
        let mut removed = 0;
        for (owner, queue) in data.queues.values_mut() {
            let before = queue.len();
            queue.retain(|_, message| !doomed(owner, message));
            removed += (before - queue.len()) as u64;
        }
        data.queues.retain(|_, (_, queue)| !queue.is_empty());
        if data.queues.is_empty() && self.flaw == Flaw::SeqRestartsWhenEmpty {
            data.next_seq = 0;
            data.user_seqs.clear();
        }
        removed
    }

    /// Steps 2-4 of a write on the data as it is: expired removed, held keys skipped, quota
    /// checked. Returns what the queue holds.
    fn prepare(
        &self,
        data: &mut Data,
        user: &UserKey,
        batch: &mut PreparedBatch,
        quota: Quota,
        now: i64,
    ) -> Result<()> {
        let key = self.key(user);
        if let Some((_, queue)) = data.queues.get_mut(&key) {
            queue.retain(|_, message| !message.is_expired(now));
            if queue.is_empty() {
                data.queues.remove(&key);
            }
        }
        let held = data.queues.get(&key).map(|(_, queue)| queue);
        batch.skip_held_duplicates(|k| {
            held.is_some_and(|queue| {
                queue
                    .values()
                    .any(|m| self.same_dedupe_key(m.dedupe_key.as_deref(), k))
            })
        });
        let stats = QueueStats::of(held.into_iter().flat_map(|queue| queue.values()));
        batch.check_quota(user, &quota, stats)
    }

    fn insert(&self, data: &mut Data, user: &UserKey, seqs: u64, messages: Vec<NewMessage>) {
        if messages.is_empty() {
            return;
        }
        let (_, queue) = data
            .queues
            .entry(self.key(user))
            .or_insert_with(|| (user.clone(), BTreeMap::new()));
        queue.extend((seqs..).zip(messages));
    }

    /// Takes `count` seqs for `user`; returns the first.
    fn take_seqs(&self, data: &mut Data, user: &UserKey, count: usize) -> u64 {
        let last = match self.numbering {
            Numbering::Global => &mut data.next_seq,
            Numbering::PerUser => data.user_seqs.entry(self.key(user)).or_default(),
        };
        let first = *last + 1;
        *last += count as u64;
        first
    }
}

#[async_trait]
impl OfflineBackend for PlainMap {
    fn name(&self) -> &'static str {
        "plain"
    }

    async fn write_messages(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<WriteReport> {
        let mut batch = PreparedBatch::new(messages, now)?;
        match self.flaw {
            Flaw::LockPerInstance => {
                let _instance = self.instance.lock().await;
                self.prepare(&mut self.data.lock(), user, &mut batch, quota, now)?;
                round_trip().await;
                let mut data = self.data.lock();
                let (messages, report) = batch.into_parts();
                let first = self.take_seqs(&mut data, user, messages.len());
                self.insert(&mut data, user, first, messages);
                Ok(report)
            }
            Flaw::SeqsVisibleOutOfOrder => {
                let first = {
                    let mut data = self.data.lock();
                    self.prepare(&mut data, user, &mut batch, quota, now)?;
                    self.take_seqs(&mut data, user, batch.messages().len())
                };
                round_trip().await;
                let (messages, report) = batch.into_parts();
                self.insert(&mut self.data.lock(), user, first, messages);
                Ok(report)
            }
            Flaw::BatchSplitAcrossAwait => {
                let (mut first_half, report, first) = {
                    let mut data = self.data.lock();
                    self.prepare(&mut data, user, &mut batch, quota, now)?;
                    let (messages, report) = batch.into_parts();
                    let first = self.take_seqs(&mut data, user, messages.len());
                    (messages, report, first)
                };
                let second_half = first_half.split_off(first_half.len() / 2);
                let half = first_half.len() as u64;
                self.insert(&mut self.data.lock(), user, first, first_half);
                round_trip().await;
                self.insert(&mut self.data.lock(), user, first + half, second_half);
                Ok(report)
            }
            _ => {
                let mut data = self.data.lock();
                self.prepare(&mut data, user, &mut batch, quota, now)?;
                let (messages, report) = batch.into_parts();
                let first = self.take_seqs(&mut data, user, messages.len());
                self.insert(&mut data, user, first, messages);
                Ok(report)
            }
        }
    }

    async fn pop_messages(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>> {
        let key = self.key(user);
        let taken = if self.flaw == Flaw::LockPerInstance {
            // Reads the queue, then deletes what it read and returns it, as a SELECT then a
            // DELETE by id do, each instance trusting its own lock to keep others out.
            let _instance = self.instance.lock().await;
            let read = match self.data.lock().queues.get(&key) {
                Some((_, queue)) => queue.clone(),
                None => BTreeMap::new(),
            };
            round_trip().await;
            if let Some((_, queue)) = self.data.lock().queues.get_mut(&key) {
                queue.retain(|seq, _| !read.contains_key(seq));
            }
            read
        } else {
            let taken = self.data.lock().queues.remove(&key);
            taken.map(|(_, queue)| queue).unwrap_or_default()
        };
        self.remove_where(|_, _| false);
        Ok(taken
            .into_iter()
            .filter(|(_, message)| !message.is_expired(now))
            .map(|(seq, message)| StoredMessage { seq, message })
            .collect())
    }

    async fn fetch_messages(
        &self,
        user: &UserKey,
        after: Option<u64>,
        limit: Option<usize>,
        now: i64,
    ) -> Result<Vec<StoredMessage>> {
        let data = self.data.lock();
        let Some((_, queue)) = data.queues.get(&self.key(user)) else {
            return Ok(Vec::new());
        };
        Ok(queue
            .range(after.map_or(0, |after| after.saturating_add(1))..)
            .filter(|(_, message)| !message.is_expired(now))
            .take(limit.unwrap_or(usize::MAX))
            .map(|(&seq, message)| StoredMessage {
                seq,
                message: message.clone(),
            })
            .collect())
    }

    async fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        let key = self.key(user);
        let removed = match self.data.lock().queues.get_mut(&key) {
            Some((_, queue)) => seqs
                .iter()
                .filter(|seq| queue.remove(seq).is_some())
                .count(),
            None => 0,
        };
        self.remove_where(|_, _| false);
        Ok(removed as u64)
    }

    async fn count_messages(&self, user: &UserKey) -> Result<QueueStats> {
        let data = self.data.lock();
        let queue = data.queues.get(&self.key(user));
        Ok(QueueStats::of(
            queue.into_iter().flat_map(|(_, q)| q.values()),
        ))
    }

    async fn list_users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Result<Vec<UserKey>> {
        let data = self.data.lock();
        Ok(data
            .queues
            .values()
            .map(|(owner, _)| owner)
            .filter(|owner| domain.is_none_or(|d| owner.is_in(d)))
            .filter(|owner| after.is_none_or(|after| *owner > after))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn remove_expired_messages(&self, domain: &Domain, now: i64) -> Result<u64> {
        Ok(self.remove_where(|owner, m| owner.is_in(domain) && m.is_expired(now)))
    }

    async fn remove_old_messages(&self, domain: &Domain, cutoff: i64) -> Result<u64> {
        Ok(self.remove_where(|owner, m| owner.is_in(domain) && m.timestamp < cutoff))
    }

    async fn remove_user(&self, user: &UserKey) -> Result<u64> {
        let key = self.key(user);
        Ok(self.remove_where(|owner, _| self.key(owner) == key))
    }

    async fn remove_domain(&self, domain: &Domain) -> Result<u64> {
        Ok(self.remove_where(|owner, _| owner.is_in(domain)))
    }
}

/// Fresh `PlainMap`s numbering globally, with a flaw; reopening or peering shares their data.
struct Plain(Flaw);

impl StoreFactory for Plain {
    type Store = PlainMap;

    async fn create(&self) -> Result<Fixture<PlainMap>> {
        Ok(Fixture::fresh(PlainMap::new(Numbering::Global, self.0)))
    }

    async fn reopen(&self, store: PlainMap) -> Result<PlainMap> {
        Ok(store.reopened())
    }

    async fn peer(&self, store: &PlainMap) -> Result<PlainMap> {
        Ok(store.on_same_storage())
    }
}

/// Fresh `PlainMap`s numbering each user from 1, without a flaw.
struct PerUser;

impl StoreFactory for PerUser {
    type Store = PlainMap;

    async fn create(&self) -> Result<Fixture<PlainMap>> {
        Ok(Fixture::fresh(PlainMap::new(
            Numbering::PerUser,
            Flaw::None,
        )))
    }

    async fn reopen(&self, store: PlainMap) -> Result<PlainMap> {
        Ok(store.reopened())
    }

    async fn peer(&self, store: &PlainMap) -> Result<PlainMap> {
        Ok(store.on_same_storage())
    }
}

offline_testkit::conformance_tests!(plain_map, Plain(Flaw::None), capabilities = [reopen, peer]);
offline_testkit::conformance_tests!(per_user_seqs, PerUser, capabilities = [reopen, peer]);
offline_testkit::model_tests!(Plain(Flaw::None), cases = 64);

#[test]
#[should_panic(expected = "reuse numbers")]
fn seq_restarting_when_the_store_empties_is_caught() {
    run_case(
        Plain(Flaw::SeqRestartsWhenEmpty),
        cases::seq_is_never_reused_after_the_queue_empties,
    );
}

#[test]
#[should_panic(expected = "reuse numbers")]
fn seq_restarting_from_the_highest_held_after_a_reopen_is_caught() {
    run_case(
        Plain(Flaw::SeqFromHighestHeldOnReopen),
        cases::seq_keeps_increasing_after_the_store_empties_and_reopens,
    );
}

#[test]
#[should_panic(expected = "up to the limit of 50")]
fn a_quota_lock_per_instance_is_caught_across_peers() {
    run_case(
        Plain(Flaw::LockPerInstance),
        cases::quota_is_atomic_across_peers,
    );
}

#[test]
#[should_panic(expected = "delivered by two pops")]
fn a_pop_lock_per_instance_is_caught_across_peers() {
    run_case(
        Plain(Flaw::LockPerInstance),
        cases::pops_racing_writers_across_peers_lose_and_duplicate_nothing,
    );
}

#[test]
#[should_panic(expected = "(stored, duplicates)")]
fn a_dedupe_lock_per_instance_is_caught_across_peers() {
    run_case(
        Plain(Flaw::LockPerInstance),
        cases::dedupe_holds_across_peers,
    );
}

#[test]
#[should_panic(expected = "look-alike")]
fn a_folding_collation_of_users_is_caught() {
    run_case(
        Plain(Flaw::FoldingCollation),
        cases::users_equal_under_a_folding_collation_are_distinct,
    );
}

#[test]
#[should_panic(expected = "look-alike")]
fn a_folding_collation_of_dedupe_keys_is_caught() {
    run_case(
        Plain(Flaw::FoldingCollation),
        cases::dedupe_keys_equal_under_a_folding_collation_are_distinct,
    );
}

#[test]
#[should_panic(expected = "skipped")]
fn seqs_visible_out_of_order_are_caught() {
    run_case(
        Plain(Flaw::SeqsVisibleOutOfOrder),
        cases::fetch_paging_racing_writers_misses_nothing,
    );
}

#[test]
#[should_panic(expected = "a dropped write left")]
fn a_batch_split_across_an_await_is_caught() {
    run_case(
        Plain(Flaw::BatchSplitAcrossAwait),
        cases::dropped_write_leaves_all_or_nothing,
    );
}
