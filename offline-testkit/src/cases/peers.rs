//! Two independent instances on one storage, as two server nodes on one database (the `peer`
//! capability): every guarantee holds across them.

use offline_core::{OfflineBackend, Quota};

use super::race::{
    dedupe_race, paging_race_misses_nothing, pop_race_delivers_each_once, quota_race,
};
use super::{T0, chat, count, write};
use crate::Fixture;

/// 16 writers split across two peers never take a queue over its quota.
pub async fn quota_is_atomic_across_peers<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let stores = [fx.shared_store(), fx.peer().await];
    quota_race(fx, &stores).await;
}

/// Writers and poppers spread over two peers: every message is delivered once, none lost.
pub async fn pops_racing_writers_across_peers_lose_and_duplicate_nothing<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    let stores = [fx.shared_store(), fx.peer().await];
    pop_race_delivers_each_once(fx, &stores).await;
}

/// A key held through one peer is a duplicate through the other, sequentially and when
/// racing writers are spread over both.
pub async fn dedupe_holds_across_peers<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let peer = fx.peer().await;
    let juliet = fx.user("juliet");
    write(fx.store(), &juliet, vec![chat(&juliet, 0).dedupe_key("k")]).await;
    let resend = peer
        .write_messages(
            &juliet,
            vec![chat(&juliet, 1).dedupe_key("k")],
            Quota::UNLIMITED,
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        (resend.stored, resend.duplicates),
        (0, 1),
        "a key written through one node is held for the other"
    );
    assert_eq!(
        count(fx.store(), &juliet).await,
        1,
        "one message holds the key"
    );
    dedupe_race(fx, &[fx.shared_store(), peer]).await;
}

/// A reader paging by seq while writers on both peers write misses nothing: seqs become
/// visible in increasing order across nodes.
pub async fn fetch_paging_racing_peer_writers_misses_nothing<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    let stores = [fx.peer().await, fx.shared_store()];
    paging_race_misses_nothing(fx, &stores).await;
}
