//! The suite every `offline-core` backend passes, in-tree or not.
//!
//! - [`cases`]: the conformance cases, one async function per point of the storage contract
//!   (ordering and seqs, expiry on every path, quota and its atomicity under concurrent
//!   writers, dedupe, pops racing writes, paging, removal by `seq`, purges with neighbouring
//!   domains, isolation, collation, byte-exact content at every length limit, large batches
//!   and queues, times at their extremes, invalid input), plus cases for stores that reopen
//!   (`reopen`) and for stores shared by several server nodes (`peer`);
//! - [`Model`]: a plain reference model of the contract, and [`machine`], the property test
//!   that drives a backend and the model with the same random operation sequences;
//! - [`conformance_tests!`] and [`model_tests!`]: one line each in a backend crate's tests,
//!   stamping one named `#[test]` per case.
//!
//! The suite checks behaviour, not cost: a purge that scans the whole table passes it. What
//! operations cost is measured by the benchmarks.
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
//! `matches_the_reference_model`, each runnable by name. The cases that need a capability the
//! line does not declare are listed as ignored, with the capability they need.

// A test kit reports failures by panicking: that is its whole job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod cases;
mod fixture;
pub mod machine;
mod model;

use std::sync::Arc;

pub use fixture::{Fixture, StoreFactory};
pub use model::{Model, ModelBackend};

/// Compiles the backend-writing chapter's Rust examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/writing-a-backend.md")]
struct WritingABackendDoctests;

/// The runtime each case runs on: multi-threaded, so concurrency cases really race.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("building a tokio runtime")
}

/// Runs one case against a fresh fixture from `factory`; when the case passes on a shared
/// store, removes what it wrote. A factory whose storage is
/// [unavailable](StoreFactory::unavailable) skips the case with a notice.
pub fn run_case<F: StoreFactory>(factory: F, case: impl AsyncFnOnce(&mut Fixture<F::Store>)) {
    if let Some(reason) = factory.unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    runtime().block_on(async {
        let factory = Arc::new(factory);
        let fixture = factory
            .create()
            .await
            .unwrap_or_else(|e| panic!("creating the store: {e}"));
        let mut fixture = fixture.with_hooks(Arc::clone(&factory));
        case(&mut fixture).await;
        fixture.clean_up().await;
    });
}

