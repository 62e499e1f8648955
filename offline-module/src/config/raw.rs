//! The file as written, and its resolution into [`OfflineConfig`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{
    BackendKind, ConfigError, HostConfig, ModuleOptions, OfflineConfig, RdbmsConnection,
    RdbmsDriver, RdbmsFields, RdbmsSettings, RocksDbSettings, RuleName, StorageConfig,
};
use offline_core::Domain;

use crate::stanza::{DEFAULT_MAX_DEPTH, MAX_DEPTH_LIMIT};
use crate::{AccessClause, AccessConfig, AccessValue, AclPattern, MetricNames};

type Classes = BTreeMap<String, Vec<AclPattern>>;
type Rules = BTreeMap<String, Vec<AccessClause>>;

#[derive(Deserialize)]
pub(super) struct RawConfig {
    #[serde(default)]
    general: RawGeneral,
    #[serde(default)]
    modules: RawModules,
    #[serde(default)]
    acl: Classes,
    #[serde(default)]
    access: Rules,
    #[serde(default)]
    outgoing_pools: RawPools,
    #[serde(default)]
    instrumentation: RawInstrumentation,
    #[serde(default)]
    host_config: Vec<RawHostConfig>,
}

#[derive(Default, Deserialize)]
struct RawGeneral {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    host_types: Vec<String>,
}

#[derive(Default, Deserialize)]
struct RawModules {
    mod_offline: Option<RawModOffline>,
    mod_offline_stub: Option<RawStub>,
}

/// `mod_offline_stub` takes no options.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStub {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModOffline {
    #[serde(default)]
    access_max_user_messages: RuleName,
    #[serde(default = "default_backend")]
    backend: BackendKind,
    #[serde(default)]
    store_groupchat_messages: bool,
    #[serde(default)]
    trust_sender_delay: bool,
    max_stanza_depth: Option<toml::Value>,
    rocksdb: Option<RawRocksDb>,
    rdbms: Option<RawRdbms>,
}

