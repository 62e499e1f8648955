//! Clients at once: 1, 2, 8 and 32 clients writing one 250-byte message per call to random
//! users of 10,000 and popping every fourth operation, on every backend and its baseline; on
//! the Galera cluster, the same load spread over its three nodes beside one MariaDB server,
//! and with every client on one user (the cost of cross-node conflicts and their retries).
//! One iteration is one operation, so criterion's throughput is operations per second.
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use offline_benches::{Ours, Subject, Workload, run};
use offline_diesel::{DieselBackend, DieselConfig};

const CLIENTS: [usize; 4] = [1, 2, 8, 32];

/// A benchmark: its name, the nodes its clients take in turn, and its load.
type Case = (String, Vec<Arc<dyn Subject>>, Workload);

fn bench_nodes(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    group_name: &str,
    cases: &[Case],
) {
    let domain = common::domain();
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    for (name, nodes, workload) in cases {
        let clear = &nodes[0];
        runtime.block_on(clear.clear(&domain)).expect("clear");
        group.bench_with_input(
            BenchmarkId::new(name, workload.clients),
            workload,
            |b, workload| {
                b.to_async(runtime).iter_custom(|iters| {
                    let (nodes, domain) = (nodes.clone(), domain.clone());
                    let workload = Workload {
                        operations: iters,
                        ..workload.clone()
                    };
                    async move {
                        let report = run(&nodes, &domain, &workload, Arc::new(AtomicU64::new(0)))
                            .await
                            .expect("the workload runs");
                        nodes[0].clear(&domain).await.expect("clear");
                        report.elapsed
                    }
                })
            },
        );
    }
    group.finish();
}

fn concurrency(c: &mut Criterion) {
    let runtime = common::runtime();
    for pair in runtime.block_on(common::all_pairs()) {
        let mut cases = Vec::new();
        for clients in CLIENTS {
            let workload = Workload {
                clients,
                ..Workload::default()
            };
            for (name, subject) in pair.subjects() {
                cases.push((name.to_owned(), vec![Arc::clone(subject)], workload.clone()));
            }
        }
        bench_nodes(c, &runtime, &format!("{}/clients", pair.backend), &cases);
    }
    galera(c, &runtime);
}

/// Our store on the three Galera nodes, beside it on the single MariaDB server.
fn galera(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let (Some(urls), Some(single)) = (
        common::database_url("OFFLINE_TEST_GALERA_URLS"),
        common::database_url("OFFLINE_TEST_MYSQL_URL"),
    ) else {
        return;
    };
    let open = |url: String| async move {
        let store = DieselBackend::connect(DieselConfig::new(&url))
            .await
            .unwrap_or_else(|e| panic!("cannot open the store at {url}: {e}"));
        Arc::new(Ours::new(store)) as Arc<dyn Subject>
    };
    let nodes: Vec<Arc<dyn Subject>> = runtime.block_on(async {
        let mut nodes = Vec::new();
        for url in urls.split(',') {
            nodes.push(open(url.trim().to_owned()).await);
        }
        nodes
    });
    let single = vec![runtime.block_on(open(single))];
    for one_user in [false, true] {
        let mut cases = Vec::new();
        for clients in [8, 32] {
            let workload = Workload {
                clients,
                one_user,
                ..Workload::default()
            };
            cases.push(("3 galera nodes".to_owned(), nodes.clone(), workload.clone()));
            cases.push(("1 mariadb server".to_owned(), single.clone(), workload));
        }
        let group = if one_user {
            "galera/one user"
        } else {
            "galera/clients"
        };
        bench_nodes(c, runtime, group, &cases);
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = concurrency
}
criterion_main!(benches);
