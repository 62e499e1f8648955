//! The reference model passes the conformance suite, both with a store per case and with one
//! store shared by every case (each in its own namespace, as on a shared database).

use std::sync::{Arc, LazyLock};

use offline_testkit::{Fixture, ModelBackend, StoreFactory};

/// A fresh model per case.
struct FreshModel;

impl StoreFactory for FreshModel {
    type Store = ModelBackend;

    async fn create(&self) -> offline_core::Result<Fixture<ModelBackend>> {
        Ok(Fixture::fresh(ModelBackend::default()))
    }
}

/// One model for every case of the process, cases kept apart by namespace.
struct SharedModel;

static SHARED: LazyLock<Arc<ModelBackend>> = LazyLock::new(Arc::default);

impl StoreFactory for SharedModel {
    type Store = ModelBackend;

    async fn create(&self) -> offline_core::Result<Fixture<ModelBackend>> {
        Ok(Fixture::in_own_namespace(Arc::clone(&SHARED)))
    }
}

offline_testkit::conformance_tests!(FreshModel);
offline_testkit::conformance_tests!(shared_store, SharedModel);
