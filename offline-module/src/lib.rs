//! MongooseIM's `mod_offline` (XEP-0160) for Rust XMPP servers, on any `offline-core` backend.
//!
//! A server calls the module when a message reaches a user with no available resource, and
//! when that user sends available presence:
//!
//! - [`OfflineModule`]: classification ([`stanza::classify`]), quotas from MongooseIM access
//!   rules ([`AccessConfig`]), the exact error replies and bounces, delivery with XEP-0203
//!   delay stamps, purges, the `remove_user`/`remove_domain` hooks, GDPR export, disco;
//! - [`OfflineStub`], MongooseIM's `mod_offline_stub`;
//! - [`OfflineConfig`]: MongooseIM's TOML as it is, errors naming the key;
//! - [`Instrumentation`] and [`InstrumentedBackend`]: MongooseIM's metric names through the
//!   `metrics` facade (the library installs no recorder);
//! - [`open_backend`]: the configured backend, one cargo feature per backend crate (`rocksdb`
//!   and `mem`, both on by default).
//!
//! Hostile input is refused, not fatal: stanzas nesting too deep, addresses without a stable
//! normal form, stanzas that cannot be written; every element the module hands back writes and
//! parses back. What a server must still guard itself is in the configuration guide
//! (`docs/configuration.md`, "What the module refuses").
//!
//! ```
//! use offline_module::{Disposition, OfflineConfig, OfflineModule, jid::Jid, minidom::Element};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let config = OfflineConfig::from_toml_str(r#"
//!     [general]
//!       hosts = ["localhost"]
//!     [modules.mod_offline]
//!       backend = "memory"
//! "#)?;
//! let module = OfflineModule::from_config("localhost", &config)?.build().await?;
//! let (romeo, juliet) = (Jid::new("romeo@localhost/orchard")?, Jid::new("juliet@localhost")?);
//! let message: Element = "<message xmlns='jabber:client' type='chat'><body>hi</body></message>".parse()?;
//! let stored = module.offline_message(&romeo, &juliet, &message).await;
//! assert!(matches!(stored, Disposition::Stored { duplicate: false, .. }));
//! assert_eq!(module.resend_offline_messages(&juliet).await?.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod access;
mod backends;
mod clock;
mod config;
mod error;
mod instrumentation;
mod module;
pub mod stanza;

pub use access::{AccessClause, AccessConfig, AccessValue, AclPattern, DomainMatch};
pub use backends::{open_backend, open_once};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    BackendKind, ConfigError, HostConfig, ModuleOptions, OfflineConfig, RdbmsConnection,
    RdbmsDriver, RdbmsFields, RdbmsSettings, RocksDbSettings, RuleName, StorageConfig,
};
pub use error::ModuleError;
pub use instrumentation::{
    Instrumentation, InstrumentedBackend, MetricNames, TIME_BUCKETS, describe_metrics,
};
pub use module::{
    Delivery, Disposition, Held, OfflineModule, OfflineModuleBuilder, OfflineStub,
    PERSONAL_DATA_FIELDS, PendingPage, PersonalDataRow,
};
pub use stanza::FEATURE_MSGOFFLINE;

/// The `jid` crate addresses are normalised with, so servers use the same version.
pub use jid;
/// The `minidom` crate stanzas are handled with, so servers use the same version.
pub use minidom;
/// The storage contract the module stores through.
pub use offline_core;

/// Compiles and runs the README's Rust examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// Compiles and runs the configuration chapter's Rust examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/configuration.md")]
struct ConfigurationDoctests;