/// Stamps one `#[test]` per conformance case into a module (`conformance` unless named).
///
/// ```text
/// conformance_tests!(MyFactory);
/// conformance_tests!(MyFactory, capabilities = [reopen, peer]);
/// conformance_tests!(single_shard, MyFactory::new(1));
/// conformance_tests!(small_pool, MyFactory::small(), capabilities = [peer]);
/// ```
///
/// Capabilities: `reopen` (the factory implements [`StoreFactory::reopen`]: persistent
/// backends) and `peer` ([`StoreFactory::peer`]: stores shared by several nodes). The cases
/// that need a capability the line does not declare are stamped `#[ignore]` with the reason,
/// so `cargo test` lists them as skipped. The factory expression is evaluated once per case,
/// inside the module (which imports `super::*`).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(conformance, $factory, capabilities = []);
    };
    ($factory:expr, capabilities = [$($capability:ident),* $(,)?]) => {
        $crate::conformance_tests!(conformance, $factory, capabilities = [$($capability),*]);
    };
    ($module:ident, $factory:expr) => {
        $crate::conformance_tests!($module, $factory, capabilities = []);
    };
    ($module:ident, $factory:expr, capabilities = [$($capability:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $( $crate::__known_capability!($capability); )*
            $crate::__stamp_cases!($factory;
                pop_returns_messages_in_arrival_order,
                seqs_increase_per_user_however_writes_interleave,
                seq_is_never_reused_after_the_queue_empties,
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
                a_later_message_that_expires_frees_its_room,
                each_expiry_frees_its_room_in_turn,
                write_removes_the_users_expired_messages,
                refused_write_still_removes_expired_messages,
                now_moving_backwards_loses_nothing,
                times_at_the_extremes_are_kept,
                timestamp_zero_is_kept_and_expire_zero_is_expired,
                quota_admits_up_to_the_message_limit,
                quota_refuses_the_whole_batch,
                byte_quota_refuses_the_whole_batch,
                byte_quota_counts_utf8_bytes,
                quota_is_per_user,
                unlimited_quota_admits_large_batches,
                held_dedupe_key_is_skipped,
                repeated_key_within_a_batch_is_skipped,
                new_dedupe_keys_join_a_queue_holding_others,
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
                list_users_of_a_domain_from_a_cursor_outside_it,
                list_users_with_limit_zero_is_empty,
                list_users_forgets_emptied_queues,
                remove_expired_messages_spares_neighbours,
                remove_old_messages_is_strict_and_spares_neighbours,
                purges_of_an_empty_domain_remove_nothing,
                remove_domain_spares_neighbours,
                users_sharing_a_prefix_are_isolated,
                remove_user_removes_only_that_user,
                case_variants_of_a_jid_share_one_queue,
                users_equal_under_a_folding_collation_are_distinct,
                dedupe_keys_equal_under_a_folding_collation_are_distinct,
                awkward_text_is_kept_byte_exact,
                every_length_limit_round_trips_at_its_maximum,
                invalid_messages_are_refused_whole,
                batch_of_ten_thousand_messages_is_stored_whole,
                batch_of_twenty_mebibytes_is_stored_whole,
                ten_thousand_message_queue,
                concurrent_writers_never_exceed_the_message_quota,
                concurrent_batches_never_exceed_the_byte_quota,
                concurrent_writes_of_one_key_store_it_once,
                concurrent_writers_to_many_users_lose_nothing,
                pops_racing_writers_deliver_each_message_once,
                pops_racing_writers_keep_arrival_order,
                fetch_paging_racing_writers_misses_nothing,
                writes_racing_purges_keep_count_and_fetch_agreeing,
                dropped_write_leaves_all_or_nothing,
            );
            $crate::__stamp_needing!(reopen, [$($capability),*], $factory;
                data_and_seqs_survive_reopen,
                seq_keeps_increasing_after_the_store_empties_and_reopens,
            );
            $crate::__stamp_needing!(peer, [$($capability),*], $factory;
                quota_is_atomic_across_peers,
                pops_racing_writers_across_peers_lose_and_duplicate_nothing,
                dedupe_holds_across_peers,
                fetch_paging_racing_peer_writers_misses_nothing,
            );
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __known_capability {
    (reopen) => {};
    (peer) => {};
    ($other:ident) => {
        compile_error!(concat!(
            "unknown capability `",
            stringify!($other),
            "`: expected `reopen` or `peer`"
        ));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __stamp_cases {
    ($factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::run_case($factory, $crate::cases::$case);
            }
        )+
    };
}

/// Stamps cases that need a capability: as tests when it is declared, else as ignored tests
/// that say which capability they need.
#[doc(hidden)]
#[macro_export]
macro_rules! __stamp_needing {
    (reopen, [reopen $(, $rest:ident)*], $factory:expr; $($case:ident),+ $(,)?) => {
        $crate::__stamp_cases!($factory; $($case),+);
    };
    (peer, [peer $(, $rest:ident)*], $factory:expr; $($case:ident),+ $(,)?) => {
        $crate::__stamp_cases!($factory; $($case),+);
    };
    ($need:ident, [$first:ident $(, $rest:ident)*], $factory:expr; $($case:ident),+ $(,)?) => {
        $crate::__stamp_needing!($need, [$($rest),*], $factory; $($case),+);
    };
    (reopen, [], $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            #[ignore = "needs the `reopen` capability (StoreFactory::reopen): not declared"]
            fn $case() {
                $crate::run_case($factory, $crate::cases::$case);
            }
        )+
    };
    (peer, [], $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            #[ignore = "needs the `peer` capability (StoreFactory::peer): not declared"]
            fn $case() {
                $crate::run_case($factory, $crate::cases::$case);
            }
        )+
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
