//! The storage contract of an XEP-0160 offline message store for Rust XMPP servers.
//!
//! A server author links this crate and one backend crate (`offline-mem`, and later
//! `offline-rocksdb` or `offline-diesel`), holds the backend as an `Arc<dyn OfflineBackend>`,
//! and stores messages for users who have no available resource:
//!
//! - [`UserKey`] and [`Domain`]: normalised addresses (normalisation happens here, once);
//! - [`NewMessage`], [`StoredMessage`], [`Quota`], [`WriteReport`], [`QueueStats`]: the records;
//! - [`OfflineBackend`]: the trait every backend implements, with the exact semantics the
//!   conformance suite in `offline-testkit` checks;
//! - [`OfflineError`]: one error type with semantic variants.
//!
//! ```
//! use offline_core::{NewMessage, OfflineBackend, OfflineError, Quota, UserKey};
//!
//! async fn on_offline_message(
//!     store: &dyn OfflineBackend,
//!     to: &str,
//!     message: NewMessage,
//!     now: i64,
//! ) -> Result<(), OfflineError> {
//!     let user: UserKey = to.parse()?; // "Juliet@Example.com/balcony" -> juliet@example.com
//!     match store.write_messages(&user, vec![message], Quota::messages(100), now).await {
//!         Ok(report) => println!("stored {}", report.stored),
//!         Err(OfflineError::QuotaExceeded { .. }) => println!("bounce: queue full"),
//!         Err(other) => return Err(other),
//!     }
//!     Ok(())
//! }
//! ```

mod access;
mod address;
mod backend;
mod batch;
mod clock;
mod config;
mod error;
mod instrumentation;
mod message;
mod module;
mod quota;
pub mod stanza;

pub use access::{AccessClause, AccessConfig, AccessValue, AclPattern, DomainMatch};
pub use address::{Domain, UserKey};
pub use backend::OfflineBackend;
pub use batch::PreparedBatch;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    BackendKind, ConfigError, ModuleOptions, OfflineConfig, RdbmsConnection, RdbmsDriver,
    RdbmsFields, RuleName, StorageConfig,
};
pub use error::{BoxError, OfflineError, Result};
pub use instrumentation::{Instrumentation, InstrumentedBackend, MetricNames};
pub use message::{
    MAX_ADDRESS_BYTES, MAX_DEDUPE_KEY_BYTES, MAX_PACKET_BYTES, NewMessage, QueueStats,
    StoredMessage, WriteReport,
};
pub use module::{
    Delivery, Disposition, OfflineModule, OfflineModuleBuilder, OfflineStub, PERSONAL_DATA_FIELDS,
    PersonalDataRow,
};
pub use quota::Quota;
pub use stanza::FEATURE_MSGOFFLINE;

/// The `jid` crate this one normalises addresses with, so servers use the same version.
pub use jid;
/// The `minidom` crate stanzas are handled with, so servers use the same version.
pub use minidom;
