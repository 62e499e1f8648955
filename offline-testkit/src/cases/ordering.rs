//! Arrival order, `seq`s, whole-queue pops and what a stored message keeps.

use std::collections::HashSet;

use offline_core::{NewMessage, OfflineBackend, QueueStats, WriteReport};

use super::{T0, assert_seq_increasing, chat, chats, new_packets, packets, write};
use crate::Fixture;

/// Messages written in several batches pop in the order they were written, with increasing
/// `seq`s.
pub async fn pop_returns_messages_in_arrival_order<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let mut written = Vec::new();
    for batch in [0..3, 3..4, 4..9] {
        let messages = chats(&juliet, batch);
        written.extend(new_packets(&messages));
        write(store, &juliet, messages).await;
    }
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    assert_eq!(packets(&popped), written);
    assert_seq_increasing(&popped);
}

/// `seq`s are unique across users, and increase per user however writes interleave.
pub async fn seqs_are_unique_across_users<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let (alice, bob) = (fx.user("alice"), fx.user("bob"));
    for n in 0..5 {
        write(store, &alice, vec![chat(&alice, n)]).await;
        write(store, &bob, chats(&bob, n * 2..n * 2 + 2)).await;
    }
    let alices = store.pop_messages(&alice, T0).await.unwrap();
    let bobs = store.pop_messages(&bob, T0).await.unwrap();
    assert_eq!((alices.len(), bobs.len()), (5, 10));
    assert_seq_increasing(&alices);
    assert_seq_increasing(&bobs);
    let all: HashSet<u64> = alices.iter().chain(&bobs).map(|s| s.seq).collect();
    assert_eq!(all.len(), 15, "a seq was given twice");
}

/// A pop takes the whole queue: afterwards nothing is counted, fetched, popped or listed.
pub async fn pop_takes_the_whole_queue<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    write(store, &juliet, chats(&juliet, 0..4)).await;
    assert_eq!(store.pop_messages(&juliet, T0).await.unwrap().len(), 4);
    assert_eq!(
        store.count_messages(&juliet).await.unwrap(),
        QueueStats::default()
    );
    assert!(
        store
            .fetch_messages(&juliet, None, None, T0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.pop_messages(&juliet, T0).await.unwrap().is_empty());
    let domain = fx.domain("example.com");
    assert!(
        store
            .list_users(Some(&domain), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Popping a user who never had a message returns nothing and is not an error.
pub async fn pop_of_an_unknown_user_is_empty<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let nobody = fx.user("nobody");
    assert!(store.pop_messages(&nobody, T0).await.unwrap().is_empty());
    assert_eq!(store.remove_user(&nobody).await.unwrap(), 0);
    assert_eq!(store.remove_messages(&nobody, &[1, 2]).await.unwrap(), 0);
}

/// Every field of a message comes back exactly as written.
pub async fn stored_messages_keep_every_field<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let full = NewMessage::new(
        T0 - 123_456,
        "romeo@example.net/orchard",
        format!("{juliet}/balcony"),
        "<message type='normal'><subject>s</subject><body>b</body></message>",
    )
    .expires_at(T0 + 7_000_001)
    .dedupe_key("romeo@example.net origin-1")
    .permanent_fields((0..=255u8).collect::<Vec<u8>>());
    let empty_fields = chat(&juliet, 1).permanent_fields(Vec::new());
    let bare = chat(&juliet, 2);
    let written = vec![full, empty_fields, bare];
    write(store, &juliet, written.clone()).await;
    let fetched = store.fetch_messages(&juliet, None, None, T0).await.unwrap();
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    assert_eq!(fetched, popped);
    let messages: Vec<NewMessage> = popped.into_iter().map(|s| s.message).collect();
    assert_eq!(messages, written);
}

/// An empty batch stores nothing, reports nothing and creates no queue.
pub async fn empty_batch_changes_nothing<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    assert_eq!(
        write(store, &juliet, Vec::new()).await,
        WriteReport::default()
    );
    assert_eq!(
        store.count_messages(&juliet).await.unwrap(),
        QueueStats::default()
    );
    let domain = fx.domain("example.com");
    assert!(
        store
            .list_users(Some(&domain), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The report of a plain write counts what was stored.
pub async fn write_reports_what_it_stored<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let report = write(store, &juliet, chats(&juliet, 0..7)).await;
    assert_eq!(
        report,
        WriteReport {
            stored: 7,
            duplicates: 0,
            expired: 0
        }
    );
}
