//! `offline-mem` against the whole testkit: every conformance case, with many shards and with
//! one, and the model-based property test. The store lives in one process's memory, so it
//! cannot reopen or have peers: those cases are listed as ignored.

use offline_mem::{DEFAULT_SHARDS, MemBackend};
use offline_testkit::{Fixture, StoreFactory};

/// A fresh store per case, with `shards` shards.
struct Mem {
    shards: usize,
}

impl StoreFactory for Mem {
    type Store = MemBackend;

    async fn create(&self) -> offline_core::Result<Fixture<MemBackend>> {
        Ok(Fixture::fresh(MemBackend::with_shards(self.shards)))
    }
}

offline_testkit::conformance_tests!(Mem {
    shards: DEFAULT_SHARDS
});
offline_testkit::conformance_tests!(single_shard, Mem { shards: 1 });
offline_testkit::model_tests!(Mem { shards: 4 });
