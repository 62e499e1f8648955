//! The storage contract of an XEP-0160 offline message store for Rust XMPP servers, and
//! nothing else: what every backend crate compiles.
//!
//! A backend crate (`offline-mem`, and later `offline-rocksdb` or `offline-diesel`) implements
//! [`OfflineBackend`]; the `mod_offline` front end (`offline-module`) and servers hold a
//! backend as an `Arc<dyn OfflineBackend>`:
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

mod address;
mod backend;
mod batch;
mod error;
mod message;
mod quota;

pub use address::{Domain, MAX_DOMAIN_BYTES, MAX_LOCALPART_BYTES, UserKey, canonical_jid};
pub use backend::OfflineBackend;
pub use batch::PreparedBatch;
pub use error::{BoxError, OfflineError, Result};
pub use message::{
    MAX_ADDRESS_BYTES, MAX_DEDUPE_KEY_BYTES, MAX_PACKET_BYTES, MAX_PERMANENT_FIELDS_BYTES,
    NewMessage, QueueStats, StoredMessage, WriteReport,
};
pub use quota::Quota;

/// The `jid` crate addresses are parsed and normalised with, so callers use the same version.
pub use jid;
