//! Non-destructive reads paged by `seq`, and removal by `seq`.

use offline_core::{OfflineBackend, QueueStats};

use super::{
    T0, assert_seq_increasing, chats, count, fetch_pages, held, held_seqs, new_packets, packets,
    write,
};
use crate::Fixture;

/// Pages of `limit` messages after the last `seq` seen walk the queue exactly once.
pub async fn fetch_pages_by_seq<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let messages = chats(&juliet, 0..25);
    let expected = new_packets(&messages);
    write(store, &juliet, messages).await;
    for page in [1, 7, 10, 25, 26] {
        let seen = fetch_pages(store, &juliet, None, page, T0).await;
        assert_eq!(
            packets(&seen),
            expected,
            "pages of {page} walk the queue once, in order"
        );
    }
    let first = store
        .fetch_messages(&juliet, None, Some(10), T0)
        .await
        .unwrap();
    assert_eq!(first.len(), 10, "a limit of 10 on a queue of 25");
}

/// Without a limit, a fetch returns the whole queue in order and removes nothing.
pub async fn fetch_without_limit_is_the_whole_queue<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let messages = chats(&juliet, 0..12);
    write(store, &juliet, messages).await;
    let fetched = held(store, &juliet).await;
    let again = held(store, &juliet).await;
    assert_eq!(fetched, again, "a fetch removes nothing");
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    assert_eq!(fetched, popped, "an unlimited fetch is the whole queue");
}

/// A limit of zero, or an `after` past the last `seq`, returns nothing.
pub async fn fetch_edges_return_nothing<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    write(store, &juliet, chats(&juliet, 0..3)).await;
    let all = held(store, &juliet).await;
    let none = store
        .fetch_messages(&juliet, None, Some(0), T0)
        .await
        .unwrap();
    assert!(none.is_empty(), "a limit of 0 returns nothing: {none:?}");
    let last = all.last().map(|s| s.seq);
    let past = store.fetch_messages(&juliet, last, None, T0).await.unwrap();
    assert!(
        past.is_empty(),
        "after the last seq returns nothing: {past:?}"
    );
    let nobody = fx.user("nobody");
    assert!(
        held(store, &nobody).await.is_empty(),
        "a user without messages has none to fetch"
    );
}

/// Removing by `seq` removes exactly those messages, counting each once, ignoring unknown ones.
pub async fn remove_messages_removes_only_those_seqs<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    write(store, &juliet, chats(&juliet, 0..6)).await;
    let all = held(store, &juliet).await;
    let doomed = [all[1].seq, all[4].seq, all[4].seq, u64::MAX];
    assert_eq!(
        store.remove_messages(&juliet, &doomed).await.unwrap(),
        2,
        "two known seqs, one repeated and one unknown, remove two messages"
    );
    let left = held(store, &juliet).await;
    let expected: Vec<_> = [0, 2, 3, 5].map(|i| all[i].clone()).into();
    assert_eq!(left, expected, "only the seqs named are removed");
    assert_eq!(
        store.remove_messages(&juliet, &[]).await.unwrap(),
        0,
        "no seqs remove nothing"
    );
    let stats = store.count_messages(&juliet).await.unwrap();
    let bytes = expected.iter().map(|s| s.message.size()).sum();
    assert_eq!(
        stats,
        QueueStats { messages: 4, bytes },
        "the count follows removals"
    );
}

/// A `seq` of another user's message removes nothing of either user, even when it exists.
/// (Seqs are per queue: a store may number each user from 1, so only the seqs of alice that
/// ali does not also hold are tried.)
pub async fn remove_messages_ignores_other_users_seqs<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let (ali, alice) = (fx.user("ali"), fx.user("alice"));
    write(store, &alice, chats(&alice, 0..3)).await;
    write(store, &ali, chats(&ali, 0..1)).await;
    let alis = held_seqs(store, &ali).await;
    let alices: Vec<u64> = held_seqs(store, &alice)
        .await
        .into_iter()
        .filter(|seq| !alis.contains(seq))
        .collect();
    assert!(!alices.is_empty(), "alice holds seqs that ali does not");
    assert_eq!(
        store.remove_messages(&ali, &alices).await.unwrap(),
        0,
        "ali cannot remove alice's messages by seq"
    );
    assert_eq!(count(store, &alice).await, 3, "alice keeps her messages");
    assert_eq!(count(store, &ali).await, 1, "ali keeps his");
}

/// Fetch, deliver, then remove what was acknowledged, while new messages keep arriving: every
/// message is delivered, in order, and the queue ends empty.
pub async fn acknowledged_delivery_loses_nothing<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let messages = chats(&juliet, 0..30);
    let expected = new_packets(&messages);
    let mut arriving = messages.into_iter();
    let mut delivered = Vec::new();
    for _ in 0..expected.len() + 1 {
        let incoming: Vec<_> = arriving.by_ref().take(4).collect();
        let done = incoming.is_empty();
        write(store, &juliet, incoming).await;
        let page = store
            .fetch_messages(&juliet, None, Some(3), T0)
            .await
            .unwrap();
        assert_seq_increasing(&page);
        if page.is_empty() && done {
            break;
        }
        let acked: Vec<u64> = page.iter().map(|s| s.seq).collect();
        delivered.extend(packets(&page));
        let removed = store.remove_messages(&juliet, &acked).await.unwrap();
        assert_eq!(
            removed,
            acked.len() as u64,
            "every acknowledged seq is removed"
        );
    }
    assert_eq!(delivered, expected, "each message delivered once, in order");
    assert_eq!(
        store.count_messages(&juliet).await.unwrap(),
        QueueStats::default(),
        "the queue ends empty"
    );
}
