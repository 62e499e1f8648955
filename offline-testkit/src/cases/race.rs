//! Concurrency: the quota under many writers, dedupe under racing writers, pops racing writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use offline_core::{
    NewMessage, OfflineBackend, OfflineError, Quota, Result, StoredMessage, UserKey, WriteReport,
};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::{T0, assert_seq_increasing, chat, chats, new_packets, packets};
use crate::Fixture;

/// Concurrent writers in the races below.
const WRITERS: usize = 16;

/// Runs `WRITERS` tasks that start together; task `w` writes `batches(w)` to `user` one batch
/// at a time. Returns every write's result.
async fn race_writers<S: OfflineBackend>(
    fx: &Fixture<S>,
    user: &UserKey,
    quota: Quota,
    batches: impl Fn(usize) -> Vec<Vec<NewMessage>>,
) -> Vec<Result<WriteReport>> {
    let start = Arc::new(Barrier::new(WRITERS));
    let mut tasks = JoinSet::new();
    for writer in 0..WRITERS {
        let (store, user, start) = (fx.shared_store(), user.clone(), Arc::clone(&start));
        let batches = batches(writer);
        tasks.spawn(async move {
            start.wait().await;
            let mut results = Vec::new();
            for batch in batches {
                results.push(store.write_messages(&user, batch, quota, T0).await);
            }
            results
        });
    }
    tasks.join_all().await.into_iter().flatten().collect()
}

/// Checks that every failure is `QuotaExceeded` and returns how many writes succeeded.
fn successes(results: &[Result<WriteReport>]) -> usize {
    for result in results {
        if let Err(err) = result {
            assert!(matches!(err, OfflineError::QuotaExceeded { .. }), "{err:?}");
        }
    }
    results.iter().filter(|r| r.is_ok()).count()
}

/// With 16 concurrent writers of single messages, exactly the message limit is admitted.
pub async fn concurrent_writers_never_exceed_the_message_quota<S: OfflineBackend>(fx: Fixture<S>) {
    let juliet = fx.user("juliet");
    let results = race_writers(&fx, &juliet, Quota::messages(50), |w| {
        (0..8).map(|n| vec![chat(&juliet, w * 100 + n)]).collect()
    })
    .await;
    assert_eq!(successes(&results), 50);
    assert_eq!(
        fx.store().count_messages(&juliet).await.unwrap().messages,
        50
    );
    assert_eq!(
        fx.store().pop_messages(&juliet, T0).await.unwrap().len(),
        50
    );
}

/// With 16 concurrent writers of 30-byte batches and a 200-byte limit, exactly six batches
/// are admitted, whole.
pub async fn concurrent_batches_never_exceed_the_byte_quota<S: OfflineBackend>(fx: Fixture<S>) {
    let juliet = fx.user("juliet");
    let ten_bytes = |n: usize| NewMessage {
        packet: format!("<m>{n:03}</m>"),
        ..chat(&juliet, n)
    };
    let quota = Quota::UNLIMITED.with_max_bytes(200);
    let results = race_writers(&fx, &juliet, quota, |w| {
        (0..4)
            .map(|b| (0..3).map(|m| ten_bytes(w * 12 + b * 3 + m)).collect())
            .collect()
    })
    .await;
    assert_eq!(successes(&results), 6);
    let stats = fx.store().count_messages(&juliet).await.unwrap();
    assert_eq!((stats.messages, stats.bytes), (18, 180));
}

/// Racing writers of one dedupe key store it once; the others report a duplicate.
pub async fn concurrent_writes_of_one_key_store_it_once<S: OfflineBackend>(fx: Fixture<S>) {
    let juliet = fx.user("juliet");
    let results = race_writers(&fx, &juliet, Quota::UNLIMITED, |w| {
        vec![vec![chat(&juliet, w).dedupe_key("one-key")]]
    })
    .await;
    let reports: Vec<WriteReport> = results.into_iter().map(|r| r.unwrap()).collect();
    let stored: u64 = reports.iter().map(|r| r.stored).sum();
    let duplicates: u64 = reports.iter().map(|r| r.duplicates).sum();
    assert_eq!((stored, duplicates), (1, WRITERS as u64 - 1));
    assert_eq!(
        fx.store().count_messages(&juliet).await.unwrap().messages,
        1
    );
}

