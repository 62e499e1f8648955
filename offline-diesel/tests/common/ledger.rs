//! What a workload of keyed writes and pops saw, and the check that nothing acknowledged was
//! lost, nothing was delivered twice and nothing appeared unwritten, for the fault tests.

#![allow(dead_code, unreachable_pub, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use offline_core::{
    NewMessage, OfflineBackend, OfflineError, Quota, Result, StoredMessage, UserKey, WriteReport,
};
use parking_lot::Mutex;

/// The outcomes of every call, per user, in the order the calls ended.
#[derive(Default)]
pub struct Ledger {
    /// Counts the calls that ended, to order them.
    clock: u64,
    /// Keys whose write was acknowledged, with when the write began.
    acknowledged: BTreeMap<UserKey, BTreeMap<String, u64>>,
    /// Keys whose write failed: maybe stored, maybe not.
    unknown: BTreeMap<UserKey, BTreeSet<String>>,
    /// Keys delivered by acknowledged pops, in delivery order.
    delivered: BTreeMap<UserKey, Vec<String>>,
    /// When pops that failed ended: such a pop may have taken the message of any write that
    /// began before it ended (its commit may have landed with the reply lost, and a write
    /// committed before it may be acknowledged only after it failed), and nothing later.
    uncertain_pops: BTreeMap<UserKey, Vec<u64>>,
    /// Calls that failed with `Unavailable`.
    pub unavailable: usize,
    /// Failures other than `Unavailable` and `QuotaExceeded`.
    pub unexpected: Vec<String>,
}

impl Ledger {
    /// Marks the start of a call: what [`Ledger::write`] takes as `began`.
    pub fn begin(&mut self) -> u64 {
        self.tick()
    }

    /// Records a write of one message carrying `key`, which began at `began`.
    pub fn write(
        &mut self,
        user: &UserKey,
        key: String,
        began: u64,
        outcome: &Result<WriteReport>,
    ) {
        self.tick();
        match outcome {
            Ok(report) if report.stored == 1 => {
                self.acknowledged
                    .entry(user.clone())
                    .or_default()
                    .insert(key, began);
            }
            Ok(report) => self
                .unexpected
                .push(format!("a new key was not stored: {report:?}")),
            Err(OfflineError::QuotaExceeded { .. }) => {}
            Err(error) => {
                self.unknown.entry(user.clone()).or_default().insert(key);
                self.failure(error);
            }
        }
    }

    /// Records a pop.
    pub fn pop(&mut self, user: &UserKey, outcome: &Result<Vec<StoredMessage>>) {
        let now = self.tick();
        match outcome {
            Ok(popped) => self
                .delivered
                .entry(user.clone())
                .or_default()
                .extend(popped.iter().filter_map(|m| m.message.dedupe_key.clone())),
            Err(error) => {
                self.uncertain_pops
                    .entry(user.clone())
                    .or_default()
                    .push(now);
                self.failure(error);
            }
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn failure(&mut self, error: &OfflineError) {
        match error {
            OfflineError::Unavailable { .. } => self.unavailable += 1,
            other => self
                .unexpected
                .push(format!("{other}: {:?}", std::error::Error::source(other))),
        }
    }

    /// Checks `user`'s messages still `held` against what the calls saw: each key delivered
    /// or held at most once, every acknowledged key there (unless a pop of unknown outcome
    /// ended after its write began), and no key that nobody wrote.
    pub fn check(&self, user: &UserKey, held: &[StoredMessage]) {
        let mut seen = BTreeSet::new();
        let delivered = self.delivered.get(user).into_iter().flatten();
        let remaining = held.iter().filter_map(|m| m.message.dedupe_key.as_ref());
        for key in delivered.chain(remaining) {
            assert!(
                seen.insert(key.clone()),
                "{user}: {key} was delivered or held twice"
            );
        }
        let uncertain = self.uncertain_pops.get(user).map_or(&[][..], Vec::as_slice);
        let acknowledged = self.acknowledged.get(user);
        for (key, began) in acknowledged.into_iter().flatten() {
            let maybe_popped = uncertain.iter().any(|&ended| ended > *began);
            assert!(
                seen.contains(key) || maybe_popped,
                "{user}: acknowledged {key} was lost"
            );
        }
        let unknown = self.unknown.get(user);
        for key in &seen {
            assert!(
                acknowledged.is_some_and(|k| k.contains_key(key))
                    || unknown.is_some_and(|k| k.contains(key)),
                "{user}: {key} appeared without being written"
            );
        }
    }

    /// Fails if any call failed otherwise than with `Unavailable` or `QuotaExceeded`.
    pub fn assert_no_unexpected(&self) {
        assert!(
            self.unexpected.is_empty(),
            "{} unexpected outcomes, the first: {:?}",
            self.unexpected.len(),
            self.unexpected.iter().take(3).collect::<Vec<_>>()
        );
    }

    /// A line on what the workload did.
    pub fn summary(&self) -> String {
        format!(
            "{} writes acknowledged, {} of unknown outcome, {} delivered, {} pops of unknown \
             outcome, {} calls unavailable",
            self.acknowledged.values().map(BTreeMap::len).sum::<usize>(),
            self.unknown.values().map(BTreeSet::len).sum::<usize>(),
            self.delivered.values().map(Vec::len).sum::<usize>(),
            self.uncertain_pops.values().map(Vec::len).sum::<usize>(),
            self.unavailable
        )
    }
}

/// What one worker of [`workload`] does.
pub struct Plan {
    /// Names its keys apart from other workers'.
    pub worker: usize,
    /// Pops instead of writing on every this many calls; `None`: only writes.
    pub pop_every: Option<u64>,
    /// The quota its writes apply.
    pub quota: Quota,
    /// A pause between calls.
    pub pause: Duration,
}

/// Writes keyed messages to random users of `users` (and pops, as `plan` says) on `store`
/// until `stop`, recording every outcome in `ledger`.
pub async fn workload<S: OfflineBackend>(
    store: Arc<S>,
    users: Arc<Vec<UserKey>>,
    plan: Plan,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let user = &users[fastrand::usize(..users.len())];
        if plan.pop_every.is_some_and(|every| n.is_multiple_of(every)) {
            let popped = store.pop_messages(user, 1).await;
            ledger.lock().pop(user, &popped);
        } else {
            let key = format!("w{}-{n}", plan.worker);
            let message = NewMessage::new(1, "romeo@example.net/r", user.to_string(), "<m/>")
                .dedupe_key(key.clone());
            let began = ledger.lock().begin();
            let written = store
                .write_messages(user, vec![message], plan.quota, 1)
                .await;
            ledger.lock().write(user, key, began, &written);
        }
        if !plan.pause.is_zero() {
            tokio::time::sleep(plan.pause).await;
        }
    }
}
