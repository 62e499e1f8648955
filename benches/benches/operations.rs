//! One call at a time: write (1 and 10 messages), pop (10 and 100), count, a fetch page and
//! `remove_expired_messages`, on every backend and its baseline. Each timed call is one
//! iteration; what it needs (a queue to pop, messages to purge) is written untimed before it.
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use offline_benches::{Payload, Subject, bench_users, now_micros};
use offline_core::{Quota, UserKey};

/// A quota every write is checked against, high enough never to refuse one here.
const QUOTA: Quota = Quota::messages(1_000_000);

fn operations(c: &mut Criterion) {
    let runtime = common::runtime();
    let domain = common::domain();
    let users: Arc<[UserKey]> = bench_users(&domain, 10_000).expect("users").into();
    let payload = Payload::new(&domain, 250);
    for pair in runtime.block_on(common::all_pairs()) {
        for (name, subject) in pair.subjects() {
            runtime.block_on(subject.clear(&domain)).expect("clear");
            let mut group = c.benchmark_group(format!("{}/{name}", pair.backend));
            if pair.server {
                group.sample_size(10);
            }
            group.throughput(Throughput::Elements(1));
            let bench = |iters: u64, op: Op| {
                let subject = Arc::clone(subject);
                let (users, payload, domain) =
                    (Arc::clone(&users), payload.clone(), domain.clone());
                async move {
                    let elapsed = op.run(&*subject, &users, &payload, iters).await;
                    subject.clear(&domain).await.expect("clear");
                    elapsed
                }
            };
            for op in Op::ALL {
                group.bench_function(op.name(), |b| {
                    b.to_async(&runtime).iter_custom(|iters| bench(iters, op))
                });
            }
            group.finish();
        }
    }
}

/// An operation a bench times.
#[derive(Clone, Copy, Debug)]
enum Op {
    Write(usize),
    Pop(usize),
    Count,
    FetchPage,
    RemoveExpired,
}

impl Op {
    const ALL: [Op; 7] = [
        Op::Write(1),
        Op::Write(10),
        Op::Pop(10),
        Op::Pop(100),
        Op::Count,
        Op::FetchPage,
        Op::RemoveExpired,
    ];

    fn name(self) -> String {
        match self {
            Op::Write(n) => format!("write {n}"),
            Op::Pop(n) => format!("pop {n}"),
            Op::Count => "count".to_owned(),
            Op::FetchPage => "fetch 20 of 100".to_owned(),
            Op::RemoveExpired => "remove 100 expired of 1100".to_owned(),
        }
    }

    /// Runs the operation `iters` times; returns the time the timed calls took.
    async fn run(
        self,
        subject: &dyn Subject,
        users: &[UserKey],
        payload: &Payload,
        iters: u64,
    ) -> Duration {
        let now = now_micros();
        let user = |i: u64| &users[(i % users.len() as u64) as usize];
        let write = async |to: &UserKey, n: usize| {
            subject
                .write(to, payload.batch(to, n, now), QUOTA, now)
                .await
        };
        let mut elapsed = Duration::ZERO;
        match self {
            Op::Write(n) => {
                for i in 0..iters {
                    let batch = payload.batch(user(i), n, now);
                    let started = Instant::now();
                    subject
                        .write(user(i), batch, QUOTA, now)
                        .await
                        .expect("write");
                    elapsed += started.elapsed();
                }
            }
            Op::Pop(n) => {
                for i in 0..iters {
                    write(user(i), n).await.expect("fill the queue");
                    let started = Instant::now();
                    let popped = subject.pop(user(i), now).await.expect("pop");
                    elapsed += started.elapsed();
                    assert_eq!(popped, n, "{}: pop returns the queue", subject.label());
                }
            }
            Op::Count => {
                for i in 0..100 {
                    write(user(i), 10).await.expect("fill the queues");
                }
                for i in 0..iters {
                    let started = Instant::now();
                    let held = subject.count(user(i % 100)).await.expect("count");
                    elapsed += started.elapsed();
                    assert_eq!(held, 10, "{}: count", subject.label());
                }
            }
            Op::FetchPage => {
                for i in 0..10 {
                    write(user(i), 100).await.expect("fill the queues");
                }
                for i in 0..iters {
                    let started = Instant::now();
                    let page = subject
                        .fetch_page(user(i % 10), 20, now)
                        .await
                        .expect("fetch");
                    elapsed += started.elapsed();
                    assert_eq!(page, 20, "{}: a page", subject.label());
                }
            }
            Op::RemoveExpired => {
                for i in 0..100 {
                    write(user(i), 10).await.expect("fill the queues");
                }
                let expire = now + 1_000_000;
                for _ in 0..iters {
                    for i in 100..110 {
                        let batch = payload
                            .batch(user(i), 10, now)
                            .into_iter()
                            .map(|m| m.expires_at(expire))
                            .collect();
                        subject
                            .write(user(i), batch, QUOTA, now)
                            .await
                            .expect("write");
                    }
                    let started = Instant::now();
                    let removed = subject
                        .remove_expired(&users[0].domain(), expire + 1)
                        .await
                        .expect("remove expired");
                    elapsed += started.elapsed();
                    assert_eq!(removed, 100, "{}: the expired messages", subject.label());
                }
            }
        }
        elapsed
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = operations
}
criterion_main!(benches);