/// Concurrent writers to different users lose nothing and mix nothing up.
pub async fn concurrent_writers_to_many_users_lose_nothing<S: OfflineBackend>(fx: Fixture<S>) {
    let start = Arc::new(Barrier::new(WRITERS));
    let mut tasks = JoinSet::new();
    let users: Vec<UserKey> = (0..WRITERS).map(|w| fx.user(&format!("user{w}"))).collect();
    for user in &users {
        let (store, user, start) = (fx.shared_store(), user.clone(), Arc::clone(&start));
        tasks.spawn(async move {
            start.wait().await;
            for n in 0..50 {
                let batch = vec![chat(&user, n)];
                store
                    .write_messages(&user, batch, Quota::UNLIMITED, T0)
                    .await
                    .unwrap();
            }
        });
    }
    tasks.join_all().await;
    for user in &users {
        let popped = fx.store().pop_messages(user, T0).await.unwrap();
        assert_eq!(packets(&popped), new_packets(&chats(user, 0..50)), "{user}");
    }
}

/// Pops racing writers: every message written is delivered by exactly one pop, none lost.
pub async fn pops_racing_writers_deliver_each_message_once<S: OfflineBackend>(fx: Fixture<S>) {
    let juliet = fx.user("juliet");
    let delivered = race_pops(&fx, &juliet, 2).await;
    let mut times_delivered: HashMap<String, usize> = HashMap::new();
    for pops in &delivered {
        for pop in pops {
            assert_seq_increasing(pop);
            for packet in packets(pop) {
                *times_delivered.entry(packet).or_default() += 1;
            }
        }
    }
    let written = race_pop_messages(&juliet);
    assert_eq!(times_delivered.len(), written.len(), "messages were lost");
    for message in written {
        assert_eq!(
            times_delivered.get(&message.packet),
            Some(&1),
            "{message:?}"
        );
    }
}

/// With one popper racing writers, each writer's messages arrive in the order written.
pub async fn pops_racing_writers_keep_arrival_order<S: OfflineBackend>(fx: Fixture<S>) {
    let juliet = fx.user("juliet");
    let delivered = race_pops(&fx, &juliet, 1).await;
    let position: HashMap<String, (usize, usize)> = race_pop_messages(&juliet)
        .into_iter()
        .enumerate()
        .map(|(i, m)| (m.packet, (i / PER_WRITER, i % PER_WRITER)))
        .collect();
    let mut next = [0; POP_RACE_WRITERS];
    for packet in delivered.concat().iter().flat_map(|pop| packets(pop)) {
        let (writer, n) = position[&packet];
        assert_eq!(n, next[writer], "writer {writer}'s messages out of order");
        next[writer] += 1;
    }
    assert_eq!(next, [PER_WRITER; POP_RACE_WRITERS], "messages were lost");
}

/// Writers racing the poppers of [`race_pops`].
const POP_RACE_WRITERS: usize = 4;
/// Messages each of them writes.
const PER_WRITER: usize = 60;

/// What the writers of [`race_pops`] write, writer by writer.
fn race_pop_messages(user: &UserKey) -> Vec<NewMessage> {
    chats(user, 0..POP_RACE_WRITERS * PER_WRITER)
}

/// [`POP_RACE_WRITERS`] writers write [`race_pop_messages`] one by one while `poppers` tasks pop in a loop;
/// a last pop follows. Returns each popper's pops (the last pop as a popper of its own).
async fn race_pops<S: OfflineBackend>(
    fx: &Fixture<S>,
    user: &UserKey,
    poppers: usize,
) -> Vec<Vec<Vec<StoredMessage>>> {
    let writing = Arc::new(AtomicBool::new(true));
    let start = Arc::new(Barrier::new(POP_RACE_WRITERS + poppers));
    let mut writers = JoinSet::new();
    let messages = race_pop_messages(user);
    for mine in messages.chunks(PER_WRITER) {
        let (store, user, start) = (fx.shared_store(), user.clone(), Arc::clone(&start));
        let mine = mine.to_vec();
        writers.spawn(async move {
            start.wait().await;
            for message in mine {
                store
                    .write_messages(&user, vec![message], Quota::UNLIMITED, T0)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        });
    }
    let mut readers = JoinSet::new();
    for _ in 0..poppers {
        let (store, user, start) = (fx.shared_store(), user.clone(), Arc::clone(&start));
        let writing = Arc::clone(&writing);
        readers.spawn(async move {
            start.wait().await;
            let mut pops = Vec::new();
            while writing.load(Ordering::Acquire) {
                let pop = store.pop_messages(&user, T0).await.unwrap();
                if !pop.is_empty() {
                    pops.push(pop);
                }
                tokio::task::yield_now().await;
            }
            pops
        });
    }
    writers.join_all().await;
    writing.store(false, Ordering::Release);
    let mut delivered = readers.join_all().await;
    delivered.push(vec![fx.store().pop_messages(user, T0).await.unwrap()]);
    delivered
}
