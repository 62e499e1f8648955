//! `offline-rocksdb` against the whole testkit: every conformance case with the `reopen`
//! capability (close the store, open it again on the same directory), with synchronous writes
//! and without, and the model-based property test. One process owns a RocksDB directory, so
//! there are no peers.

use offline_core::{OfflineError, Result};
use offline_rocksdb::{RocksBackend, RocksConfig};
use offline_testkit::{Fixture, StoreFactory};
use tempfile::TempDir;

/// A store in a fresh temporary directory per case.
struct Rocks {
    sync_writes: bool,
}

fn open(config: RocksConfig) -> Result<RocksBackend> {
    Ok(RocksBackend::open(config)?)
}

impl StoreFactory for Rocks {
    type Store = RocksBackend;

    async fn create(&self) -> Result<Fixture<RocksBackend>> {
        let dir = TempDir::new().map_err(|e| OfflineError::backend("rocksdb", e))?;
        let store = open(RocksConfig {
            sync_writes: self.sync_writes,
            ..RocksConfig::new(dir.path())
        })?;
        Ok(Fixture::fresh(store).with_guard(dir))
    }

    async fn reopen(&self, store: RocksBackend) -> Result<RocksBackend> {
        let path = store.path().to_owned();
        drop(store);
        open(RocksConfig {
            sync_writes: self.sync_writes,
            ..RocksConfig::new(path)
        })
    }
}

offline_testkit::conformance_tests!(Rocks { sync_writes: false }, capabilities = [reopen]);
offline_testkit::conformance_tests!(
    synchronous,
    Rocks { sync_writes: true },
    capabilities = [reopen]
);
offline_testkit::model_tests!(Rocks { sync_writes: false }, cases = 64);
