//! What the rest of the store costs: popping a 10-message queue and removing 100 expired
//! messages, with 10^4, 10^5 and 10^6 messages stored in the same domain (10 per user), on the
//! memory, RocksDB and PostgreSQL stores and their baselines. Under `cargo test` the sizes are
//! 10^3 and every bench runs once.
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use offline_benches::{Payload, Subject, bench_users, now_micros};
use offline_core::{Domain, Quota, UserKey};

const QUOTA: Quota = Quota::messages(1_000_000);
const PER_USER: usize = 10;

/// Writes `total` messages, `PER_USER` to each of `total / PER_USER` users, from 8 tasks.
async fn fill(subject: &Arc<dyn Subject>, domain: &Domain, total: usize) {
    let users: Arc<[UserKey]> = bench_users(domain, total / PER_USER).expect("users").into();
    let payload = Arc::new(Payload::new(domain, 250));
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let (subject, users, payload) = (
                Arc::clone(subject),
                Arc::clone(&users),
                Arc::clone(&payload),
            );
            tokio::spawn(async move {
                let now = now_micros();
                for user in users.iter().skip(task).step_by(8) {
                    let batch = payload.batch(user, PER_USER, now);
                    subject.write(user, batch, QUOTA, now).await.expect("fill");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a fill task");
    }
}

fn scale(c: &mut Criterion) {
    let runtime = common::runtime();
    let domain = common::domain();
    let totals: &[usize] = if common::measuring() {
        &[10_000, 100_000, 1_000_000]
    } else {
        &[1_000]
    };
    let mut pairs = vec![common::mem(), common::rocksdb(false)];
    if let Some(url) = common::database_url("OFFLINE_TEST_POSTGRES_URL") {
        pairs.push(runtime.block_on(common::sql("postgres", &url)));
    }
    let payload = Payload::new(&domain, 250);
    for pair in &pairs {
        for (name, subject) in pair.subjects() {
            runtime.block_on(subject.clear(&domain)).expect("clear");
            let mut group = c.benchmark_group(format!("{}/scale/{name}", pair.backend));
            group.sample_size(10);
            for &total in totals {
                runtime.block_on(fill(subject, &domain, total));
                // Pops rotate over many users, so that what a pop leaves behind (tombstones,
                // dead tuples) does not pile up on one user's keys.
                let probe: Arc<[UserKey]> = (0..1000)
                    .map(|n| format!("probe-{n}@{domain}").parse().expect("a user"))
                    .collect::<Vec<_>>()
                    .into();
                group.bench_function(BenchmarkId::new("pop 10", total), |b| {
                    b.to_async(&runtime).iter_custom(|iters| {
                        let (subject, payload, probe) =
                            (Arc::clone(subject), payload.clone(), Arc::clone(&probe));
                        async move {
                            let mut elapsed = Duration::ZERO;
                            for i in 0..iters {
                                let user = &probe[(i % probe.len() as u64) as usize];
                                let now = now_micros();
                                let batch = payload.batch(user, 10, now);
                                subject.write(user, batch, QUOTA, now).await.expect("write");
                                let started = Instant::now();
                                let popped = subject.pop(user, now).await.expect("pop");
                                elapsed += started.elapsed();
                                assert_eq!(popped, 10);
                            }
                            elapsed
                        }
                    })
                });
                group.bench_function(BenchmarkId::new("remove 100 expired", total), |b| {
                    b.to_async(&runtime).iter_custom(|iters| {
                        let (subject, payload, probe, domain) = (
                            Arc::clone(subject),
                            payload.clone(),
                            Arc::clone(&probe),
                            domain.clone(),
                        );
                        async move {
                            let mut elapsed = Duration::ZERO;
                            for _ in 0..iters {
                                let now = now_micros();
                                let expire = now + 1_000_000;
                                for user in &probe[..10] {
                                    let batch = payload
                                        .batch(user, 10, now)
                                        .into_iter()
                                        .map(|m| m.expires_at(expire))
                                        .collect();
                                    subject.write(user, batch, QUOTA, now).await.expect("write");
                                }
                                let started = Instant::now();
                                let removed = subject
                                    .remove_expired(&domain, expire + 1)
                                    .await
                                    .expect("remove expired");
                                elapsed += started.elapsed();
                                assert_eq!(removed, 100);
                            }
                            elapsed
                        }
                    })
                });
                runtime.block_on(subject.clear(&domain)).expect("clear");
            }
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = scale
}
criterion_main!(benches);
