//! `offline-diesel` on a MariaDB Galera cluster: three nodes on loopback, each a master
//! (`scripts/galera`, which `scripts/test` starts and stops). Every conformance case runs
//! with its store on node 1 and its peers on nodes 2 and 3 in turn, so the peer cases race
//! writers, pops and dedupe across nodes; the model test runs there too. (A node killed and
//! rejoining is `galera_failover.rs`, a test binary of its own, so that it never runs beside
//! these cases.)
//!
//! `OFFLINE_TEST_GALERA_URLS` names the three nodes (comma-separated); without it (outside
//! CI) the tests are skipped.

mod common;

use common::Shared;

const URLS: &str = "OFFLINE_TEST_GALERA_URLS";

/// The store on node 1, peers on nodes 2 and 3.
fn cluster() -> Shared {
    let nodes: Vec<String> = common::url(URLS)
        .map(|urls| urls.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    Shared {
        variable: URLS,
        url: nodes.first().cloned(),
        peer_urls: nodes.iter().skip(1).cloned().collect(),
    }
}

mod across_nodes {
    use super::*;

    offline_testkit::conformance_tests!(cluster(), capabilities = [reopen, peer]);
    offline_testkit::model_tests!(cluster(), cases = 8);
}
