//! Dedupe keys: at most one message per key and user is held.

use offline_core::{OfflineBackend, Quota, WriteReport};

use super::{T0, chat, held_seqs, packets, write};
use crate::Fixture;

/// A message whose key the queue already holds is skipped, not an error.
pub async fn held_dedupe_key_is_skipped<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let first = chat(&juliet, 0).dedupe_key("romeo@example.net id-1");
    let again = chat(&juliet, 1).dedupe_key("romeo@example.net id-1");
    write(store, &juliet, vec![first.clone()]).await;
    let report = write(store, &juliet, vec![again, chat(&juliet, 2)]).await;
    assert_eq!(
        report,
        WriteReport {
            stored: 1,
            duplicates: 1,
            expired: 0
        },
        "a held key is reported as a duplicate"
    );
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    assert_eq!(
        packets(&popped),
        [first.packet, chat(&juliet, 2).packet],
        "the first message of a key is kept, the resend skipped"
    );
}

/// A key repeated within one batch keeps its first message only.
pub async fn repeated_key_within_a_batch_is_skipped<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let batch = vec![
        chat(&juliet, 0).dedupe_key("k"),
        chat(&juliet, 1).dedupe_key("k"),
        chat(&juliet, 2),
        chat(&juliet, 3),
    ];
    let report = write(store, &juliet, batch).await;
    assert_eq!(
        (report.stored, report.duplicates),
        (3, 1),
        "(stored, duplicates) of a batch repeating a key"
    );
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    let expected: Vec<String> = [0, 2, 3].map(|n| chat(&juliet, n).packet).into();
    assert_eq!(packets(&popped), expected, "the first of the key is kept");
}

/// New keys join a queue that holds other keys and unkeyed messages: all are stored.
pub async fn new_dedupe_keys_join_a_queue_holding_others<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let held = vec![
        chat(&juliet, 0).dedupe_key("k1"),
        chat(&juliet, 1),
        chat(&juliet, 2).dedupe_key("k2"),
    ];
    write(store, &juliet, held).await;
    let fresh = vec![
        chat(&juliet, 3).dedupe_key("k3"),
        chat(&juliet, 4),
        chat(&juliet, 5).dedupe_key("k4"),
    ];
    let report = write(store, &juliet, fresh).await;
    assert_eq!(
        report,
        WriteReport {
            stored: 3,
            duplicates: 0,
            expired: 0
        },
        "keys the queue does not hold are not duplicates"
    );
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    assert_eq!(popped.len(), 6, "every message is stored");
}

/// The same key held for one user does not stop another user's message.
pub async fn dedupe_is_per_user<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let (ali, alice) = (fx.user("ali"), fx.user("alice"));
    write(store, &ali, vec![chat(&ali, 0).dedupe_key("same")]).await;
    let report = write(store, &alice, vec![chat(&alice, 0).dedupe_key("same")]).await;
    assert_eq!(
        report.stored, 1,
        "ali's key does not make alice's message a duplicate"
    );
}

/// A skipped duplicate does not count toward the quota, so it succeeds even on a full queue.
pub async fn duplicates_do_not_count_toward_quota<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let quota = Quota::messages(1);
    let message = chat(&juliet, 0).dedupe_key("resent");
    store
        .write_messages(&juliet, vec![message.clone()], quota, T0)
        .await
        .unwrap();
    let report = store
        .write_messages(&juliet, vec![message], quota, T0)
        .await
        .expect("a resent duplicate is not a quota breach");
    assert_eq!(
        (report.stored, report.duplicates),
        (0, 1),
        "(stored, duplicates) of a resend to a full queue"
    );
}

/// Once the message holding a key is delivered or removed, the key can be stored again.
pub async fn dedupe_key_is_free_after_delivery<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let message = chat(&juliet, 0).dedupe_key("k");
    write(store, &juliet, vec![message.clone()]).await;
    store.pop_messages(&juliet, T0).await.unwrap();
    assert_eq!(
        write(store, &juliet, vec![message.clone()]).await.stored,
        1,
        "a key is free again after its message was popped"
    );
    let seqs = held_seqs(store, &juliet).await;
    assert_eq!(
        store.remove_messages(&juliet, &seqs).await.unwrap(),
        1,
        "the message holding the key is removed by its seq"
    );
    assert_eq!(
        write(store, &juliet, vec![message]).await.stored,
        1,
        "a key is free again after its message was removed by seq"
    );
}
