//! MongooseIM's TOML configuration, as far as offline storage reads it.
//!
//! A MongooseIM configuration file loads as it is: unrelated sections are ignored, while the
//! sections this crate owns (`[modules.mod_offline]`, `[modules.mod_offline_stub]`, `[acl]`,
//! `[access]`) are checked strictly, and every error names the key at fault.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{AccessClause, AccessConfig, AccessValue, AclPattern, Domain, MetricNames};

/// A configuration error, naming the key at fault (empty for a file that is not valid TOML).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if key.is_empty() { String::new() } else { format!("`{key}`: ") })]
pub struct ConfigError {
    /// The dotted path of the key, e.g. `modules.mod_offline.backend`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Everything offline storage reads from a MongooseIM configuration file.
///
/// ```
/// use offline_core::{BackendKind, OfflineConfig, StorageConfig};
///
/// let config = OfflineConfig::from_toml_str(r#"
///     [general]
///       hosts = ["localhost"]
///     [modules.mod_offline]
///       backend = "mnesia"
///       store_groupchat_messages = true
///     [access]
///       max_user_offline_messages = [{acl = "all", value = 100}]
/// "#)?;
/// let module = config.module.expect("mod_offline is configured");
/// assert_eq!(module.access_max_user_messages.as_str(), "max_user_offline_messages");
/// assert_eq!(module.backend, BackendKind::Mem);
/// assert!(module.store_groupchat_messages);
/// assert_eq!(config.storage, Some(StorageConfig::Mem));
///
/// let err = OfflineConfig::from_toml_str("[modules.mod_offline]\nbackend = \"frontend\"").unwrap_err();
/// assert_eq!(err.key, "modules.mod_offline.backend");
/// # Ok::<(), offline_core::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct OfflineConfig {
    /// `general.hosts`: the static domains, each its own host type.
    pub hosts: Vec<Domain>,
    /// `general.host_types`: host types whose domains are added at run time.
    pub host_types: Vec<String>,
    /// `[modules.mod_offline]`, if the module is enabled.
    pub module: Option<ModuleOptions>,
    /// Whether `[modules.mod_offline_stub]` is enabled.
    pub stub: bool,
    /// `[acl]` and `[access]`.
    pub access: AccessConfig,
    /// Where the module's backend keeps messages, when the module is enabled.
    pub storage: Option<StorageConfig>,
    /// How metrics are named: Exometer-style when `[instrumentation.exometer]` is configured
    /// without `[instrumentation.prometheus]`, Prometheus-style otherwise.
    pub metric_names: MetricNames,
}

/// The behaviour options of `[modules.mod_offline]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleOptions {
    /// `access_max_user_messages`: the access rule giving each user's message limit.
    pub access_max_user_messages: RuleName,
    /// `backend`: which backend stores the messages.
    pub backend: BackendKind,
    /// `store_groupchat_messages`: store `type="groupchat"` messages too.
    pub store_groupchat_messages: bool,
    /// `trust_sender_delay`: stamp a message with its sender's valid XEP-0203 `<delay/>`
    /// instead of the time it was stored (MongooseIM does; off by default).
    pub trust_sender_delay: bool,
}

impl Default for ModuleOptions {
    fn default() -> Self {
        Self {
            access_max_user_messages: RuleName::default(),
            backend: BackendKind::Mem,
            store_groupchat_messages: false,
            trust_sender_delay: false,
        }
    }
}

/// The name of an access rule: a non-empty string.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RuleName(String);

impl RuleName {
    /// The rule's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RuleName {
    fn default() -> Self {
        Self("max_user_offline_messages".into())
    }
}

impl TryFrom<String> for RuleName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        if name.is_empty() {
            Err("an access rule name must not be empty".into())
        } else {
            Ok(Self(name))
        }
    }
}

/// The `backend` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum BackendKind {
    /// `"mnesia"` (MongooseIM's name) or `"mem"`: in memory, lost on restart.
    Mem,
    /// `"rocksdb"`: embedded and persistent.
    RocksDb,
    /// `"rdbms"`: PostgreSQL, MySQL/MariaDB or SQLite.
    Rdbms,
}

