//! What the admin commands act on: the store the configuration names for a domain (or the
//! embedded RocksDB under `./data` without a configuration), and `mod_offline` over it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use offline_module::offline_core::{Domain, OfflineBackend};
use offline_module::{
    ModuleError, OfflineConfig, OfflineModule, RocksDbSettings, StorageConfig, open_once,
};

use crate::error::CliError;

/// The configuration file read when `--config` is not given, if it exists.
pub(crate) const DEFAULT_CONFIG: &str = "offline.toml";

/// The configuration the commands run under.
pub(crate) struct Target {
    /// The configuration and its file; `None`: the embedded RocksDB store under `./data`.
    config: Option<(OfflineConfig, PathBuf)>,
    /// The stores opened so far: domains sharing a storage configuration share a store (a
    /// RocksDB directory opens once per process).
    stores: Vec<(StorageConfig, Arc<dyn OfflineBackend>)>,
}

/// Refuses a store `offlinectl` cannot act on: the memory store (it lives inside the
/// server's process) and, when the store must be there already, a RocksDB directory that is
/// not (a mistyped path would otherwise open a new, empty store). `config` is the file that
/// names it.
pub(crate) fn usable(
    storage: &StorageConfig,
    config: &Path,
    must_exist: bool,
) -> Result<(), CliError> {
    let refused = |why: String| Err(CliError::Usage(format!("{}: {why}", config.display())));
    match storage {
        StorageConfig::Memory => refused(
            "backend \"memory\" lives inside the server's process: offlinectl cannot reach it"
                .into(),
        ),
        StorageConfig::RocksDb(settings) if must_exist && !settings.path.exists() => {
            refused(format!(
                "no store at {} (modules.mod_offline.rocksdb.path)",
                settings.path.display()
            ))
        }
        _ => Ok(()),
    }
}

/// A domain's store and the module serving the domain on it.
pub(crate) struct Opened {
    /// The store.
    pub(crate) store: Arc<dyn OfflineBackend>,
    /// `mod_offline` for the domain, on that store.
    pub(crate) module: OfflineModule,
}

impl Target {
    /// Reads `config` (given with `--config`), or `./offline.toml` when it exists; with
    /// neither, the commands act on the embedded RocksDB store under `./data`.
    pub(crate) fn load(config: Option<&Path>) -> Result<Self, CliError> {
        let path = match config {
            Some(path) => Some(path.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
        };
        let config = match path {
            Some(path) => match OfflineConfig::from_file(&path) {
                Ok(config) => Some((config, path)),
                Err(source) => return Err(CliError::Config { path, source }),
            },
            None => None,
        };
        Ok(Self {
            config,
            stores: Vec::new(),
        })
    }

    /// The domains of `general.hosts` with `mod_offline` enabled; none without a configuration.
    pub(crate) fn hosts(&self) -> Vec<Domain> {
        let Some((config, _)) = &self.config else {
            return Vec::new();
        };
        config
            .hosts
            .iter()
            .filter(|host| config.for_host(host.as_str()).storage.is_some())
            .cloned()
            .collect()
    }

    /// Opens the store holding `domain`'s messages and `mod_offline` serving `domain` on it:
    /// the host type of `general.hosts` that is `domain`, or `host_type` (one of
    /// `general.host_types`) with `domain` added. Without a configuration, the embedded
    /// RocksDB store, for any domain.
    pub(crate) async fn open(
        &mut self,
        domain: &Domain,
        host_type: Option<&str>,
    ) -> Result<Opened, CliError> {
        let unknown = |why: String| CliError::UnknownDomain {
            domain: domain.to_string(),
            why,
        };
        let Some((config, path)) = &self.config else {
            if let Some(host_type) = host_type {
                return Err(CliError::Usage(format!(
                    "--host-type {host_type}: host types come from a configuration \
                     ({DEFAULT_CONFIG} or --config)"
                )));
            }
            // No configuration names the domains: any is taken.
            let settings = RocksDbSettings::default();
            if !settings.path.exists() {
                return Err(CliError::Usage(format!(
                    "no configuration ({DEFAULT_CONFIG} or --config) and no store under ./{}",
                    settings.path.display()
                )));
            }
            let store = open_once(&mut self.stores, &StorageConfig::RocksDb(settings)).await?;
            // Without a configuration, each domain is its own host type.
            let module = OfflineModule::builder(domain.as_str(), Arc::clone(&store))
                .domain(domain.clone())
                .build()
                .await?;
            return Ok(Opened { store, module });
        };
        let host = match host_type {
            Some(host_type) if config.host_types.iter().any(|t| t == host_type) => host_type,
            Some(host_type) => {
                return Err(unknown(format!(
                    "`{host_type}` is not in general.host_types"
                )));
            }
            None if config.hosts.contains(domain) => domain.as_str(),
            None => {
                return Err(unknown(
                    "not in general.hosts (for a domain of general.host_types, name its host \
                     type with --host-type)"
                        .to_owned(),
                ));
            }
        };
        let storage = config
            .for_host(host)
            .storage
            .clone()
            .ok_or_else(|| unknown(format!("mod_offline is not enabled for `{host}`")))?;
        usable(&storage, path, true)?;
        let store = open_once(&mut self.stores, &storage).await?;
        let module = OfflineModule::from_config(host, config)
            .map_err(ModuleError::from)?
            .store(Arc::clone(&store))
            .build()
            .await?;
        module.add_domain(domain.clone());
        Ok(Opened { store, module })
    }
}