fn default_backend() -> BackendKind {
    BackendKind::Mnesia
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRocksDb {
    path: Option<PathBuf>,
    sync_writes: Option<bool>,
    block_cache_size: Option<i64>,
    write_buffer_size: Option<i64>,
    max_open_files: Option<i64>,
    compression: Option<String>,
}

impl RawRocksDb {
    /// The settings, with defaults for what is not written; `key` is where the table is.
    fn resolve(&self, key: &str) -> Result<RocksDbSettings, ConfigError> {
        let defaults = RocksDbSettings::default();
        let bytes = |name: &str, value: Option<i64>, default: u64| match value {
            None => Ok(default),
            Some(n) if (1 << 20..=1 << 40).contains(&n) => Ok(n as u64),
            Some(n) => Err(ConfigError::new(
                format!("{key}.{name}"),
                format!("{n} is not a size: expected bytes from 1 MiB (1048576) to 1 TiB"),
            )),
        };
        if self
            .path
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            return Err(ConfigError::new(
                format!("{key}.path"),
                "an empty path: expected the directory the store lives in",
            ));
        }
        let max_open_files = match self.max_open_files {
            None | Some(-1) => None,
            Some(n) => Some(u32::try_from(n).ok().filter(|&n| n >= 16).ok_or_else(|| {
                ConfigError::new(
                    format!("{key}.max_open_files"),
                    format!("{n} is not a file count: expected -1 (all) or at least 16"),
                )
            })?),
        };
        let compress = match self.compression.as_deref() {
            None | Some("lz4") => true,
            Some("none") => false,
            Some(other) => {
                return Err(ConfigError::new(
                    format!("{key}.compression"),
                    format!("unknown compression `{other}`, expected `lz4` or `none`"),
                ));
            }
        };
        Ok(RocksDbSettings {
            path: self.path.clone().unwrap_or(defaults.path),
            sync_writes: self.sync_writes.unwrap_or(defaults.sync_writes),
            block_cache_bytes: bytes(
                "block_cache_size",
                self.block_cache_size,
                defaults.block_cache_bytes,
            )?,
            write_buffer_bytes: bytes(
                "write_buffer_size",
                self.write_buffer_size,
                defaults.write_buffer_bytes,
            )?,
            max_open_files,
            compress,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRdbms {
    url: Option<String>,
    #[serde(default = "default_pool")]
    pool: String,
    pool_size: Option<u32>,
    connect_timeout: Option<i64>,
    checkout_timeout: Option<i64>,
}

impl RawRdbms {
    /// `rdbms.<name>`: milliseconds, from 1 to an hour.
    fn timeout(key: &str, name: &str, value: Option<i64>) -> Result<Option<Duration>, ConfigError> {
        match value {
            None => Ok(None),
            Some(ms @ 1..=3_600_000) => Ok(Some(Duration::from_millis(ms.unsigned_abs()))),
            Some(ms) => Err(ConfigError::new(
                format!("{key}.{name}"),
                format!("{ms} is not a timeout: expected milliseconds from 1 to 3600000"),
            )),
        }
    }
}

fn default_pool() -> String {
    "default".into()
}

/// `[outgoing_pools]`: only the RDBMS pools are read, and only the keys used here.
#[derive(Default, Deserialize)]
struct RawPools {
    #[serde(default)]
    rdbms: BTreeMap<String, RawPool>,
}

/// An outgoing pool, read as it is: only the pool `backend = "rdbms"` uses is checked, so
/// that pools of other drivers (ODBC, say) load as MongooseIM's own.
#[derive(Deserialize)]
struct RawPool {
    workers: Option<toml::Value>,
    connection: Option<toml::Table>,
}

/// The `connection` table of the pool in use.
#[derive(Deserialize)]
struct RawConnection {
    driver: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    database: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Default, Deserialize)]
struct RawInstrumentation {
    prometheus: Option<toml::Table>,
    exometer: Option<RawExometer>,
}

#[derive(Deserialize)]
struct RawExometer {
    #[serde(default)]
    all_metrics_are_global: bool,
}

/// A `[[host_config]]`: only the sections offline storage reads.
#[derive(Deserialize)]
struct RawHostConfig {
    host: Option<String>,
    host_type: Option<String>,
    modules: Option<RawModules>,
    #[serde(default)]
    acl: Classes,
    #[serde(default)]
    access: Rules,
    #[serde(default)]
    outgoing_pools: RawPools,
}

/// The sections one host type's configuration is made of, each with the key it came from.
struct Sections<'a> {
    modules: (&'a RawModules, String),
    access: AccessConfig,
    /// Where the clauses of each access rule are written (`access` or `host_config[i].access`).
    rule_sources: Vec<(&'a Rules, String)>,
    pools: BTreeMap<&'a str, (&'a RawPool, String)>,
}

impl RawConfig {
    pub(super) fn resolve(self) -> Result<OfflineConfig, ConfigError> {
        let hosts = self
            .general
            .hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                Domain::new(host)
                    .map_err(|e| ConfigError::new(format!("general.hosts[{i}]"), e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let metric_names = match (
            &self.instrumentation.prometheus,
            &self.instrumentation.exometer,
        ) {
            (None, Some(exometer)) => MetricNames::Exometer {
                all_metrics_are_global: exometer.all_metrics_are_global,
            },
            _ => MetricNames::Prometheus,
        };
        let top = Sections {
            modules: (&self.modules, "modules".into()),
            access: AccessConfig {
                acl: self.acl.clone(),
                access: self.access.clone(),
            },
            rule_sources: vec![(&self.access, "access".into())],
            pools: pools(&self.outgoing_pools, "outgoing_pools"),
        };
        let mut host_configs = BTreeMap::new();
        for (i, raw) in self.host_config.iter().enumerate() {
            let key = format!("host_config[{i}]");
            let name = host_config_name(raw, &key)?;
            let sections = top.merged_with(raw, &key);
            if host_configs.insert(name, sections.resolve()?).is_some() {
                return Err(ConfigError::new(
                    key,
                    "a second host_config for the same host",
                ));
            }
        }
        Ok(OfflineConfig {
            hosts,
            host_types: self.general.host_types,
            metric_names,
            global: top.resolve()?,
            host_configs,
        })
    }
}

/// The host or host type a `[[host_config]]` is for.
fn host_config_name(raw: &RawHostConfig, key: &str) -> Result<String, ConfigError> {
    match (&raw.host, &raw.host_type) {
        (Some(host), None) => Domain::new(host)
            .map(|domain| domain.as_str().to_owned())
            .map_err(|e| ConfigError::new(format!("{key}.host"), e.to_string())),
        (None, Some(host_type)) => Ok(host_type.clone()),
        _ => Err(ConfigError::new(
            key,
            "needs exactly one of `host` and `host_type`",
        )),
    }
}

fn pools<'a>(raw: &'a RawPools, key: &str) -> BTreeMap<&'a str, (&'a RawPool, String)> {
    raw.rdbms
        .iter()
        .map(|(tag, pool)| (tag.as_str(), (pool, format!("{key}.rdbms.{tag}"))))
        .collect()
}

impl<'a> Sections<'a> {
    /// These sections with a `[[host_config]]`'s merged in, as MongooseIM merges them.
    fn merged_with(&self, raw: &'a RawHostConfig, key: &str) -> Sections<'a> {
        let modules = match &raw.modules {
            Some(modules) => (modules, format!("{key}.modules")),
            None => (self.modules.0, self.modules.1.clone()),
        };
        let mut acl = self.access.acl.clone();
        for (class, patterns) in &raw.acl {
            acl.entry(class.clone())
                .or_default()
                .extend(patterns.iter().cloned());
        }
        let mut access = self.access.access.clone();
        for (rule, clauses) in &raw.access {
            let merged = access.entry(rule.clone()).or_default();
            let allow_all = AccessClause {
                acl: "all".into(),
                value: AccessValue::Text("allow".into()),
            };
            let catch_all = (merged.last() == Some(&allow_all)).then(|| merged.pop());
            merged.extend(clauses.iter().cloned());
            merged.extend(catch_all.flatten());
        }
        let mut rule_sources = self.rule_sources.clone();
        rule_sources.push((&raw.access, format!("{key}.access")));
        let mut pools_by_tag = self.pools.clone();
        pools_by_tag.extend(pools(&raw.outgoing_pools, &format!("{key}.outgoing_pools")));
        Sections {
            modules,
            access: AccessConfig { acl, access },
            rule_sources,
            pools: pools_by_tag,
        }
    }

    fn resolve(&self) -> Result<HostConfig, ConfigError> {
        let (modules, modules_key) = &self.modules;
        let (module, storage) = match &modules.mod_offline {
            Some(raw) => {
                self.check_quota_rule(&raw.access_max_user_messages)?;
                let storage = self.storage(raw, &format!("{modules_key}.mod_offline"))?;
                let module_key = format!("{modules_key}.mod_offline");
                let options = ModuleOptions {
                    access_max_user_messages: raw.access_max_user_messages.clone(),
                    backend: raw.backend,
                    store_groupchat_messages: raw.store_groupchat_messages,
                    trust_sender_delay: raw.trust_sender_delay,
                    max_stanza_depth: max_stanza_depth(&raw.max_stanza_depth, &module_key)?,
                };
                (Some(options), Some(storage))
            }
            None => (None, None),
        };
        Ok(HostConfig {
            module,
            stub: modules.mod_offline_stub.is_some(),
            access: self.access.clone(),
            storage,
        })
    }

    /// The quota rule's values must be limits: non-negative integers or `"infinity"`.
    fn check_quota_rule(&self, rule: &RuleName) -> Result<(), ConfigError> {
        for (rules, key) in &self.rule_sources {
            let clauses = rules.get(rule.as_str()).map_or(&[][..], Vec::as_slice);
            for (i, clause) in clauses.iter().enumerate() {
                let problem = match &clause.value {
                    AccessValue::Integer(limit) if *limit < 0 => {
                        format!("{limit} is not a message limit: it must not be negative")
                    }
                    AccessValue::Text(word) if word != "infinity" => format!(
                        "`{word}` is not a message limit: expected a non-negative integer or \
                         \"infinity\""
                    ),
                    _ => continue,
                };
                return Err(ConfigError::new(
                    format!("{key}.{}[{i}].value", rule.as_str()),
                    problem,
                ));
            }
        }
        Ok(())
    }

    /// Where the configured backend keeps its data; `module_key` is where `raw` is written.
    fn storage(&self, raw: &RawModOffline, module_key: &str) -> Result<StorageConfig, ConfigError> {
        // Checked whatever the backend, so that a mistake shows before the backend changes.
        let key = format!("{module_key}.rocksdb");
        let rocksdb = match &raw.rocksdb {
            Some(rocksdb) => rocksdb.resolve(&key)?,
            None => RawRocksDb::default().resolve(&key)?,
        };
        match raw.backend {
            BackendKind::Memory => Ok(StorageConfig::Memory),
            BackendKind::Mnesia | BackendKind::RocksDb => Ok(StorageConfig::RocksDb(rocksdb)),
            BackendKind::Rdbms => {
                let key = format!("{module_key}.rdbms");
                let (tag, url, pool_size, connect_timeout, checkout_timeout) = match &raw.rdbms {
                    Some(rdbms) => (
                        rdbms.pool.as_str(),
                        rdbms.url.clone(),
                        rdbms.pool_size,
                        RawRdbms::timeout(&key, "connect_timeout", rdbms.connect_timeout)?,
                        RawRdbms::timeout(&key, "checkout_timeout", rdbms.checkout_timeout)?,
                    ),
                    None => ("default", None, None, None, None),
                };
                if pool_size == Some(0) {
                    return Err(ConfigError::new(
                        format!("{key}.pool_size"),
                        "0 connections: expected at least 1",
                    ));
                }
                let settings = |connection, pool_size| {
                    StorageConfig::Rdbms(RdbmsSettings {
                        connection,
                        pool_size,
                        connect_timeout,
                        checkout_timeout,
                    })
                };
                if let Some(url) = url {
                    let driver = RdbmsDriver::of_url(&url).ok_or_else(|| {
                        ConfigError::new(
                            format!("{module_key}.rdbms.url"),
                            "expected a postgres://, postgresql://, mysql://, mariadb:// or \
                             sqlite:// URL",
                        )
                    })?;
                    return Ok(settings(RdbmsConnection::Url { driver, url }, pool_size));
                }
                let pool = self.pools.get(tag);
                let Some(((connection, workers), key)) = pool.and_then(|(pool, key)| {
                    let connection = pool.connection.as_ref()?;
                    Some(((connection, &pool.workers), key))
                }) else {
                    return Err(ConfigError::new(
                        format!("outgoing_pools.rdbms.{tag}.connection"),
                        format!(
                            "required when backend = \"rdbms\" and {module_key}.rdbms.url is not set"
                        ),
                    ));
                };
                let fields = fields(connection, &format!("{key}.connection"))?;
                Ok(settings(
                    RdbmsConnection::Fields(fields),
                    pool_size.or(pool_workers(workers, key)?),
                ))
            }
        }
    }
}

/// `max_stanza_depth`: an integer between 2 (a message and its body) and
/// [`MAX_DEPTH_LIMIT`].
fn max_stanza_depth(raw: &Option<toml::Value>, module_key: &str) -> Result<usize, ConfigError> {
    let depth = match raw {
        None => return Ok(DEFAULT_MAX_DEPTH),
        Some(toml::Value::Integer(depth)) => usize::try_from(*depth).ok(),
        Some(_) => None,
    };
    match depth {
        Some(depth) if (2..=MAX_DEPTH_LIMIT).contains(&depth) => Ok(depth),
        _ => Err(ConfigError::new(
            format!("{module_key}.max_stanza_depth"),
            format!(
                "{} is not a depth limit: expected an integer from 2 to {MAX_DEPTH_LIMIT}",
                raw.as_ref().map_or(String::new(), ToString::to_string)
            ),
        )),
    }
}

/// The `workers` of the outgoing pool written at `key`: connections in its pool.
fn pool_workers(workers: &Option<toml::Value>, key: &str) -> Result<Option<u32>, ConfigError> {
    match workers {
        None => Ok(None),
        Some(toml::Value::Integer(n)) if *n >= 1 => Ok(Some(u32::try_from(*n).unwrap_or(u32::MAX))),
        Some(other) => Err(ConfigError::new(
            format!("{key}.workers"),
            format!("{other} is not a pool size: expected an integer of at least 1"),
        )),
    }
}

/// The connection fields of the `connection` table written at `key`.
fn fields(table: &toml::Table, key: &str) -> Result<RdbmsFields, ConfigError> {
    // In MongooseIM a `tls` table turns TLS on, falling back to a clear connection unless
    // `required = true`. The store has no TLS yet: it refuses what must not fall back and
    // warns about the rest.
    if let Some(tls) = table.get("tls") {
        if tls.get("required").and_then(toml::Value::as_bool) == Some(true) {
            return Err(ConfigError::new(
                format!("{key}.tls.required"),
                "TLS to the database is not supported by the offline store yet: connect over \
                 a trusted network or a local socket, and remove tls.required",
            ));
        }
        tracing::warn!(
            key = %format!("{key}.tls"),
            "the offline store connects to the database without TLS, which it does not \
             support yet (tls.required is not set, so MongooseIM would fall back too)"
        );
    }
    let connection: RawConnection = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::new(key, e.message().trim_end()))?;
    let driver = connection
        .driver
        .clone()
        .ok_or_else(|| ConfigError::new(format!("{key}.driver"), "required"))?;
    let driver = RdbmsDriver::try_from(driver)
        .map_err(|reason| ConfigError::new(format!("{key}.driver"), reason))?;
    let required = |name: &str, value: &Option<String>| {
        value
            .clone()
            .ok_or_else(|| ConfigError::new(format!("{key}.{name}"), "required"))
    };
    Ok(RdbmsFields {
        driver,
        host: required("host", &connection.host)?,
        port: connection.port,
        database: required("database", &connection.database)?,
        username: required("username", &connection.username)?,
        password: connection.password.clone().unwrap_or_default(),
    })
}