impl TryFrom<String> for BackendKind {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "mnesia" | "mem" => Ok(Self::Mem),
            "rocksdb" => Ok(Self::RocksDb),
            "rdbms" => Ok(Self::Rdbms),
            other => Err(format!(
                "unknown backend `{other}`, expected one of `mnesia`, `mem`, `rocksdb`, `rdbms`"
            )),
        }
    }
}

/// Where a backend keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageConfig {
    /// In memory.
    Mem,
    /// A RocksDB directory (`modules.mod_offline.rocksdb.path`).
    RocksDb {
        /// The database directory.
        path: PathBuf,
    },
    /// A relational database.
    Rdbms {
        /// How to connect.
        connection: RdbmsConnection,
        /// Connections in the pool (`modules.mod_offline.rdbms.pool_size`, else the
        /// outgoing pool's `workers`), if set.
        pool_size: Option<u32>,
    },
}

/// How to reach a relational database.
#[derive(Clone, PartialEq, Eq)]
pub enum RdbmsConnection {
    /// `modules.mod_offline.rdbms.url`, e.g. `postgres://user@host/db`.
    Url(String),
    /// MongooseIM's `[outgoing_pools.rdbms.<pool>.connection]` table.
    Fields(RdbmsFields),
}

impl fmt::Debug for RdbmsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(_) => f.write_str("Url(<redacted>)"),
            Self::Fields(fields) => f.debug_tuple("Fields").field(fields).finish(),
        }
    }
}

/// The fields of a MongooseIM RDBMS connection table.
#[derive(Clone, PartialEq, Eq)]
pub struct RdbmsFields {
    /// `driver`.
    pub driver: RdbmsDriver,
    /// `host`.
    pub host: String,
    /// `port`, if not the driver's default.
    pub port: Option<u16>,
    /// `database`.
    pub database: String,
    /// `username`.
    pub username: String,
    /// `password`.
    pub password: String,
}

impl fmt::Debug for RdbmsFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdbmsFields")
            .field("driver", &self.driver)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A MongooseIM RDBMS `driver`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum RdbmsDriver {
    /// `"pgsql"`: PostgreSQL.
    Pgsql,
    /// `"mysql"`: MySQL or MariaDB.
    Mysql,
}

impl TryFrom<String> for RdbmsDriver {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "pgsql" => Ok(Self::Pgsql),
            "mysql" => Ok(Self::Mysql),
            other => Err(format!(
                "unknown driver `{other}`, expected `pgsql` or `mysql`"
            )),
        }
    }
}

impl OfflineConfig {
    /// Parses a configuration file's text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::new("", e.to_string().trim_end()))?;
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::new(e.path().to_string(), e.inner().message()))?;
        raw.resolve()
    }

    /// Reads and parses a configuration file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml_str(&text)
    }
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    general: RawGeneral,
    #[serde(default)]
    modules: RawModules,
    #[serde(default)]
    acl: BTreeMap<String, Vec<AclPattern>>,
    #[serde(default)]
    access: BTreeMap<String, Vec<AccessClause>>,
    #[serde(default)]
    outgoing_pools: RawPools,
    #[serde(default)]
    instrumentation: RawInstrumentation,
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
    rocksdb: Option<RawRocksDb>,
    rdbms: Option<RawRdbms>,
}

