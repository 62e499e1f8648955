//! Non-destructive reads paged by `seq`, and removal by `seq`.

use offline_core::{OfflineBackend, QueueStats};

use super::{T0, assert_seq_increasing, chats, held_seqs, new_packets, packets, write};
use crate::Fixture;

/// Pages of `limit` messages after the last `seq` seen walk the queue exactly once.
pub async fn fetch_pages_by_seq<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let messages = chats(&juliet, 0..25);
    let expected = new_packets(&messages);
    write(store, &juliet, messages).await;
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .fetch_messages(&juliet, after, Some(10), T0)
            .await
            .unwrap();
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        seen.extend(page);
    }
    assert_eq!(sizes, [10, 10, 5, 0]);
    assert_seq_increasing(&seen);
    assert_eq!(packets(&seen), expected);
}

/// Without a limit, a fetch returns the whole queue in order and removes nothing.
pub async fn fetch_without_limit_is_the_whole_queue<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let messages = chats(&juliet, 0..12);
    write(store, &juliet, messages).await;
    let fetched = store.fetch_messages(&juliet, None, None, T0).await.unwrap();
    let again = store.fetch_messages(&juliet, None, None, T0).await.unwrap();
    assert_eq!(fetched, again);
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    assert_eq!(fetched, popped);
}

/// A limit of zero, or an `after` past the last `seq`, returns nothing.
pub async fn fetch_edges_return_nothing<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    write(store, &juliet, chats(&juliet, 0..3)).await;
    let all = store.fetch_messages(&juliet, None, None, T0).await.unwrap();
    assert!(
        store
            .fetch_messages(&juliet, None, Some(0), T0)
            .await
            .unwrap()
            .is_empty()
    );
    let last = all.last().map(|s| s.seq);
    assert!(
        store
            .fetch_messages(&juliet, last, None, T0)
            .await
            .unwrap()
            .is_empty()
    );
    let nobody = fx.user("nobody");
    assert!(
        store
            .fetch_messages(&nobody, None, None, T0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Removing by `seq` removes exactly those messages, counting each once, ignoring unknown ones.
pub async fn remove_messages_removes_only_those_seqs<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    write(store, &juliet, chats(&juliet, 0..6)).await;
    let all = store.fetch_messages(&juliet, None, None, T0).await.unwrap();
    let doomed = [all[1].seq, all[4].seq, all[4].seq, u64::MAX];
    assert_eq!(store.remove_messages(&juliet, &doomed).await.unwrap(), 2);
    let left = store.fetch_messages(&juliet, None, None, T0).await.unwrap();
    let expected: Vec<_> = [0, 2, 3, 5].map(|i| all[i].clone()).into();
    assert_eq!(left, expected);
    assert_eq!(store.remove_messages(&juliet, &[]).await.unwrap(), 0);
    let stats = store.count_messages(&juliet).await.unwrap();
    let bytes = expected.iter().map(|s| s.message.size()).sum();
    assert_eq!(stats, QueueStats { messages: 4, bytes });
}

/// A `seq` of another user's message removes nothing, even when it exists.
pub async fn remove_messages_ignores_other_users_seqs<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let (ali, alice) = (fx.user("ali"), fx.user("alice"));
    write(store, &alice, chats(&alice, 0..2)).await;
    write(store, &ali, chats(&ali, 0..1)).await;
    let alices = held_seqs(store, &alice).await;
    assert_eq!(store.remove_messages(&ali, &alices).await.unwrap(), 0);
    assert_eq!(store.count_messages(&alice).await.unwrap().messages, 2);
    assert_eq!(store.count_messages(&ali).await.unwrap().messages, 1);
}

/// Fetch, deliver, then remove what was acknowledged, while new messages keep arriving: every
/// message is delivered, in order, and the queue ends empty.
pub async fn acknowledged_delivery_loses_nothing<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let messages = chats(&juliet, 0..30);
    let expected = new_packets(&messages);
    let mut arriving = messages.into_iter();
    let mut delivered = Vec::new();
    loop {
        let incoming: Vec<_> = arriving.by_ref().take(4).collect();
        let done = incoming.is_empty();
        write(store, &juliet, incoming).await;
        let page = store
            .fetch_messages(&juliet, None, Some(3), T0)
            .await
            .unwrap();
        if page.is_empty() && done {
            break;
        }
        let acked: Vec<u64> = page.iter().map(|s| s.seq).collect();
        delivered.extend(packets(&page));
        let removed = store.remove_messages(&juliet, &acked).await.unwrap();
        assert_eq!(removed, acked.len() as u64);
    }
    assert_eq!(delivered, expected);
    assert_eq!(
        store.count_messages(&juliet).await.unwrap(),
        QueueStats::default()
    );
}
