//! Arrival order, `seq`s, whole-queue pops and what a stored message keeps.

use offline_core::{NewMessage, OfflineBackend, QueueStats, WriteReport};

use super::{
    T0, assert_seq_increasing, chat, chats, count, held_seqs, new_packets, packets, write,
};
use crate::Fixture;

/// Messages written in several batches pop in the order they were written, with increasing
/// `seq`s.
pub async fn pop_returns_messages_in_arrival_order<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let mut written = Vec::new();
    for batch in [0..3, 3..4, 4..9] {
        let messages = chats(&juliet, batch);
        written.extend(new_packets(&messages));
        write(store, &juliet, messages).await;
    }
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    assert_eq!(packets(&popped), written, "a pop returns arrival order");
    assert_seq_increasing(&popped);
}

/// `seq`s increase per user however writes to several users interleave. (They need not be
/// unique across users: a store on a multi-master cluster numbers each user on its own.)
pub async fn seqs_increase_per_user_however_writes_interleave<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    let store = fx.store();
    let (alice, bob) = (fx.user("alice"), fx.user("bob"));
    for n in 0..5 {
        write(store, &alice, vec![chat(&alice, n)]).await;
        write(store, &bob, chats(&bob, n * 2..n * 2 + 2)).await;
    }
    let alices = store.pop_messages(&alice, T0).await.unwrap();
    let bobs = store.pop_messages(&bob, T0).await.unwrap();
    assert_eq!(
        packets(&alices),
        new_packets(&chats(&alice, 0..5)),
        "alice's queue in arrival order"
    );
    assert_eq!(
        packets(&bobs),
        new_packets(&chats(&bob, 0..10)),
        "bob's queue in arrival order"
    );
    assert_seq_increasing(&alices);
    assert_seq_increasing(&bobs);
}

/// A user's `seq`s are never reused: not after the queue is popped, acknowledged or removed,
/// whatever else the store holds or does not hold.
pub async fn seq_is_never_reused_after_the_queue_empties<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let mut highest = 0;
    for (round, emptying) in ["pop", "remove_messages", "remove_user", "remove_domain"]
        .into_iter()
        .enumerate()
    {
        write(store, &juliet, chats(&juliet, round * 2..round * 2 + 2)).await;
        let seqs = held_seqs(store, &juliet).await;
        assert!(
            seqs.iter().all(|&seq| seq > highest),
            "after the queue was emptied by {emptying}, seqs {seqs:?} reuse numbers up to {highest}"
        );
        highest = seqs.iter().copied().max().unwrap_or(highest);
        match emptying {
            "pop" => drop(store.pop_messages(&juliet, T0).await.unwrap()),
            "remove_messages" => drop(store.remove_messages(&juliet, &seqs).await.unwrap()),
            "remove_user" => drop(store.remove_user(&juliet).await.unwrap()),
            _ => drop(store.remove_domain(&juliet.domain()).await.unwrap()),
        }
        assert_eq!(
            count(store, &juliet).await,
            0,
            "{emptying} empties the queue"
        );
    }
    write(store, &juliet, vec![chat(&juliet, 99)]).await;
    let last = held_seqs(store, &juliet).await;
    assert!(
        last.iter().all(|&seq| seq > highest),
        "after every way of emptying, seq {last:?} reuses a number up to {highest}"
    );
}

/// A pop takes the whole queue: afterwards nothing is counted, fetched, popped or listed.
pub async fn pop_takes_the_whole_queue<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    write(store, &juliet, chats(&juliet, 0..4)).await;
    assert_eq!(
        store.pop_messages(&juliet, T0).await.unwrap().len(),
        4,
        "a pop returns the whole queue"
    );
    assert_eq!(
        store.count_messages(&juliet).await.unwrap(),
        QueueStats::default(),
        "a pop leaves nothing counted"
    );
    assert!(
        store
            .fetch_messages(&juliet, None, None, T0)
            .await
            .unwrap()
            .is_empty(),
        "a pop leaves nothing to fetch"
    );
    assert!(
        store.pop_messages(&juliet, T0).await.unwrap().is_empty(),
        "a second pop finds nothing"
    );
    let domain = fx.domain("example.com");
    let listed = store.list_users(Some(&domain), None, 10).await.unwrap();
    assert!(listed.is_empty(), "a popped user is not listed: {listed:?}");
}

/// Popping a user who never had a message returns nothing and is not an error.
pub async fn pop_of_an_unknown_user_is_empty<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let nobody = fx.user("nobody");
    assert!(
        store.pop_messages(&nobody, T0).await.unwrap().is_empty(),
        "a pop of a user without messages"
    );
    assert_eq!(
        store.remove_user(&nobody).await.unwrap(),
        0,
        "remove_user of a user without messages"
    );
    assert_eq!(
        store.remove_messages(&nobody, &[1, 2]).await.unwrap(),
        0,
        "remove_messages of a user without messages"
    );
}

/// Every field of a message comes back exactly as written.
pub async fn stored_messages_keep_every_field<S: OfflineBackend>(fx: &mut Fixture<S>) {
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
    assert_eq!(
        fetched, popped,
        "fetch and pop return the same messages and seqs"
    );
    let messages: Vec<NewMessage> = popped.into_iter().map(|s| s.message).collect();
    assert_eq!(messages, written, "every field comes back as written");
}

/// An empty batch stores nothing, reports nothing and creates no queue.
pub async fn empty_batch_changes_nothing<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    assert_eq!(
        write(store, &juliet, Vec::new()).await,
        WriteReport::default(),
        "an empty batch reports nothing"
    );
    assert_eq!(
        store.count_messages(&juliet).await.unwrap(),
        QueueStats::default(),
        "an empty batch stores nothing"
    );
    let domain = fx.domain("example.com");
    let listed = store.list_users(Some(&domain), None, 10).await.unwrap();
    assert!(
        listed.is_empty(),
        "an empty batch creates no queue: {listed:?}"
    );
}

/// The report of a plain write counts what was stored.
pub async fn write_reports_what_it_stored<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let report = write(store, &juliet, chats(&juliet, 0..7)).await;
    assert_eq!(
        report,
        WriteReport {
            stored: 7,
            duplicates: 0,
            expired: 0
        },
        "the report of a plain write"
    );
}
