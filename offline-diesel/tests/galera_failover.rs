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

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{connect, in_ci};
use offline_core::{NewMessage, OfflineBackend, OfflineError, Quota, UserKey};
use offline_diesel::DieselBackend;
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

/// What the workload saw.
#[derive(Default)]
struct Ledger {
    /// Keys whose write was acknowledged, per user.
    acknowledged: BTreeMap<UserKey, BTreeSet<String>>,
    /// Keys whose write failed: maybe stored, maybe not.
    unknown: BTreeMap<UserKey, BTreeSet<String>>,
    /// Keys delivered by acknowledged pops, per user, in delivery order.
    delivered: BTreeMap<UserKey, Vec<String>>,
    /// Errors that were not `Unavailable`.
    unexpected: Vec<String>,
    /// Calls that failed with `Unavailable`.
    unavailable: usize,
}

const QUOTA: u64 = 40;

/// Writes and pops on one node until `stop`, recording what was acknowledged.
async fn workload(
    store: Arc<DieselBackend>,
    users: Arc<Vec<UserKey>>,
    worker: usize,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    loop {
        let user = &users[fastrand::usize(..users.len())];
        n += 1;
        let result = if n.is_multiple_of(7) {
            store.pop_messages(user, 1).await.map(|popped| {
                let keys = popped.into_iter().filter_map(|m| m.message.dedupe_key);
                ledger
                    .lock()
                    .delivered
                    .entry(user.clone())
                    .or_default()
                    .extend(keys);
            })
        } else {
            let key = format!("w{worker}-{n}");
            let message = NewMessage::new(1, "romeo@example.net/r", user.to_string(), "<m/>")
                .dedupe_key(key.clone());
            let written = store
                .write_messages(user, vec![message], Quota::messages(QUOTA), 1)
                .await;
            let mut ledger = ledger.lock();
            match &written {
                Ok(report) if report.stored == 1 => {
                    ledger
                        .acknowledged
                        .entry(user.clone())
                        .or_default()
                        .insert(key);
                }
                Ok(report) => ledger
                    .unexpected
                    .push(format!("a new key skipped: {report:?}")),
                Err(OfflineError::QuotaExceeded { .. }) => {}
                Err(_) => {
                    ledger.unknown.entry(user.clone()).or_default().insert(key);
                }
            }
            written.map(|_| ())
        };
        match result {
            Ok(()) | Err(OfflineError::QuotaExceeded { .. }) => {}
            Err(OfflineError::Unavailable { .. }) => ledger.lock().unavailable += 1,
            Err(other) => ledger
                .lock()
                .unexpected
                .push(format!("{other}: {:?}", std::error::Error::source(&other))),
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

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
        for (node, store) in stores.iter().enumerate() {
            for worker in [2 * node, 2 * node + 1] {
                workers.push(tokio::spawn(workload(
                    Arc::clone(store),
                    Arc::clone(&users),
                    worker,
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
        eprintln!(
            "{} writes acknowledged, {} of unknown outcome, {} delivered, {} calls unavailable",
            ledger
                .acknowledged
                .values()
                .map(BTreeSet::len)
                .sum::<usize>(),
            ledger.unknown.values().map(BTreeSet::len).sum::<usize>(),
            ledger.delivered.values().map(Vec::len).sum::<usize>(),
            ledger.unavailable
        );
        assert!(
            ledger.unexpected.is_empty(),
            "{} unexpected outcomes, the first: {:?}",
            ledger.unexpected.len(),
            ledger.unexpected.iter().take(3).collect::<Vec<_>>()
        );
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
            let mut seen = BTreeSet::new();
            let delivered = ledger.delivered.get(user).into_iter().flatten();
            let remaining = held.iter().filter_map(|m| m.message.dedupe_key.as_ref());
            for key in delivered.chain(remaining) {
                assert!(
                    seen.insert(key.clone()),
                    "{user}: {key} was delivered or held twice"
                );
            }
            let empty = BTreeSet::new();
            let unknown = ledger.unknown.get(user).unwrap_or(&empty);
            for key in ledger.acknowledged.get(user).into_iter().flatten() {
                assert!(seen.contains(key), "{user}: acknowledged {key} was lost");
            }
            for key in &seen {
                let acknowledged = ledger
                    .acknowledged
                    .get(user)
                    .is_some_and(|k| k.contains(key));
                assert!(
                    acknowledged || unknown.contains(key),
                    "{user}: {key} appeared without being written"
                );
            }
            rejoined.remove_user(user).await.unwrap();
        }
    });
}
