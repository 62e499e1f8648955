//! Concurrency: the quota under many writers, dedupe under racing writers, pops and paged
//! reads racing writes, purges racing writes, and writes abandoned half-way.
//!
//! A race shows a bug only when the racers really run at once, so racers run on OS threads of
//! their own released together (not as tasks, which a busy scheduler runs one after another),
//! and each case runs [`ROUNDS`] rounds on fresh users. The helpers take several store
//! instances and spread the racers over them: the peer cases reuse them with two nodes.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use offline_core::{
    Domain, NewMessage, OfflineBackend, OfflineError, QueueStats, Quota, Result, StoredMessage,
    UserKey, WriteReport,
};

use super::{DAY, SECOND, T0, assert_seq_increasing, chat, chats, count, new_packets, packets};
use crate::Fixture;

/// Rounds of each race, each on fresh users.
pub(crate) const ROUNDS: usize = 8;
/// Concurrent writers in the quota and dedupe races.
const WRITERS: usize = 16;

/// Runs `racer(0)`, `racer(1)`, ... `racer(racers - 1)` at once, each on an OS thread of its
/// own, all released at the same instant; returns their outputs in order.
pub(crate) async fn on_threads<T, Fut>(racers: usize, racer: impl Fn(usize) -> Fut) -> Vec<T>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    let start = Arc::new(std::sync::Barrier::new(racers));
    let threads: Vec<_> = (0..racers)
        .map(|i| {
            let (future, runtime, start) = (racer(i), runtime.clone(), Arc::clone(&start));
            tokio::task::spawn_blocking(move || {
                start.wait();
                runtime.block_on(future)
            })
        })
        .collect();
    let mut outputs = Vec::with_capacity(racers);
    for thread in threads {
        outputs.push(
            thread
                .await
                .unwrap_or_else(|e| panic!("a racer panicked: {e}")),
        );
    }
    outputs
}

