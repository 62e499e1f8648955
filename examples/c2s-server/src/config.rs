//! The server's configuration: the MongooseIM TOML that `offline-module` reads, plus a
//! `[c2s_server]` section of the server's own (listen address, TLS certificate, accounts).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use offline_module::jid::BareJid;
use offline_module::{ConfigError, OfflineConfig};
use serde::Deserialize;

/// The configuration used when no file is given: `localhost` with two accounts, offline
/// messages in MongooseIM's default backend (`mnesia`: RocksDB under `./data/offline`).
pub const DEFAULT_CONFIG: &str = r#"
[general]
  hosts = ["localhost"]

[modules.mod_offline]
  backend = "mnesia"

[access]
  max_user_offline_messages = [{acl = "all", value = 100}]

[c2s_server]
  listen = "127.0.0.1:5222"

[c2s_server.accounts]
  "alice@localhost" = "alice"
  "bob@localhost" = "bob"
"#;

/// What the server reads from its TOML file.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where clients connect (`c2s_server.listen`, default `127.0.0.1:5222`).
    pub listen: SocketAddr,
    /// The certificate chain and private key offered on STARTTLS (`c2s_server.certificate`
    /// and `c2s_server.private_key`, PEM files); `None`: a self-signed certificate for the
    /// served domains, made at start.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// The largest stanza a client may send, in bytes (`c2s_server.max_stanza_size`, default
    /// 262,144 as ejabberd's; larger ones end the stream with `policy-violation`).
    pub max_stanza_size: usize,
    /// How long a client may take to answer the server's pings, the one after each page of
    /// stored messages among them (`c2s_server.ping_timeout`, seconds, default 60); a client
    /// that does not answer in time is disconnected (`connection-timeout`).
    pub ping_timeout: Duration,
    /// Where Prometheus scrapes the server's metrics, `mod_offline`'s under MongooseIM's
    /// names among them (`c2s_server.metrics_listen`, an address and port); `None`: no
    /// metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// How often every domain's expired messages are removed (`c2s_server.purge_expired_every`,
    /// seconds); `None`: never by the server (MongooseIM's operators run
    /// `deleteExpiredMessages` themselves, which on RocksDB needs the server stopped).
    pub purge_expired_every: Option<Duration>,
    /// Accounts by bare JID, with their passwords (`[c2s_server.accounts]`).
    pub accounts: BTreeMap<BareJid, String>,
    /// `mod_offline` and its storage, the domains (`general.hosts`), access rules.
    pub offline: OfflineConfig,
}

/// `[c2s_server]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    metrics_listen: Option<String>,
    certificate: Option<PathBuf>,
    private_key: Option<PathBuf>,
    max_stanza_size: Option<usize>,
    ping_timeout: Option<u64>,
    purge_expired_every: Option<u64>,
    #[serde(default)]
    accounts: BTreeMap<String, String>,
}