fn default_backend() -> BackendKind {
    BackendKind::Mem
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRocksDb {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRdbms {
    url: Option<String>,
    #[serde(default = "default_pool")]
    pool: String,
    pool_size: Option<u32>,
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

#[derive(Deserialize)]
struct RawPool {
    workers: Option<u32>,
    connection: Option<RawConnection>,
}

#[derive(Deserialize)]
struct RawConnection {
    driver: Option<RdbmsDriver>,
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

impl RawConfig {
    fn resolve(self) -> Result<OfflineConfig, ConfigError> {
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
        let access = AccessConfig {
            acl: self.acl,
            access: self.access,
        };
        let (module, storage) = match self.modules.mod_offline {
            Some(raw) => {
                check_limits(&access, &raw.access_max_user_messages)?;
                let storage = storage(&raw, &self.outgoing_pools)?;
                let options = ModuleOptions {
                    access_max_user_messages: raw.access_max_user_messages,
                    backend: raw.backend,
                    store_groupchat_messages: raw.store_groupchat_messages,
                    trust_sender_delay: raw.trust_sender_delay,
                };
                (Some(options), Some(storage))
            }
            None => (None, None),
        };
        Ok(OfflineConfig {
            hosts,
            host_types: self.general.host_types,
            module,
            stub: self.modules.mod_offline_stub.is_some(),
            access,
            storage,
            metric_names,
        })
    }
}

/// The limits of the module's quota rule must not be negative.
fn check_limits(access: &AccessConfig, rule: &RuleName) -> Result<(), ConfigError> {
    let clauses = access
        .access
        .get(rule.as_str())
        .map_or(&[][..], Vec::as_slice);
    for (i, clause) in clauses.iter().enumerate() {
        if let AccessValue::Integer(limit) = clause.value
            && limit < 0
        {
            return Err(ConfigError::new(
                format!("access.{}[{i}].value", rule.as_str()),
                format!("{limit} is not a message limit: it must not be negative"),
            ));
        }
    }
    Ok(())
}

/// Where the configured backend keeps its data.
fn storage(raw: &RawModOffline, pools: &RawPools) -> Result<StorageConfig, ConfigError> {
    const MODULE: &str = "modules.mod_offline";
    match raw.backend {
        BackendKind::Mem => Ok(StorageConfig::Mem),
        BackendKind::RocksDb => match &raw.rocksdb {
            Some(rocksdb) => Ok(StorageConfig::RocksDb {
                path: rocksdb.path.clone(),
            }),
            None => Err(ConfigError::new(
                format!("{MODULE}.rocksdb.path"),
                "required when backend = \"rocksdb\"",
            )),
        },
        BackendKind::Rdbms => {
            let (pool_name, url, pool_size) = match &raw.rdbms {
                Some(rdbms) => (rdbms.pool.as_str(), rdbms.url.clone(), rdbms.pool_size),
                None => ("default", None, None),
            };
            if let Some(url) = url {
                return Ok(StorageConfig::Rdbms {
                    connection: RdbmsConnection::Url(url),
                    pool_size,
                });
            }
            let key = format!("outgoing_pools.rdbms.{pool_name}.connection");
            let pool = pools.rdbms.get(pool_name);
            let Some(connection) = pool.and_then(|p| p.connection.as_ref()) else {
                return Err(ConfigError::new(
                    key,
                    format!("required when backend = \"rdbms\" and {MODULE}.rdbms.url is not set"),
                ));
            };
            let field = |name: &str, value: &Option<String>| {
                value
                    .clone()
                    .ok_or_else(|| ConfigError::new(format!("{key}.{name}"), "required"))
            };
            let fields = RdbmsFields {
                driver: connection
                    .driver
                    .ok_or_else(|| ConfigError::new(format!("{key}.driver"), "required"))?,
                host: field("host", &connection.host)?,
                port: connection.port,
                database: field("database", &connection.database)?,
                username: field("username", &connection.username)?,
                password: connection.password.clone().unwrap_or_default(),
            };
            Ok(StorageConfig::Rdbms {
                connection: RdbmsConnection::Fields(fields),
                pool_size: pool_size.or(pool.and_then(|p| p.workers)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(toml: &str) -> ConfigError {
        OfflineConfig::from_toml_str(toml).unwrap_err()
    }

    #[test]
    fn defaults_are_mongooseims() {
        let config = OfflineConfig::from_toml_str("[modules.mod_offline]").unwrap();
        assert_eq!(config.module, Some(ModuleOptions::default()));
        assert_eq!(config.storage, Some(StorageConfig::Mem));
        assert!(!config.stub);
        assert_eq!(config.metric_names, MetricNames::Prometheus);
        let absent = OfflineConfig::from_toml_str("").unwrap();
        assert_eq!((absent.module, absent.storage), (None, None));
    }

    #[test]
    fn wrong_values_name_their_key() {
        let cases = [
            (
                "[modules.mod_offline]\nbackend = \"frontend\"",
                "modules.mod_offline.backend",
                "unknown backend `frontend`",
            ),
            (
                "[modules.mod_offline]\nbackend = 1",
                "modules.mod_offline.backend",
                "invalid type: integer `1`",
            ),
            (
                "[modules.mod_offline]\naccess_max_user_messages = \"\"",
                "modules.mod_offline.access_max_user_messages",
                "must not be empty",
            ),
            (
                "[modules.mod_offline]\naccess_max_user_messages = 1",
                "modules.mod_offline.access_max_user_messages",
                "invalid type: integer `1`, expected a string",
            ),
            (
                "[modules.mod_offline]\nstore_groupchat_messages = \"yes\"",
                "modules.mod_offline.store_groupchat_messages",
                "expected a boolean",
            ),
            (
                "[modules.mod_offline]\nmax_messages = 5",
                "modules.mod_offline.max_messages",
                "unknown field `max_messages`",
            ),
            (
                "[modules.mod_offline_stub]\nanything = true",
                "modules.mod_offline_stub.anything",
                "unknown field `anything`",
            ),
            (
                "[modules.mod_offline]\nbackend = \"rocksdb\"",
                "modules.mod_offline.rocksdb.path",
                "required",
            ),
            (
                "[modules.mod_offline]\nbackend = \"rdbms\"",
                "outgoing_pools.rdbms.default.connection",
                "required",
            ),
            (
                "[general]\nhosts = [\"ok\", \"not ok\"]",
                "general.hosts[1]",
                "not a valid JID",
            ),
            (
                "[access]\nmax_user_offline_messages = [{acl = \"all\"}]",
                "access.max_user_offline_messages[0]",
                "missing field `value`",
            ),
            (
                "[modules.mod_offline]\n[access]\nmax_user_offline_messages = [{acl = \"all\", value = -1}]",
                "access.max_user_offline_messages[0].value",
                "must not be negative",
            ),
        ];
        for (toml, key, message) in cases {
            let err = error(toml);
            assert_eq!(err.key, key, "{toml}: {err}");
            assert!(err.message.contains(message), "{toml}: {err}");
            assert!(err.to_string().starts_with(&format!("`{key}`: ")), "{err}");
        }
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = error("[modules.mod_offline\nbackend = 1");
        assert_eq!(err.key, "");
        assert!(err.message.contains("line 1"), "{err}");
    }

    #[test]
    fn rdbms_from_url_or_mongooseim_pool() {
        let url = OfflineConfig::from_toml_str(
            "[modules.mod_offline]\nbackend = \"rdbms\"\nrdbms.url = \"postgres://u@h/db\"\nrdbms.pool_size = 4",
        )
        .unwrap();
        assert_eq!(
            url.storage,
            Some(StorageConfig::Rdbms {
                connection: RdbmsConnection::Url("postgres://u@h/db".into()),
                pool_size: Some(4),
            })
        );
        let pool = OfflineConfig::from_toml_str(
            r#"
            [modules.mod_offline]
              backend = "rdbms"
            [outgoing_pools.rdbms.default]
              scope = "global"
              workers = 5
              [outgoing_pools.rdbms.default.connection]
                driver = "pgsql"
                host = "localhost"
                database = "mongooseim"
                username = "mongooseim"
                password = "mongooseim_secret"
                tls.required = true
            [outgoing_pools.redis.global_distrib]
              scope = "global"
            "#,
        )
        .unwrap();
        let Some(StorageConfig::Rdbms {
            connection,
            pool_size,
        }) = pool.storage
        else {
            panic!("{:?}", pool.storage);
        };
        assert_eq!(pool_size, Some(5));
        let shown = format!("{connection:?}");
        assert!(
            shown.contains("mongooseim") && !shown.contains("secret"),
            "{shown}"
        );
    }

    #[test]
    fn exometer_names_when_only_exometer_is_configured() {
        let config = OfflineConfig::from_toml_str(
            "[instrumentation.exometer]\nall_metrics_are_global = true",
        )
        .unwrap();
        assert_eq!(
            config.metric_names,
            MetricNames::Exometer {
                all_metrics_are_global: true
            }
        );
        let both = OfflineConfig::from_toml_str(
            "[instrumentation.exometer]\n[instrumentation.prometheus]",
        )
        .unwrap();
        assert_eq!(both.metric_names, MetricNames::Prometheus);
    }
}