/// Runs `WRITERS` racers ([`on_threads`]), racer `w` on `stores[w % stores.len()]`, writing
/// `batches(w)` to `user` one batch at a time. Returns every write's result.
pub(crate) async fn race_writers<S: OfflineBackend>(
    stores: &[Arc<S>],
    user: &UserKey,
    quota: Quota,
    batches: impl Fn(usize) -> Vec<Vec<NewMessage>>,
) -> Vec<Result<WriteReport>> {
    let results = on_threads(WRITERS, |writer| {
        let store = Arc::clone(&stores[writer % stores.len()]);
        let (user, batches) = (user.clone(), batches(writer));
        async move {
            let mut results = Vec::new();
            for batch in batches {
                results.push(store.write_messages(&user, batch, quota, T0).await);
            }
            results
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

/// Checks that every failure is `QuotaExceeded` and returns how many writes succeeded.
fn successes(results: &[Result<WriteReport>]) -> usize {
    for result in results {
        if let Err(err) = result {
            assert!(
                matches!(err, OfflineError::QuotaExceeded { .. }),
                "a racing write may only fail with QuotaExceeded, not {err:?}"
            );
        }
    }
    results.iter().filter(|r| r.is_ok()).count()
}

/// With 16 writers of single messages, exactly the message limit is admitted.
pub(crate) async fn quota_race<S: OfflineBackend>(fx: &Fixture<S>, stores: &[Arc<S>]) {
    for round in 0..ROUNDS {
        let juliet = fx.user(&format!("juliet{round}"));
        let results = race_writers(stores, &juliet, Quota::messages(50), |w| {
            (0..8).map(|n| vec![chat(&juliet, w * 100 + n)]).collect()
        })
        .await;
        assert_eq!(
            successes(&results),
            50,
            "round {round}: racing writers must be admitted up to the limit of 50, no more"
        );
        assert_eq!(
            count(fx.store(), &juliet).await,
            50,
            "round {round}: the queue holds exactly the limit"
        );
        let popped = fx.store().pop_messages(&juliet, T0).await.unwrap();
        assert_eq!(popped.len(), 50, "round {round}: a pop returns the limit");
    }
}

/// Racing writers of one dedupe key store it once; the others report a duplicate.
pub(crate) async fn dedupe_race<S: OfflineBackend>(fx: &Fixture<S>, stores: &[Arc<S>]) {
    for round in 0..ROUNDS {
        let juliet = fx.user(&format!("juliet{round}"));
        let results = race_writers(stores, &juliet, Quota::UNLIMITED, |w| {
            vec![vec![chat(&juliet, w).dedupe_key("one-key")]]
        })
        .await;
        let reports: Vec<WriteReport> = results.into_iter().map(|r| r.unwrap()).collect();
        let stored: u64 = reports.iter().map(|r| r.stored).sum();
        let duplicates: u64 = reports.iter().map(|r| r.duplicates).sum();
        assert_eq!(
            (stored, duplicates),
            (1, WRITERS as u64 - 1),
            "round {round}: (stored, duplicates) of {WRITERS} racing writes of one key"
        );
        assert_eq!(
            count(fx.store(), &juliet).await,
            1,
            "round {round}: one message holds the key"
        );
    }
}

/// With 16 concurrent writers of single messages, exactly the message limit is admitted.
pub async fn concurrent_writers_never_exceed_the_message_quota<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    quota_race(fx, &[fx.shared_store()]).await;
}

/// With 16 concurrent writers of 30-byte batches and a 200-byte limit, exactly six batches
/// are admitted, whole.
pub async fn concurrent_batches_never_exceed_the_byte_quota<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    for round in 0..ROUNDS {
        let juliet = fx.user(&format!("juliet{round}"));
        let ten_bytes = |n: usize| NewMessage {
            packet: format!("<m>{n:03}</m>"),
            ..chat(&juliet, n)
        };
        let quota = Quota::UNLIMITED.with_max_bytes(200);
        let results = race_writers(&[fx.shared_store()], &juliet, quota, |w| {
            (0..4)
                .map(|b| (0..3).map(|m| ten_bytes(w * 12 + b * 3 + m)).collect())
                .collect()
        })
        .await;
        assert_eq!(
            successes(&results),
            6,
            "round {round}: six 30-byte batches fit 200 bytes, a seventh does not"
        );
        let stats = fx.store().count_messages(&juliet).await.unwrap();
        assert_eq!(
            (stats.messages, stats.bytes),
            (18, 180),
            "round {round}: the admitted batches are held whole"
        );
    }
}

/// Racing writers of one dedupe key store it once; the others report a duplicate.
pub async fn concurrent_writes_of_one_key_store_it_once<S: OfflineBackend>(fx: &mut Fixture<S>) {
    dedupe_race(fx, &[fx.shared_store()]).await;
}

/// Concurrent writers to different users lose nothing and mix nothing up.
pub async fn concurrent_writers_to_many_users_lose_nothing<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let users: Vec<UserKey> = (0..WRITERS).map(|w| fx.user(&format!("user{w}"))).collect();
    on_threads(WRITERS, |w| {
        let (store, user) = (fx.shared_store(), users[w].clone());
        async move {
            for n in 0..50 {
                store
                    .write_messages(&user, vec![chat(&user, n)], Quota::UNLIMITED, T0)
                    .await
                    .unwrap_or_else(|e| panic!("a racing write to {user}: {e}"));
            }
        }
    })
    .await;
    for user in &users {
        let popped = fx.store().pop_messages(user, T0).await.unwrap();
        assert_eq!(
            packets(&popped),
            new_packets(&chats(user, 0..50)),
            "{user} gets its own 50 messages, in order"
        );
    }
}

/// Writers racing the poppers of [`race_pops`].
const POP_RACE_WRITERS: usize = 4;
/// Messages each of them writes.
const PER_WRITER: usize = 60;

/// What the writers of a pop or fetch race write, writer by writer.
fn racing_messages(user: &UserKey) -> Vec<NewMessage> {
    chats(user, 0..POP_RACE_WRITERS * PER_WRITER)
}

/// Writes a writer's share of [`racing_messages`] one message at a time; the last writer to
/// finish sets `remaining` to zero.
async fn write_share<S: OfflineBackend>(
    store: Arc<S>,
    user: UserKey,
    share: Vec<NewMessage>,
    remaining: Arc<AtomicUsize>,
) {
    for message in share {
        store
            .write_messages(&user, vec![message], Quota::UNLIMITED, T0)
            .await
            .unwrap_or_else(|e| panic!("a racing write to {user}: {e}"));
    }
    remaining.fetch_sub(1, Ordering::AcqRel);
}

/// The share of [`racing_messages`] of writer `i`.
fn share(user: &UserKey, i: usize) -> Vec<NewMessage> {
    racing_messages(user)[i * PER_WRITER..(i + 1) * PER_WRITER].to_vec()
}

/// [`POP_RACE_WRITERS`] writers write [`racing_messages`] one by one while `poppers` pop in a
/// loop until the writers are done, all of them racers ([`on_threads`]), racer `i` on
/// `stores[i % stores.len()]`; a last pop follows. Returns every pop, in the order each popper
/// made them (the last pop as a popper of its own).
async fn race_pops<S: OfflineBackend>(
    stores: &[Arc<S>],
    user: &UserKey,
    poppers: usize,
) -> Vec<Vec<Vec<StoredMessage>>> {
    let remaining = Arc::new(AtomicUsize::new(POP_RACE_WRITERS));
    let mut delivered = on_threads(POP_RACE_WRITERS + poppers, |i| {
        let store = Arc::clone(&stores[i % stores.len()]);
        let (user, remaining) = (user.clone(), Arc::clone(&remaining));
        let share = (i < POP_RACE_WRITERS).then(|| share(&user, i));
        async move {
            let mut pops = Vec::new();
            match share {
                Some(share) => write_share(store, user, share, remaining).await,
                None => loop {
                    let done = remaining.load(Ordering::Acquire) == 0;
                    let pop = store
                        .pop_messages(&user, T0)
                        .await
                        .unwrap_or_else(|e| panic!("a racing pop of {user}: {e}"));
                    if !pop.is_empty() {
                        pops.push(pop);
                    }
                    if done {
                        break;
                    }
                },
            }
            pops
        }
    })
    .await;
    delivered.push(vec![stores[0].pop_messages(user, T0).await.unwrap()]);
    delivered
}

/// Two poppers racing writers: every message written is delivered by exactly one pop.
pub(crate) async fn pop_race_delivers_each_once<S: OfflineBackend>(
    fx: &Fixture<S>,
    stores: &[Arc<S>],
) {
    for round in 0..ROUNDS {
        let juliet = fx.user(&format!("juliet{round}"));
        let delivered = race_pops(stores, &juliet, 2).await;
        let mut times_delivered: HashMap<String, usize> = HashMap::new();
        for pop in delivered.iter().flatten() {
            assert_seq_increasing(pop);
            for packet in packets(pop) {
                *times_delivered.entry(packet).or_default() += 1;
            }
        }
        let written = racing_messages(&juliet);
        let lost = written
            .iter()
            .filter(|m| !times_delivered.contains_key(&m.packet))
            .count();
        assert_eq!(
            lost, 0,
            "round {round}: {lost} messages written while pops ran were lost"
        );
        let twice: Vec<_> = times_delivered.values().filter(|&&n| n > 1).collect();
        assert!(
            twice.is_empty(),
            "round {round}: {} messages were delivered by two pops",
            twice.len()
        );
    }
}

/// Pops racing writers: every message written is delivered by exactly one pop, none lost.
pub async fn pops_racing_writers_deliver_each_message_once<S: OfflineBackend>(fx: &mut Fixture<S>) {
    pop_race_delivers_each_once(fx, &[fx.shared_store()]).await;
}

/// With one popper racing writers, each writer's messages arrive in the order written.
pub async fn pops_racing_writers_keep_arrival_order<S: OfflineBackend>(fx: &mut Fixture<S>) {
    for round in 0..ROUNDS {
        let juliet = fx.user(&format!("juliet{round}"));
        let delivered = race_pops(&[fx.shared_store()], &juliet, 1).await;
        let popped: Vec<String> = delivered.concat().iter().flat_map(|p| packets(p)).collect();
        assert_each_writer_in_order(&juliet, &popped, round);
    }
}

/// Checks that `delivered` holds every racing message once, each writer's in its order.
fn assert_each_writer_in_order(user: &UserKey, delivered: &[String], round: usize) {
    let position: HashMap<String, (usize, usize)> = racing_messages(user)
        .into_iter()
        .enumerate()
        .map(|(i, m)| (m.packet, (i / PER_WRITER, i % PER_WRITER)))
        .collect();
    let mut next = [0; POP_RACE_WRITERS];
    for packet in delivered {
        let (writer, n) = position[packet];
        assert_eq!(
            n, next[writer],
            "round {round}: writer {writer}'s message {n} came when {} was due: \
             messages out of order, repeated or skipped",
            next[writer]
        );
        next[writer] += 1;
    }
    assert_eq!(
        next, [PER_WRITER; POP_RACE_WRITERS],
        "round {round}: messages written by each writer, and how many were seen: \
         messages skipped at the end"
    );
}

/// A reader paging by `seq` (fetch after the last seq seen) while writers write, writer `i` on
/// `stores[i % stores.len()]`, sees every message once, each writer's in order: seqs become
/// visible in increasing order.
pub(crate) async fn paging_race_misses_nothing<S: OfflineBackend>(
    fx: &Fixture<S>,
    stores: &[Arc<S>],
) {
    for round in 0..ROUNDS {
        let juliet = fx.user(&format!("juliet{round}"));
        let remaining = Arc::new(AtomicUsize::new(POP_RACE_WRITERS));
        let seen = on_threads(POP_RACE_WRITERS + 1, |i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            let (user, remaining) = (juliet.clone(), Arc::clone(&remaining));
            let share = (i < POP_RACE_WRITERS).then(|| share(&user, i));
            async move {
                let (mut seen, mut after) = (Vec::new(), None);
                let Some(share) = share else {
                    loop {
                        let done = remaining.load(Ordering::Acquire) == 0;
                        let page = store
                            .fetch_messages(&user, after, Some(7), T0)
                            .await
                            .unwrap_or_else(|e| panic!("a racing fetch of {user}: {e}"));
                        if let (Some(after), Some(first)) = (after, page.first()) {
                            assert!(
                                first.seq > after,
                                "a page after seq {after} began at {}",
                                first.seq
                            );
                        }
                        assert_seq_increasing(&page);
                        after = page.last().map(|s| s.seq).or(after);
                        let drained = page.is_empty();
                        seen.extend(packets(&page));
                        if done && drained {
                            return seen;
                        }
                    }
                };
                write_share(store, user, share, remaining).await;
                seen
            }
        })
        .await;
        assert_each_writer_in_order(&juliet, &seen.concat(), round);
    }
}

