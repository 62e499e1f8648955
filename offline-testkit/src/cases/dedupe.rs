//! Dedupe keys: at most one message per key and user is held.

use offline_core::{OfflineBackend, Quota, WriteReport};

use super::{T0, chat, held_seqs, packets, write};
use crate::Fixture;

/// A message whose key the queue already holds is skipped, not an error.
pub async fn held_dedupe_key_is_skipped<S: OfflineBackend>(fx: Fixture<S>) {
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
        }
    );
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    assert_eq!(packets(&popped), [first.packet, chat(&juliet, 2).packet]);
}

/// A key repeated within one batch keeps its first message only.
pub async fn repeated_key_within_a_batch_is_skipped<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let batch = vec![
        chat(&juliet, 0).dedupe_key("k"),
        chat(&juliet, 1).dedupe_key("k"),
        chat(&juliet, 2),
        chat(&juliet, 3),
    ];
    let report = write(store, &juliet, batch).await;
    assert_eq!((report.stored, report.duplicates), (3, 1));
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    let expected: Vec<String> = [0, 2, 3].map(|n| chat(&juliet, n).packet).into();
    assert_eq!(packets(&popped), expected);
}

/// The same key held for one user does not stop another user's message.
pub async fn dedupe_is_per_user<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let (ali, alice) = (fx.user("ali"), fx.user("alice"));
    write(store, &ali, vec![chat(&ali, 0).dedupe_key("same")]).await;
    let report = write(store, &alice, vec![chat(&alice, 0).dedupe_key("same")]).await;
    assert_eq!(report.stored, 1);
}

/// A skipped duplicate does not count toward the quota, so it succeeds even on a full queue.
pub async fn duplicates_do_not_count_toward_quota<S: OfflineBackend>(fx: Fixture<S>) {
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
    assert_eq!((report.stored, report.duplicates), (0, 1));
}

/// Once the message holding a key is delivered or removed, the key can be stored again.
pub async fn dedupe_key_is_free_after_delivery<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let message = chat(&juliet, 0).dedupe_key("k");
    write(store, &juliet, vec![message.clone()]).await;
    store.pop_messages(&juliet, T0).await.unwrap();
    assert_eq!(write(store, &juliet, vec![message.clone()]).await.stored, 1);
    let seqs = held_seqs(store, &juliet).await;
    assert_eq!(store.remove_messages(&juliet, &seqs).await.unwrap(), 1);
    assert_eq!(write(store, &juliet, vec![message]).await.stored, 1);
}
