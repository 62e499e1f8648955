//! MongooseIM's TOML configuration, as far as offline storage reads it.
//!
//! A MongooseIM configuration file loads as it is: unrelated sections are ignored, while the
//! sections this crate owns (`[modules.mod_offline]`, `[modules.mod_offline_stub]`, `[acl]`,
//! `[access]`, and the same inside `[[host_config]]`) are checked strictly, and every error
//! names the key at fault.

mod raw;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use offline_core::Domain;

use crate::{AccessConfig, MetricNames};
use raw::RawConfig;

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
    /// An error about `key`, for a server that reads sections of its own from the same file.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Everything offline storage reads from a MongooseIM configuration file.
///
/// ```
/// use offline_module::{BackendKind, OfflineConfig, StorageConfig};
///
/// let config = OfflineConfig::from_toml_str(r#"
///     [general]
///       hosts = ["localhost", "example.com"]
///     [modules.mod_offline]
///       backend = "memory"
///       store_groupchat_messages = true
///     [access]
///       max_user_offline_messages = [{acl = "all", value = 100}]
///     [[host_config]]
///       host = "example.com"
///       [host_config.modules.mod_offline_stub]
/// "#)?;
/// let localhost = config.for_host("localhost");
/// let module = localhost.module.as_ref().expect("mod_offline is configured");
/// assert_eq!(module.access_max_user_messages.as_str(), "max_user_offline_messages");
/// assert_eq!(module.backend, BackendKind::Memory);
/// assert!(module.store_groupchat_messages);
/// assert_eq!(localhost.storage, Some(StorageConfig::Memory));
/// // host_config.modules replaces the top-level modules for example.com.
/// assert!(config.for_host("example.com").module.is_none());
/// assert!(config.for_host("example.com").stub);
///
/// let err = OfflineConfig::from_toml_str("[modules.mod_offline]\nbackend = \"frontend\"").unwrap_err();
/// assert_eq!(err.key, "modules.mod_offline.backend");
/// # Ok::<(), offline_module::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct OfflineConfig {
    /// `general.hosts`: the static domains, each its own host type.
    pub hosts: Vec<Domain>,
    /// `general.host_types`: host types whose domains are added at run time.
    pub host_types: Vec<String>,
    /// How metrics are named: Exometer-style when `[instrumentation.exometer]` is configured
    /// without `[instrumentation.prometheus]`, Prometheus-style otherwise.
    pub metric_names: MetricNames,
    /// The top-level sections: what a host type gets without a `[[host_config]]` of its own.
    pub global: HostConfig,
    /// Each `[[host_config]]`, by its `host` or `host_type`, merged with the top level as
    /// MongooseIM merges it: `modules` replaces the top-level modules, `acl` classes are
    /// united, `access` rules are extended (before a trailing `{acl = "all", value = "allow"}`),
    /// RDBMS pools of the same tag are replaced.
    pub host_configs: BTreeMap<String, HostConfig>,
}

/// What offline storage reads for one host type.
#[derive(Clone, Debug, Default)]
pub struct HostConfig {
    /// `[modules.mod_offline]`, if the module is enabled.
    pub module: Option<ModuleOptions>,
    /// Whether `[modules.mod_offline_stub]` is enabled.
    pub stub: bool,
    /// `[acl]` and `[access]`.
    pub access: AccessConfig,
    /// Where the module's backend keeps messages, when the module is enabled.
    pub storage: Option<StorageConfig>,
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
    /// `max_stanza_depth`: messages nesting deeper are refused (the message is level 1);
    /// [`DEFAULT_MAX_DEPTH`](crate::stanza::DEFAULT_MAX_DEPTH) unless set, at most
    /// [`MAX_DEPTH_LIMIT`](crate::stanza::MAX_DEPTH_LIMIT).
    pub max_stanza_depth: usize,
}

impl Default for ModuleOptions {
    fn default() -> Self {
        Self {
            access_max_user_messages: RuleName::default(),
            backend: BackendKind::Mnesia,
            store_groupchat_messages: false,
            trust_sender_delay: false,
            max_stanza_depth: crate::stanza::DEFAULT_MAX_DEPTH,
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
    /// `"mnesia"`, MongooseIM's default: a disc-backed table there, so here the embedded
    /// persistent backend (RocksDB, feature `rocksdb`). Built without it, messages are kept
    /// in memory and the module warns at start that they do not survive a restart.
    Mnesia,
    /// `"memory"`: in memory, lost on restart; for tests, development and servers that accept
    /// the loss.
    Memory,
    /// `"rocksdb"`: embedded and persistent.
    RocksDb,
    /// `"rdbms"`: PostgreSQL, MySQL/MariaDB or SQLite.
    Rdbms,
}

impl BackendKind {
    /// The option's value as written in the configuration.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Mnesia => "mnesia",
            Self::Memory => "memory",
            Self::RocksDb => "rocksdb",
            Self::Rdbms => "rdbms",
        }
    }

    /// The [`name`](offline_core::OfflineBackend::name)s of the stores that may serve this
    /// kind: `mnesia` is served by the embedded persistent store, or in memory when that is
    /// not built in.
    pub fn store_names(&self) -> &'static [&'static str] {
        match self {
            Self::Mnesia => &["rocksdb", "mem"],
            Self::Memory => &["mem"],
            Self::RocksDb => &["rocksdb"],
            Self::Rdbms => &["rdbms"],
        }
    }
}

