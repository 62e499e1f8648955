//! What MongooseIM's backend metrics cost: a write and a pop on the memory store, bare and
//! through the module's `InstrumentedBackend`, with a Prometheus recorder installed as an
//! operator's server would have it.
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use metrics_exporter_prometheus::PrometheusBuilder;
use offline_benches::{Payload, bench_users, now_micros};
use offline_core::{OfflineBackend, Quota, UserKey};
use offline_mem::MemBackend;
use offline_module::{Instrumentation, InstrumentedBackend, MetricNames};

fn metrics(c: &mut Criterion) {
    let recorder = PrometheusBuilder::new().build_recorder();
    // Upkeep drains the histograms' samples, as an exporter does on a timer.
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this process");
    let runtime = common::runtime();
    let domain = common::domain();
    let users: Arc<[UserKey]> = bench_users(&domain, 10_000).expect("users").into();
    let payload = Payload::new(&domain, 250);
    let bare: Arc<dyn OfflineBackend> = Arc::new(MemBackend::new());
    let instrumented: Arc<dyn OfflineBackend> = Arc::new(InstrumentedBackend::new(
        Arc::new(MemBackend::new()),
        Instrumentation::new("localhost", MetricNames::Prometheus),
    ));
    let mut group = c.benchmark_group("mem/metrics");
    group.throughput(Throughput::Elements(2));
    for (name, store) in [("bare", bare), ("instrumented", instrumented)] {
        group.bench_function(format!("write and pop, {name}"), |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let (store, users, payload) =
                    (Arc::clone(&store), Arc::clone(&users), payload.clone());
                let handle = handle.clone();
                async move {
                    let mut elapsed = Duration::ZERO;
                    for i in 0..iters {
                        let user = &users[(i % users.len() as u64) as usize];
                        let now = now_micros();
                        let batch = payload.batch(user, 1, now);
                        let started = Instant::now();
                        store
                            .write_messages(user, batch, Quota::messages(100), now)
                            .await
                            .expect("write");
                        store.pop_messages(user, now).await.expect("pop");
                        elapsed += started.elapsed();
                    }
                    handle.run_upkeep();
                    elapsed
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = metrics
}
criterion_main!(benches);