/// A reader paging by `seq` while writers write misses nothing and sees nothing twice.
pub async fn fetch_paging_racing_writers_misses_nothing<S: OfflineBackend>(fx: &mut Fixture<S>) {
    paging_race_misses_nothing(fx, &[fx.shared_store()]).await;
}

/// Writers to four users of a domain race purges by age and expiry and `remove_user`; after
/// each round, every queue's count agrees with what a fetch returns, the domain's list agrees
/// with the queues that hold messages, and a neighbouring domain is untouched.
pub async fn writes_racing_purges_keep_count_and_fetch_agreeing<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    let domain = fx.domain("example.com");
    let neighbour = fx.user_at("ali", &fx.domain("example.com.evil"));
    super::write(fx.store(), &neighbour, chats(&neighbour, 0..3)).await;
    for round in 0..ROUNDS {
        let users: Vec<UserKey> = (0..4).map(|u| fx.user(&format!("u{round}x{u}"))).collect();
        // Racers 0 to 3 write to one user each; racer 4 purges.
        on_threads(users.len() + 1, |racer| {
            let (store, domain) = (fx.shared_store(), domain.clone());
            let (user, victim) = (users.get(racer).cloned(), users[3].clone());
            async move {
                match user {
                    Some(user) => {
                        for n in 0..40 {
                            // Old and young, lapsing and lasting messages: every purge finds some.
                            let mut message = NewMessage {
                                timestamp: T0 - DAY * (n as i64 % 3),
                                ..chat(&user, n)
                            };
                            if (n + racer) % 2 == 0 {
                                message = message.expires_at(T0 + SECOND * (n as i64 % 4));
                            }
                            store
                                .write_messages(&user, vec![message], Quota::UNLIMITED, T0)
                                .await
                                .unwrap_or_else(|e| panic!("a write racing purges: {e}"));
                        }
                    }
                    None => {
                        for n in 0..20 {
                            store.remove_old_messages(&domain, T0 - DAY).await.unwrap();
                            let now = T0 + SECOND * (n % 4);
                            store.remove_expired_messages(&domain, now).await.unwrap();
                            if n % 5 == 0 {
                                store.remove_user(&victim).await.unwrap();
                            }
                        }
                    }
                }
            }
        })
        .await;
        check_counts_agree(fx, &domain, &users, round).await;
    }
    assert_eq!(
        count(fx.store(), &neighbour).await,
        3,
        "purges of {domain} must not touch {neighbour}"
    );
}

