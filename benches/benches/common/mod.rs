//! What every bench binary shares: the runtime, the stores and their baselines, the sizes.
#![allow(dead_code)] // Each bench binary uses part of it.

use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use offline_benches::{MongooseSql, NaiveMap, Ours, RawRocks, Subject};
use offline_core::Domain;
use offline_diesel::{DieselBackend, DieselConfig};
use offline_mem::MemBackend;
use offline_rocksdb::{RocksBackend, RocksConfig};
use tempfile::TempDir;

/// Whether criterion measures (`cargo bench`) rather than runs each bench once (`cargo test`).
pub(crate) fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// Criterion with short warm-ups and measurements, so a whole run stays within minutes.
pub(crate) fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}

/// A runtime with one worker per core (two on the reference machine), as a server has.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The domain every bench writes to.
pub(crate) fn domain() -> Domain {
    "bench.offline.example".parse().expect("a valid domain")
}

/// One of our backends and the baseline it is compared with.
pub(crate) struct Pair {
    /// `mem`, `rocksdb`, `postgres`, ...
    pub(crate) backend: &'static str,
    pub(crate) ours: Arc<dyn Subject>,
    pub(crate) baseline: Arc<dyn Subject>,
    /// Whether it is a database server (fewer, longer samples).
    pub(crate) server: bool,
    _dirs: Vec<TempDir>,
}

impl Pair {
    /// Ours first, then the baseline.
    pub(crate) fn subjects(&self) -> [(&'static str, &Arc<dyn Subject>); 2] {
        [("ours", &self.ours), ("baseline", &self.baseline)]
    }
}

/// The in-memory store beside the naive map.
pub(crate) fn mem() -> Pair {
    Pair {
        backend: "mem",
        ours: Arc::new(Ours::new(MemBackend::new())),
        baseline: Arc::new(NaiveMap::new()),
        server: false,
        _dirs: Vec::new(),
    }
}

/// The RocksDB store beside raw RocksDB, both in temporary directories, synced as `sync` says.
pub(crate) fn rocksdb(sync: bool) -> Pair {
    let (ours_dir, raw_dir) = (tempdir(), tempdir());
    let config = RocksConfig {
        sync_writes: sync,
        ..RocksConfig::new(ours_dir.path())
    };
    Pair {
        backend: if sync { "rocksdb (sync)" } else { "rocksdb" },
        ours: Arc::new(Ours::new(RocksBackend::open(config).expect("open RocksDB"))),
        baseline: Arc::new(RawRocks::open(raw_dir.path(), sync).expect("open raw RocksDB")),
        server: false,
        _dirs: vec![ours_dir, raw_dir],
    }
}

/// The SQL store on `url` beside MongooseIM's statements on the same database.
pub(crate) async fn sql(backend: &'static str, url: &str) -> Pair {
    let ours = DieselBackend::connect(DieselConfig::new(url))
        .await
        .unwrap_or_else(|e| panic!("{backend}: cannot open the store at {url}: {e}"));
    let baseline = MongooseSql::connect(url, ours.config().pool_size)
        .await
        .unwrap_or_else(|e| panic!("{backend}: cannot open the baseline at {url}: {e}"));
    Pair {
        backend,
        ours: Arc::new(Ours::new(ours)),
        baseline: Arc::new(baseline),
        server: true,
        _dirs: Vec::new(),
    }
}

/// SQLite in a temporary file, beside MongooseIM's statements in another.
pub(crate) async fn sqlite() -> Pair {
    let dir = tempdir();
    let ours = dir.path().join("ours.db");
    let theirs = dir.path().join("mongooseim.db");
    let store = DieselBackend::connect(DieselConfig::new(format!("sqlite://{}", ours.display())))
        .await
        .expect("open SQLite");
    // One connection: MongooseIM's sequence on SQLite, with several connections writing at
    // once, fails with "database is locked" (its deferred transactions cannot upgrade their
    // read lock while another writer holds the file), so the baseline's writers queue in the
    // pool instead.
    let baseline = MongooseSql::connect(&format!("sqlite://{}", theirs.display()), 1)
        .await
        .expect("open the SQLite baseline");
    Pair {
        backend: "sqlite",
        ours: Arc::new(Ours::new(store)),
        baseline: Arc::new(baseline),
        server: true,
        _dirs: vec![dir],
    }
}

/// The URL in `variable` (the tests' variables: `OFFLINE_TEST_POSTGRES_URL`, ...). Unset, the
/// database is left out with a notice, except under CI, where that fails the run.
pub(crate) fn database_url(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if in_ci() => panic!("{variable} is not set, and CI requires its benches"),
        _ => {
            eprintln!("notice: {variable} is not set; its benches are skipped");
            None
        }
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Every pair this machine can run: the embedded stores, then the servers whose URLs are set.
pub(crate) async fn all_pairs() -> Vec<Pair> {
    let mut pairs = vec![mem(), rocksdb(false), rocksdb(true), sqlite().await];
    if let Some(url) = database_url("OFFLINE_TEST_POSTGRES_URL") {
        pairs.push(sql("postgres", &url).await);
    }
    if let Some(url) = database_url("OFFLINE_TEST_MYSQL_URL") {
        pairs.push(sql("mariadb", &url).await);
    }
    pairs
}

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("a temporary directory")
}
