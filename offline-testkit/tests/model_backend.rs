//! The reference model passes the whole conformance suite, reopen and peer cases included,
//! both with a store per case and with one store shared by every case (each in its own
//! namespace, as on a shared database).

use std::sync::{Arc, LazyLock};

use offline_core::{OfflineBackend, UserKey};
use offline_testkit::{Fixture, ModelBackend, StoreFactory};

/// A fresh model per case; reopening or peering shares its data.
struct FreshModel;

impl StoreFactory for FreshModel {
    type Store = ModelBackend;

    async fn create(&self) -> offline_core::Result<Fixture<ModelBackend>> {
        Ok(Fixture::fresh(ModelBackend::default()))
    }

    async fn reopen(&self, store: ModelBackend) -> offline_core::Result<ModelBackend> {
        Ok(store.on_same_storage())
    }

    async fn peer(&self, store: &ModelBackend) -> offline_core::Result<ModelBackend> {
        Ok(store.on_same_storage())
    }
}

/// One model for every case of the process, cases kept apart by namespace.
struct SharedModel;

static SHARED: LazyLock<Arc<ModelBackend>> = LazyLock::new(Arc::default);

impl StoreFactory for SharedModel {
    type Store = ModelBackend;

    async fn create(&self) -> offline_core::Result<Fixture<ModelBackend>> {
        Ok(Fixture::in_own_namespace(SHARED.on_same_storage()))
    }

    async fn reopen(&self, store: ModelBackend) -> offline_core::Result<ModelBackend> {
        Ok(store.on_same_storage())
    }

    async fn peer(&self, store: &ModelBackend) -> offline_core::Result<ModelBackend> {
        Ok(store.on_same_storage())
    }
}

offline_testkit::conformance_tests!(FreshModel, capabilities = [reopen, peer]);
offline_testkit::conformance_tests!(shared_store, SharedModel, capabilities = [peer, reopen]);
offline_testkit::model_tests!(FreshModel, cases = 64);

/// A passing case on a shared store removes the domains it used.
#[test]
fn passing_cases_on_a_shared_store_clean_up() {
    let shared = Arc::new(ModelBackend::default());
    struct OnShared(Arc<ModelBackend>);
    impl StoreFactory for OnShared {
        type Store = ModelBackend;
        async fn create(&self) -> offline_core::Result<Fixture<ModelBackend>> {
            Ok(Fixture::in_own_namespace(self.0.on_same_storage()))
        }
    }
    offline_testkit::run_case(
        OnShared(Arc::clone(&shared)),
        offline_testkit::cases::remove_old_messages_is_strict_and_spares_neighbours,
    );
    let left: Vec<UserKey> = offline_testkit::runtime()
        .block_on(shared.list_users(None, None, 100))
        .unwrap();
    assert!(left.is_empty(), "the case left {left:?} behind");
}