/// Each user's count equals the totals of everything a fetch returns, and the domain's list
/// of users (from the round's users) is those holding messages.
async fn check_counts_agree<S: OfflineBackend>(
    fx: &Fixture<S>,
    domain: &Domain,
    users: &[UserKey],
    round: usize,
) {
    let store = fx.store();
    let mut holding = Vec::new();
    for user in users {
        // At the earliest time nothing has expired: a fetch returns all that is held.
        let everything = store
            .fetch_messages(user, None, None, i64::MIN)
            .await
            .unwrap();
        let fetched = QueueStats::of(everything.iter().map(|s| &s.message));
        let counted = store.count_messages(user).await.unwrap();
        assert_eq!(
            counted, fetched,
            "round {round}: after writes raced purges, {user}'s count disagrees with its messages"
        );
        if counted.messages > 0 {
            holding.push(user.clone());
        }
    }
    let ours: HashSet<&UserKey> = users.iter().collect();
    let listed: Vec<UserKey> = super::list_pages(store, Some(domain), None, 100, |_| true)
        .await
        .into_iter()
        .filter(|u| ours.contains(u))
        .collect();
    holding.sort();
    assert_eq!(
        listed, holding,
        "round {round}: list_users disagrees with the queues holding messages"
    );
}

/// Polls `future` up to `polls` times, pausing `pause` between polls, then drops it.
async fn abandon_after<F: Future>(future: F, polls: usize, pause: Duration) {
    let mut future = std::pin::pin!(future);
    for _ in 0..polls {
        let poll = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
        if poll.is_ready() {
            return;
        }
        tokio::time::sleep(pause).await;
    }
}