impl ServerConfig {
    /// Reads the configuration at `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("file", format!("{}: {e}", path.display())))?;
        Self::from_toml_str(&text)
    }

    /// Reads a configuration from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let offline = OfflineConfig::from_toml_str(text)?;
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::new("file", e.to_string()))?;
        let section = table
            .remove("c2s_server")
            .unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
        let raw: RawServer = serde_path_to_error::deserialize(section).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." {
                "c2s_server".to_owned()
            } else {
                format!("c2s_server.{path}")
            };
            ConfigError::new(key, e.into_inner().to_string())
        })?;
        let listen = address(
            "c2s_server.listen",
            raw.listen.as_deref().unwrap_or("127.0.0.1:5222"),
        )?;
        let metrics_listen = raw
            .metrics_listen
            .as_deref()
            .map(|text| address("c2s_server.metrics_listen", text))
            .transpose()?;
        let tls_files = match (raw.certificate, raw.private_key) {
            (Some(certificate), Some(key)) => Some((certificate, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "c2s_server.private_key",
                    "missing: a certificate needs its private key",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "c2s_server.certificate",
                    "missing: a private key needs its certificate",
                ));
            }
        };
        let mut accounts = BTreeMap::new();
        for (jid, password) in raw.accounts {
            let key = format!("c2s_server.accounts.\"{jid}\"");
            let bare: BareJid = jid
                .parse()
                .map_err(|e| ConfigError::new(key.clone(), format!("not a bare JID: {e}")))?;
            if bare.node().is_none() {
                return Err(ConfigError::new(key, "an account needs a user part"));
            }
            if !offline
                .hosts
                .iter()
                .any(|d| d.as_str() == bare.domain().as_str())
            {
                return Err(ConfigError::new(
                    key,
                    format!("{} is not in general.hosts", bare.domain()),
                ));
            }
            if password.is_empty() {
                return Err(ConfigError::new(key, "an empty password"));
            }
            if accounts.insert(bare, password).is_some() {
                return Err(ConfigError::new(key, "the same account twice"));
            }
        }
        if offline.hosts.is_empty() {
            return Err(ConfigError::new(
                "general.hosts",
                "no domain to serve: list at least one",
            ));
        }
        let max_stanza_size = raw.max_stanza_size.unwrap_or(262_144);
        if max_stanza_size < 4096 {
            return Err(ConfigError::new(
                "c2s_server.max_stanza_size",
                format!("{max_stanza_size} bytes: at least 4096 are needed for a login"),
            ));
        }
        let ping_timeout = raw.ping_timeout.unwrap_or(60);
        if ping_timeout == 0 {
            return Err(ConfigError::new(
                "c2s_server.ping_timeout",
                "0 seconds: expected at least 1",
            ));
        }
        let purge_expired_every = match raw.purge_expired_every {
            Some(0) => {
                return Err(ConfigError::new(
                    "c2s_server.purge_expired_every",
                    "0 seconds: expected at least 1",
                ));
            }
            seconds => seconds.map(Duration::from_secs),
        };
        Ok(Self {
            listen,
            metrics_listen,
            purge_expired_every,
            tls_files,
            max_stanza_size,
            ping_timeout: Duration::from_secs(ping_timeout),
            accounts,
            offline,
        })
    }
}

/// Parses the address and port of `key`.
fn address(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|e| {
        ConfigError::new(
            key,
            format!("`{text}`: {e}: expected an address and port, as 127.0.0.1:5222"),
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_default_configuration_reads() {
        let config = ServerConfig::from_toml_str(DEFAULT_CONFIG).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:5222");
        assert_eq!(config.accounts.len(), 2);
        assert!(config.tls_files.is_none());
        assert!(config.metrics_listen.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[c2s_server]\nlisten = \"nowhere\"", "c2s_server.listen"),
            ("[c2s_server]\nlisten = 5222", "c2s_server.listen"),
            ("[c2s_server]\nport = 5222", "c2s_server.port"),
            (
                "[c2s_server]\nmetrics_listen = \"localhost\"",
                "c2s_server.metrics_listen",
            ),
            (
                "[c2s_server]\npurge_expired_every = 0",
                "c2s_server.purge_expired_every",
            ),
            (
                "[c2s_server]\nmax_stanza_size = 100",
                "c2s_server.max_stanza_size",
            ),
            (
                "[c2s_server]\nmax_stanza_size = -1",
                "c2s_server.max_stanza_size",
            ),
            (
                "[c2s_server]\ncertificate = \"c.pem\"",
                "c2s_server.private_key",
            ),
            (
                "[c2s_server.accounts]\n\"carol@elsewhere\" = \"x\"",
                "c2s_server.accounts.\"carol@elsewhere\"",
            ),
            (
                "[c2s_server.accounts]\n\"localhost\" = \"x\"",
                "c2s_server.accounts.\"localhost\"",
            ),
            (
                "[c2s_server.accounts]\n\"carol@localhost\" = \"\"",
                "c2s_server.accounts.\"carol@localhost\"",
            ),
        ];
        for (section, key) in cases {
            let text = format!("[general]\nhosts = [\"localhost\"]\n{section}");
            let err = ServerConfig::from_toml_str(&text).unwrap_err();
            assert_eq!(err.key, key, "{section}: {err}");
        }
    }
}
