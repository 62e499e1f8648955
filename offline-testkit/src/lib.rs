//! The suite every `offline-core` backend passes, in-tree or not.
//!
//! - [`cases`]: the conformance cases, one async function per point of the storage contract
//!   (ordering, expiry on every path, quota and its atomicity under concurrent writers,
//!   dedupe, pops racing writes, paging, removal by `seq`, purges with neighbouring domains,
//!   isolation, byte-exact content, large queues, invalid input);
//! - [`Model`]: a plain reference model of the contract, and [`machine`], the property test
//!   that drives a backend and the model with the same random operation sequences;
//! - [`conformance_tests!`] and [`model_tests!`]: one line each in a backend crate's tests,
//!   stamping one named `#[test]` per case.
//!
//! A backend crate writes a [`StoreFactory`] and two lines:
//!
//! ```
//! use offline_testkit::{Fixture, ModelBackend, StoreFactory};
//!
//! struct Model; // a backend crate's factory makes its own backend
//!
//! impl StoreFactory for Model {
//!     type Store = ModelBackend;
//!
//!     async fn create(&self) -> offline_core::Result<Fixture<ModelBackend>> {
//!         Ok(Fixture::fresh(ModelBackend::default()))
//!     }
//! }
//!
//! offline_testkit::conformance_tests!(Model);
//! offline_testkit::model_tests!(Model);
//! # fn main() {}
//! ```
//!
//! `cargo test` then lists `conformance::pop_returns_messages_in_arrival_order`,
//! `conformance::concurrent_writers_never_exceed_the_message_quota`, ... and
//! `matches_the_reference_model`, each runnable by name.

// A test kit reports failures by panicking: that is its whole job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cases;
mod fixture;
pub mod machine;
mod model;

use std::future::Future;

pub use fixture::{Fixture, StoreFactory};
pub use model::{Model, ModelBackend};

/// The runtime each case runs on: multi-threaded, so concurrency cases really race.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("building a tokio runtime")
}

/// Runs one case against a fresh fixture from `factory`.
pub fn run_case<F, C, Fut>(factory: F, case: C)
where
    F: StoreFactory,
    C: FnOnce(Fixture<F::Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    runtime().block_on(async {
        let fixture = factory
            .create()
            .await
            .unwrap_or_else(|e| panic!("creating the store: {e}"));
        case(fixture).await;
    });
}

/// Stamps one `#[test]` per conformance case into a module (`conformance` unless named).
///
/// `conformance_tests!(MyFactory)` or `conformance_tests!(single_shard, MyFactory::new(1))`;
/// the factory expression is evaluated once per case, inside the module (which imports
/// `super::*`).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(conformance, $factory);
    };
    ($module:ident, $factory:expr) => {
        $crate::__stamp_cases!($module, $factory;
            pop_returns_messages_in_arrival_order,
            seqs_are_unique_across_users,
            pop_takes_the_whole_queue,
            pop_of_an_unknown_user_is_empty,
            stored_messages_keep_every_field,
            empty_batch_changes_nothing,
            write_reports_what_it_stored,
            pop_drops_expired_messages,
            fetch_skips_expired_messages,
            expiry_is_reached_at_the_expire_instant,
            already_expired_messages_are_not_stored,
            expired_messages_do_not_count_toward_quota,
            write_removes_the_users_expired_messages,
            refused_write_still_removes_expired_messages,
            quota_admits_up_to_the_message_limit,
            quota_refuses_the_whole_batch,
            byte_quota_refuses_the_whole_batch,
            byte_quota_counts_utf8_bytes,
            quota_is_per_user,
            unlimited_quota_admits_large_batches,
            held_dedupe_key_is_skipped,
            repeated_key_within_a_batch_is_skipped,
            dedupe_is_per_user,
            duplicates_do_not_count_toward_quota,
            dedupe_key_is_free_after_delivery,
            fetch_pages_by_seq,
            fetch_without_limit_is_the_whole_queue,
            fetch_edges_return_nothing,
            remove_messages_removes_only_those_seqs,
            remove_messages_ignores_other_users_seqs,
            acknowledged_delivery_loses_nothing,
            count_reports_messages_and_bytes,
            list_users_pages_in_key_order,
            list_users_of_a_domain_spares_neighbours,
            list_users_forgets_emptied_queues,
            remove_expired_messages_spares_neighbours,
            remove_old_messages_is_strict_and_spares_neighbours,
            purges_of_an_empty_domain_remove_nothing,
            remove_domain_spares_neighbours,
            users_sharing_a_prefix_are_isolated,
            remove_user_removes_only_that_user,
            case_variants_of_a_jid_share_one_queue,
            awkward_text_is_kept_byte_exact,
            largest_packet_round_trips,
            invalid_messages_are_refused_whole,
            ten_thousand_message_queue,
            concurrent_writers_never_exceed_the_message_quota,
            concurrent_batches_never_exceed_the_byte_quota,
            concurrent_writes_of_one_key_store_it_once,
            concurrent_writers_to_many_users_lose_nothing,
            pops_racing_writers_deliver_each_message_once,
            pops_racing_writers_keep_arrival_order,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __stamp_cases {
    ($module:ident, $factory:expr; $($case:ident),+ $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    $crate::run_case($factory, $crate::cases::$case);
                }
            )+
        }
    };
}

/// Stamps the model-based property test, `matches_the_reference_model`, into the current
/// module.
///
/// `model_tests!(MyFactory)` runs proptest's default number of sequences (`PROPTEST_CASES`,
/// else 256); `model_tests!(MyFactory, cases = 64)` sets it, for slow backends. Failing seeds
/// are kept beside the calling file, to be committed.
#[macro_export]
macro_rules! model_tests {
    ($factory:expr) => {
        $crate::model_tests!(@run $factory, ::core::option::Option::None);
    };
    ($factory:expr, cases = $cases:expr) => {
        $crate::model_tests!(@run $factory, ::core::option::Option::Some($cases));
    };
    (@run $factory:expr, $cases:expr) => {
        #[test]
        fn matches_the_reference_model() {
            $crate::machine::check_against_model(
                $factory,
                $crate::machine::ModelRun {
                    cases: $cases,
                    max_ops: 48,
                    source_file: file!(),
                },
            );
        }
    };
}