/// A write whose future is dropped before it completes leaves all or nothing of its batch (of
/// 50 messages, or of 10,000, which a backend might split into several statements); retrying
/// it with the same dedupe keys then stores the batch exactly once, without hanging.
pub async fn dropped_write_leaves_all_or_nothing<S: OfflineBackend>(fx: &mut Fixture<S>) {
    const RETRY_LIMIT: Duration = Duration::from_secs(60);
    for round in 0..ROUNDS {
        let juliet = fx.user(&format!("juliet{round}"));
        let size = if round % 4 == 3 { 10_000 } else { 50 };
        let batch: Vec<NewMessage> = chats(&juliet, 0..size)
            .into_iter()
            .enumerate()
            .map(|(n, m)| m.dedupe_key(format!("{round}-{n}")))
            .collect();
        let abandoned = fx
            .store()
            .write_messages(&juliet, batch.clone(), Quota::UNLIMITED, T0);
        // Polled once, or a few times more each round with pauses between, then dropped.
        abandon_after(
            abandoned,
            round + 1,
            Duration::from_micros(100 * round as u64),
        )
        .await;
        let held = count(fx.store(), &juliet).await;
        assert!(
            held == 0 || held == size as u64,
            "round {round}: a dropped write left {held} of its {size} messages"
        );
        let retry = fx
            .store()
            .write_messages(&juliet, batch.clone(), Quota::UNLIMITED, T0);
        let retry = tokio::time::timeout(RETRY_LIMIT, retry)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "round {round}: the retry of a dropped write did not finish in {RETRY_LIMIT:?}: \
                     the dropped write left a lock or a transaction behind"
                )
            })
            .unwrap_or_else(|e| panic!("round {round}: the retry of a dropped write: {e}"));
        assert_eq!(
            retry.stored + retry.duplicates,
            size as u64,
            "round {round}: the retry stores or skips each message"
        );
        let popped = fx.store().pop_messages(&juliet, T0).await.unwrap();
        assert!(
            packets(&popped) == new_packets(&batch),
            "round {round}: after the retry the batch must be held exactly once, in order \
             ({} held of {size})",
            popped.len()
        );
    }
}
