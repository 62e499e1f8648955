//! What survives closing the store and opening it again (the `reopen` capability).

use offline_core::{NewMessage, OfflineBackend, QueueStats};

use super::{DAY, SECOND, T0, chat, chats, count, held, held_seqs, write};
use crate::Fixture;

/// Messages, seqs, counts, dedupe keys, the list of users and the purge indexes are all there
/// after a reopen.
pub async fn data_and_seqs_survive_reopen<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let domain = fx.domain("example.com");
    let (juliet, romeo) = (fx.user("juliet"), fx.user("romeo"));
    let old = NewMessage {
        timestamp: T0 - 3 * DAY,
        ..chat(&juliet, 0)
    };
    let lapsing = chat(&juliet, 1).expires_at(T0 + SECOND);
    let keyed = chat(&juliet, 2)
        .dedupe_key("kept-key")
        .permanent_fields(vec![0, 255]);
    write(fx.store(), &juliet, vec![old, lapsing, keyed.clone()]).await;
    write(fx.store(), &romeo, chats(&romeo, 0..2)).await;
    let before = held(fx.store(), &juliet).await;
    let stats = fx.store().count_messages(&juliet).await.unwrap();

    fx.reopen().await;
    let store = fx.store();
    assert_eq!(
        held(store, &juliet).await,
        before,
        "every message and its seq survive a reopen"
    );
    assert_eq!(
        store.count_messages(&juliet).await.unwrap(),
        stats,
        "the count survives a reopen"
    );
    let listed = store.list_users(Some(&domain), None, 10).await.unwrap();
    assert_eq!(
        listed,
        [juliet.clone(), romeo.clone()],
        "the users survive a reopen"
    );
    let again = write(store, &juliet, vec![keyed]).await;
    assert_eq!(again.duplicates, 1, "dedupe keys survive a reopen");
    assert_eq!(
        store
            .remove_expired_messages(&domain, T0 + SECOND)
            .await
            .unwrap(),
        1,
        "the expiry index survives a reopen"
    );
    assert_eq!(
        store.remove_old_messages(&domain, T0 - DAY).await.unwrap(),
        1,
        "the age index survives a reopen"
    );
    write(store, &juliet, vec![chat(&juliet, 3)]).await;
    let seqs = held_seqs(store, &juliet).await;
    let highest_before = before.iter().map(|s| s.seq).max().unwrap_or(0);
    assert!(
        seqs.last().is_some_and(|&last| last > highest_before),
        "a message written after the reopen numbers after every earlier one: {seqs:?}"
    );
    assert_eq!(
        store.pop_messages(&romeo, T0).await.unwrap().len(),
        2,
        "romeo's queue survives too"
    );
}

/// A user's seqs keep increasing across a reopen, even when the whole store was emptied
/// before it: numbering restarting with the data would reuse them.
pub async fn seq_keeps_increasing_after_the_store_empties_and_reopens<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    let juliet = fx.user("juliet");
    write(fx.store(), &juliet, chats(&juliet, 0..3)).await;
    let first = held_seqs(fx.store(), &juliet).await;
    let highest = first.iter().copied().max().unwrap_or(0);
    fx.store().pop_messages(&juliet, T0).await.unwrap();
    assert_eq!(
        fx.store().count_messages(&juliet).await.unwrap(),
        QueueStats::default(),
        "the pop empties the queue, and so the store"
    );
    fx.reopen().await;
    assert_eq!(
        count(fx.store(), &juliet).await,
        0,
        "the pop survives a reopen"
    );
    write(fx.store(), &juliet, chats(&juliet, 3..5)).await;
    let later = held_seqs(fx.store(), &juliet).await;
    assert!(
        later.iter().all(|&seq| seq > highest),
        "after emptying and reopening, seqs {later:?} reuse numbers up to {highest}"
    );
    fx.reopen().await;
    write(fx.store(), &juliet, chats(&juliet, 5..6)).await;
    let last = held_seqs(fx.store(), &juliet).await;
    assert!(
        last.windows(2).all(|w| w[0] < w[1]) && last.len() == 3,
        "seqs keep increasing across a second reopen: {last:?}"
    );
}
