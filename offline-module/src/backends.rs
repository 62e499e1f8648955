//! Opening the configured backend: one cargo feature per backend crate.

use std::sync::Arc;

use offline_core::OfflineBackend;

use crate::{ModuleError, StorageConfig};

/// Opens the store a configuration names ([`HostConfig::storage`](crate::HostConfig::storage)).
///
/// Each backend crate is behind a cargo feature of this crate: `mem` for
/// `backend = "memory"`, `rocksdb` for `"rocksdb"` and `"mnesia"` (both on by default), and
/// the `postgres`, `mysql` or `sqlite` feature for `"rdbms"`, by the URL's scheme or the
/// pool's `driver`. A backend whose feature is off is [`ModuleError::BackendNotBuilt`],
/// naming the feature; a store that does not open is [`ModuleError::Open`], naming its path
/// or its database.
///
/// ```
/// use offline_module::{StorageConfig, open_backend};
///
/// # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
/// let store = open_backend(&StorageConfig::Memory).await?;
/// assert_eq!(store.name(), "mem");
/// # Ok::<(), offline_module::ModuleError>(())
/// # }).unwrap();
/// ```
pub async fn open_backend(storage: &StorageConfig) -> Result<Arc<dyn OfflineBackend>, ModuleError> {
    match storage {
        StorageConfig::Memory => memory(),
        StorageConfig::RocksDb(settings) => rocksdb(settings).await,
        StorageConfig::Rdbms(settings) => rdbms(settings).await,
    }
}

/// The store `storage` names, from `opened` if it is there already, else opened with
/// [`open_backend`] and kept in `opened`: the host types of one process that share a storage
/// configuration share one store (a RocksDB directory opens once per process).
pub async fn open_once(
    opened: &mut Vec<(StorageConfig, Arc<dyn OfflineBackend>)>,
    storage: &StorageConfig,
) -> Result<Arc<dyn OfflineBackend>, ModuleError> {
    if let Some((_, store)) = opened.iter().find(|(s, _)| s == storage) {
        return Ok(Arc::clone(store));
    }
    let store = open_backend(storage).await?;
    opened.push((storage.clone(), Arc::clone(&store)));
    Ok(store)
}

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
async fn rdbms(settings: &crate::RdbmsSettings) -> Result<Arc<dyn OfflineBackend>, ModuleError> {
    use offline_diesel::{DieselBackend, DieselConfig, OpenError};
    let defaults = DieselConfig::new(settings.connection.url());
    let config = DieselConfig {
        pool_size: settings.pool_size.map_or(defaults.pool_size, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        }),
        connect_timeout: settings.connect_timeout.unwrap_or(defaults.connect_timeout),
        checkout_timeout: settings
            .checkout_timeout
            .unwrap_or(defaults.checkout_timeout),
        ..defaults
    };
    match DieselBackend::connect(config).await {
        Ok(store) => Ok(Arc::new(store)),
        Err(OpenError::NotBuilt { feature, .. }) => Err(ModuleError::BackendNotBuilt {
            backend: "rdbms",
            feature,
        }),
        Err(other) => Err(ModuleError::Open(Box::new(other))),
    }
}

#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
async fn rdbms(settings: &crate::RdbmsSettings) -> Result<Arc<dyn OfflineBackend>, ModuleError> {
    Err(ModuleError::BackendNotBuilt {
        backend: "rdbms",
        feature: settings.connection.driver().feature(),
    })
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

#[cfg(feature = "rocksdb")]
async fn rocksdb(
    settings: &crate::RocksDbSettings,
) -> Result<Arc<dyn OfflineBackend>, ModuleError> {
    use offline_rocksdb::{Compression, RocksBackend, RocksConfig};
    let config = RocksConfig {
        path: settings.path.clone(),
        sync_writes: settings.sync_writes,
        block_cache_bytes: usize::try_from(settings.block_cache_bytes).unwrap_or(usize::MAX),
        write_buffer_bytes: usize::try_from(settings.write_buffer_bytes).unwrap_or(usize::MAX),
        max_open_files: settings.max_open_files,
        compression: if settings.compress {
            Compression::Lz4
        } else {
            Compression::None
        },
    };
    // Opening reads the directory: off the async workers.
    let opened = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime
            .spawn_blocking(move || RocksBackend::open(config))
            .await
            .map_err(|e| ModuleError::Open(Box::new(e)))?,
        Err(_) => RocksBackend::open(config),
    };
    Ok(Arc::new(
        opened.map_err(|e| ModuleError::Open(Box::new(e)))?,
    ))
}

#[cfg(not(feature = "rocksdb"))]
async fn rocksdb(
    _settings: &crate::RocksDbSettings,
) -> Result<Arc<dyn OfflineBackend>, ModuleError> {
    Err(ModuleError::BackendNotBuilt {
        backend: "rocksdb",
        feature: "rocksdb",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "mysql"))]
    #[tokio::test]
    async fn an_rdbms_driver_not_built_in_names_its_feature() {
        use crate::{RdbmsConnection, RdbmsDriver};
        let rdbms = StorageConfig::Rdbms(crate::RdbmsSettings {
            connection: RdbmsConnection::Url {
                driver: RdbmsDriver::Mysql,
                url: "mysql://root@127.0.0.1/test".into(),
            },
            pool_size: None,
            connect_timeout: None,
            checkout_timeout: None,
        });
        let err = open_backend(&rdbms).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend `rdbms` is not built in: enable the `mysql` feature of offline-module"
        );
    }

    #[cfg(feature = "mem")]
    #[tokio::test]
    async fn memory_opens_the_in_memory_backend() {
        let store = open_backend(&StorageConfig::Memory).await.unwrap();
        assert_eq!(store.name(), "mem");
    }

    #[cfg(feature = "rocksdb")]
    #[tokio::test(flavor = "multi_thread")]
    async fn rocksdb_opens_at_its_path_and_names_it_when_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::RocksDbSettings {
            path: dir.path().join("store"),
            ..Default::default()
        };
        let store = open_backend(&StorageConfig::RocksDb(settings.clone()))
            .await
            .unwrap();
        assert_eq!(store.name(), "rocksdb");
        let err = open_backend(&StorageConfig::RocksDb(settings))
            .await
            .unwrap_err();
        assert!(matches!(err, ModuleError::Open(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("store") && text.contains("locked"), "{text}");
    }

    #[cfg(not(feature = "rocksdb"))]
    #[tokio::test]
    async fn rocksdb_without_its_feature_names_it() {
        let err = open_backend(&StorageConfig::RocksDb(Default::default()))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend `rocksdb` is not built in: enable the `rocksdb` feature of offline-module"
        );
    }

    #[cfg(not(feature = "mem"))]
    #[tokio::test]
    async fn memory_without_its_feature_names_it() {
        let err = open_backend(&StorageConfig::Memory).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend `memory` is not built in: enable the `mem` feature of offline-module"
        );
    }
}
