//! `offline-diesel` on a MariaDB Galera cluster losing a node: node 3 is killed with SIGKILL
//! in the middle of a workload of writers and poppers on all three nodes, and rejoins. Its
//! own test binary, so that the conformance cases of `galera.rs` never run beside it (a node
//! rejoining stalls the cluster for a few seconds).
//!
//! `OFFLINE_TEST_GALERA_URLS` names the three nodes (comma-separated) and
//! `OFFLINE_TEST_GALERA_DIR` the cluster's directory (`scripts/galera`, which `scripts/test`
//! starts and stops); without them (outside CI) the test is skipped.

// Tests fail by panicking.
#![allow(clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::ledger::{Ledger, Plan, workload};
use common::{connect, in_ci};
use offline_core::{OfflineBackend, Quota, UserKey};
use parking_lot::Mutex;

const URLS: &str = "OFFLINE_TEST_GALERA_URLS";
const DIR: &str = "OFFLINE_TEST_GALERA_DIR";

/// The three nodes' URLs.
fn nodes() -> Vec<String> {
    common::url(URLS)
        .map(|urls| urls.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Runs `scripts/galera <action> DIR <node>`.
fn galera(action: &str, node: usize) {
    let dir = common::url(DIR).unwrap_or_else(|| panic!("{DIR} is not set"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/galera");
    let status = std::process::Command::new("bash")
        .arg(script)
        .args([action, &dir, &node.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("running scripts/galera {action}: {e}"));
    assert!(status.success(), "scripts/galera {action} {node} failed");
}

const QUOTA: u64 = 40;

/// A node killed with SIGKILL while writers and poppers work on all three: calls through it
/// fail with `Unavailable`, the others go on (after Galera's few seconds of reconfiguring),
/// nothing acknowledged is lost or delivered twice, quotas hold, and the node rejoins and
/// serves what the others wrote meanwhile.
#[test]
fn a_killed_node_loses_nothing_acknowledged_and_rejoins() {
    let nodes = nodes();
    if nodes.is_empty() && !in_ci() {
        eprintln!("skipped: {URLS} is not set (scripts/test sets it)");
        return;
    }
    assert_eq!(nodes.len(), 3, "{URLS} must name three nodes");
    offline_testkit::runtime().block_on(async {
        let namespace = format!("k{:08x}.example.com", fastrand::u32(..));
        let users: Arc<Vec<UserKey>> = Arc::new(
            (0..6)
                .map(|i| format!("user{i}@{namespace}").parse().unwrap())
                .collect(),
        );
        let mut stores = Vec::new();
        for url in &nodes {
            stores.push(Arc::new(connect(url).await.unwrap()));
        }
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        // Pops go through the nodes that stay up: a pop through the killed node could commit
        // with its reply lost, and what it took could not be told from a loss.
        for (node, store) in stores.iter().enumerate() {
            for worker in [2 * node, 2 * node + 1] {
                workers.push(tokio::spawn(workload(
                    Arc::clone(store),
                    Arc::clone(&users),
                    Plan {
                        worker,
                        pop_every: (node != 2).then_some(7),
                        quota: Quota::messages(QUOTA),
                        pause: Duration::from_millis(2),
                    },
                    Arc::clone(&ledger),
                    Arc::clone(&stop),
                )));
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        tokio::task::spawn_blocking(|| galera("kill", 3))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        tokio::task::spawn_blocking(|| galera("rejoin", 3))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker.await.unwrap();
        }

        let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner();
        eprintln!("{}", ledger.summary());
        ledger.assert_no_unexpected();
        assert!(
            ledger.unavailable > 0,
            "calls through the killed node must have failed with Unavailable"
        );
        // Read what is left through the node that was killed: it must have caught up.
        let rejoined = &stores[2];
        for user in users.iter() {
            let held = rejoined.fetch_messages(user, None, None, 1).await.unwrap();
            let count = rejoined.count_messages(user).await.unwrap();
            assert_eq!(
                count.messages,
                held.len() as u64,
                "{user}: count and fetch agree"
            );
            assert!(count.messages <= QUOTA, "{user}: the quota held");
            ledger.check(user, &held);
            rejoined.remove_user(user).await.unwrap();
        }
    });
}
