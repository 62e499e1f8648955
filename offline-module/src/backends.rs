//! Opening the configured backend: one cargo feature per backend crate.

use std::sync::Arc;

use offline_core::OfflineBackend;

use crate::{ModuleError, StorageConfig};

/// Opens the store a configuration names ([`HostConfig::storage`](crate::HostConfig::storage)).
///
/// Each backend crate is behind a cargo feature of this crate: `mem` (on by default) for
/// `backend = "memory"` (and `"mnesia"`, until the embedded persistent backend is built in).
/// A backend whose feature is off is [`ModuleError::BackendNotBuilt`], naming the feature; the
/// RocksDB and RDBMS backends are [`ModuleError::BackendPlanned`] in this release.
///
/// ```
/// use offline_module::{StorageConfig, open_backend};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = open_backend(&StorageConfig::Memory).await?;
/// assert_eq!(store.name(), "mem");
/// # Ok::<(), offline_module::ModuleError>(())
/// # }).unwrap();
/// ```
pub async fn open_backend(storage: &StorageConfig) -> Result<Arc<dyn OfflineBackend>, ModuleError> {
    match storage {
        StorageConfig::Memory => memory(),
        StorageConfig::RocksDb { .. } => Err(ModuleError::BackendPlanned {
            backend: "rocksdb",
            feature: "rocksdb",
        }),
        StorageConfig::Rdbms { connection, .. } => Err(ModuleError::BackendPlanned {
            backend: "rdbms",
            feature: connection.driver().feature(),
        }),
    }
}

#[cfg(feature = "mem")]
fn memory() -> Result<Arc<dyn OfflineBackend>, ModuleError> {
    Ok(Arc::new(offline_mem::MemBackend::new()))
}

#[cfg(not(feature = "mem"))]
fn memory() -> Result<Arc<dyn OfflineBackend>, ModuleError> {
    Err(ModuleError::BackendNotBuilt {
        backend: "memory",
        feature: "mem",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RdbmsConnection, RdbmsDriver};

    #[tokio::test]
    async fn a_planned_backend_names_its_feature() {
        let rdbms = StorageConfig::Rdbms {
            connection: RdbmsConnection::Url {
                driver: RdbmsDriver::Mysql,
                url: "mysql://root@127.0.0.1/test".into(),
            },
            pool_size: None,
        };
        let err = open_backend(&rdbms).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend `rdbms` is not available yet: it is planned as the `mysql` feature of \
             offline-module"
        );
        let rocksdb = StorageConfig::RocksDb {
            path: "data".into(),
        };
        let err = open_backend(&rocksdb).await.unwrap_err();
        assert!(err.to_string().contains("the `rocksdb` feature"), "{err}");
    }

    #[cfg(feature = "mem")]
    #[tokio::test]
    async fn memory_opens_the_in_memory_backend() {
        let store = open_backend(&StorageConfig::Memory).await.unwrap();
        assert_eq!(store.name(), "mem");
    }

    #[cfg(not(feature = "mem"))]
    #[tokio::test]
    async fn memory_without_its_feature_names_it_as_configured() {
        let err = open_backend(&StorageConfig::Memory).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend `memory` is not built in: enable the `mem` feature of offline-module"
        );
        let config = crate::OfflineConfig::from_toml_str(
            "[general]\nhosts = [\"localhost\"]\n[modules.mod_offline]\nbackend = \"mnesia\"",
        )
        .unwrap();
        let err = crate::OfflineModule::from_config("localhost", &config)
            .unwrap()
            .build()
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend `mnesia` is not built in: enable the `mem` feature of offline-module"
        );
    }
}