impl TryFrom<String> for BackendKind {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "mnesia" => Ok(Self::Mnesia),
            "memory" => Ok(Self::Memory),
            "rocksdb" => Ok(Self::RocksDb),
            "rdbms" => Ok(Self::Rdbms),
            other => Err(format!(
                "unknown backend `{other}`, expected one of `mnesia`, `memory`, `rocksdb`, `rdbms`"
            )),
        }
    }
}

/// Where a backend keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageConfig {
    /// In memory (`backend = "memory"`).
    Memory,
    /// RocksDB (`backend = "rocksdb"` or `"mnesia"`), as `[modules.mod_offline.rocksdb]`
    /// sets it up.
    RocksDb(RocksDbSettings),
    /// A relational database (`backend = "rdbms"`), as `[modules.mod_offline.rdbms]` or
    /// MongooseIM's outgoing pool sets it up.
    Rdbms(RdbmsSettings),
}

/// How to reach the relational database and how the pool behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdbmsSettings {
    /// How to connect.
    pub connection: RdbmsConnection,
    /// Connections in the pool (`modules.mod_offline.rdbms.pool_size`, else the outgoing
    /// pool's `workers`), if set.
    pub pool_size: Option<u32>,
    /// `rdbms.connect_timeout` (milliseconds): how long opening a connection may take.
    pub connect_timeout: Option<Duration>,
    /// `rdbms.checkout_timeout` (milliseconds): how long a call may wait for a free
    /// connection before it fails as unavailable.
    pub checkout_timeout: Option<Duration>,
}

/// `[modules.mod_offline.rocksdb]`: where the embedded store lives and how it writes. Every
/// key is optional.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RocksDbSettings {
    /// `path`: the database directory (default `data/offline`, relative to the server's
    /// working directory).
    pub path: PathBuf,
    /// `sync_writes`: acknowledge a write once it is on disk (default `true`); `false` is
    /// faster and survives a process crash but not a power cut.
    pub sync_writes: bool,
    /// `block_cache_size`: bytes of read cache (default 64 MiB).
    pub block_cache_bytes: u64,
    /// `write_buffer_size`: bytes of writes held in memory before a flush, all column
    /// families together (default 64 MiB).
    pub write_buffer_bytes: u64,
    /// `max_open_files`: files kept open (default: all).
    pub max_open_files: Option<u32>,
    /// `compression`: `"lz4"` (default) or `"none"`.
    pub compress: bool,
}

impl Default for RocksDbSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/offline"),
            sync_writes: true,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
            max_open_files: None,
            compress: true,
        }
    }
}

/// How to reach a relational database.
#[derive(Clone, PartialEq, Eq)]
pub enum RdbmsConnection {
    /// `modules.mod_offline.rdbms.url`, e.g. `postgres://user@host/db`.
    Url {
        /// The driver the URL's scheme names.
        driver: RdbmsDriver,
        /// The URL, credentials included.
        url: String,
    },
    /// MongooseIM's `[outgoing_pools.rdbms.<pool>.connection]` table.
    Fields(RdbmsFields),
}

impl RdbmsConnection {
    /// The driver this connection needs.
    pub fn driver(&self) -> RdbmsDriver {
        match self {
            Self::Url { driver, .. } => *driver,
            Self::Fields(fields) => fields.driver,
        }
    }

    /// The database URL: the one configured, or one built from MongooseIM's fields
    /// (`postgres://user:password@host:port/database`, `mysql://...`), each part
    /// percent-encoded.
    pub fn url(&self) -> String {
        match self {
            Self::Url { url, .. } => url.clone(),
            Self::Fields(fields) => {
                let scheme = match fields.driver {
                    RdbmsDriver::Pgsql => "postgres",
                    RdbmsDriver::Mysql => "mysql",
                    RdbmsDriver::Sqlite => "sqlite",
                };
                let encode = |part: &str| utf8_percent_encode(part, URL_PART).to_string();
                let password = match fields.password.as_str() {
                    "" => String::new(),
                    password => format!(":{}", encode(password)),
                };
                let port = fields.port.map(|p| format!(":{p}")).unwrap_or_default();
                let host = if fields.host.contains(':') {
                    format!("[{}]", fields.host) // an IPv6 address
                } else {
                    fields.host.clone()
                };
                format!(
                    "{scheme}://{}{password}@{host}{port}/{}",
                    encode(&fields.username),
                    encode(&fields.database)
                )
            }
        }
    }
}

/// What a part of a URL may hold as it is: RFC 3986's unreserved characters.
const URL_PART: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl fmt::Debug for RdbmsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url { driver, .. } => write!(f, "Url({driver:?}, <redacted>)"),
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

/// A relational database driver: MongooseIM's `driver` (`pgsql`, `mysql`), or the scheme of
/// a URL (`postgres://`, `postgresql://`, `mysql://`, `sqlite://`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RdbmsDriver {
    /// PostgreSQL.
    Pgsql,
    /// MySQL or MariaDB.
    Mysql,
    /// SQLite (by URL only: MongooseIM has no such driver).
    Sqlite,
}

impl RdbmsDriver {
    /// The driver a URL's scheme names, if any.
    pub fn of_url(url: &str) -> Option<Self> {
        let (scheme, _) = url.split_once(':')?;
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Some(Self::Pgsql),
            "mysql" | "mariadb" => Some(Self::Mysql),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }

    /// The cargo feature of `offline-module` that builds this driver in.
    pub fn feature(&self) -> &'static str {
        match self {
            Self::Pgsql => "postgres",
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }
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

    /// What applies to `host_type`: its `[[host_config]]` merged with the top level, or the
    /// top level alone.
    pub fn for_host(&self, host_type: &str) -> &HostConfig {
        self.host_configs.get(host_type).unwrap_or(&self.global)
    }
}
