//! What the offline store's benchmarks measure, and what they measure it against.
//!
//! Every backend is driven through the same [`Subject`] interface as a baseline that does the
//! same work without our code:
//!
//! | backend | baseline |
//! |---|---|
//! | `offline-mem` | [`NaiveMap`]: one `Mutex<HashMap<UserKey, Vec<NewMessage>>>` |
//! | `offline-rocksdb` | [`RawRocks`]: puts, prefix iteration and deletes through the same `rocksdb` crate |
//! | `offline-diesel` | [`MongooseSql`]: MongooseIM's statement sequences on MongooseIM's schema, through the same driver and pool |
//!
//! The per-operation benches (`benches/operations.rs`) time one call at a time;
//! [`Workload`] runs many clients at once and reports throughput and latency percentiles (the
//! concurrency bench and `offlinectl bench` both use it).

mod data;
mod mongooseim;
mod naive;
mod raw_rocks;
mod subject;
mod workload;

pub use data::{Payload, bench_users, now_micros};
pub use mongooseim::MongooseSql;
pub use naive::NaiveMap;
pub use raw_rocks::RawRocks;
pub use subject::{Ours, Subject};
pub use workload::{Latency, Report, Workload, run};

/// The error every benchmark operation reports.
pub type BoxError = offline_core::BoxError;

/// The result of a benchmark operation.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;
