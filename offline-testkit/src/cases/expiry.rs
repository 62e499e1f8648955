//! Expiry on every path: pop, fetch, write, quota.

use offline_core::{OfflineBackend, QueueStats, Quota, WriteReport};

use super::{SECOND, T0, chat, new_packets, packets, write};
use crate::Fixture;

/// A pop returns only unexpired messages and removes the expired ones too.
pub async fn pop_drops_expired_messages<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let keeps = chat(&juliet, 0).expires_at(T0 + 60 * SECOND);
    let lapses = chat(&juliet, 1).expires_at(T0 + 10 * SECOND);
    let forever = chat(&juliet, 2);
    let expected = vec![keeps.packet.clone(), forever.packet.clone()];
    write(store, &juliet, vec![keeps, lapses, forever]).await;
    let popped = store.pop_messages(&juliet, T0 + 10 * SECOND).await.unwrap();
    assert_eq!(
        packets(&popped),
        expected,
        "a pop returns the unexpired only"
    );
    assert_eq!(
        store.count_messages(&juliet).await.unwrap(),
        QueueStats::default(),
        "a pop removes the expired messages too"
    );
}

/// A fetch skips expired messages without removing anything.
pub async fn fetch_skips_expired_messages<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let lapses = chat(&juliet, 0).expires_at(T0 + SECOND);
    let stays = chat(&juliet, 1);
    write(store, &juliet, vec![lapses, stays.clone()]).await;
    let later = T0 + 2 * SECOND;
    let fetched = store
        .fetch_messages(&juliet, None, None, later)
        .await
        .unwrap();
    assert_eq!(
        packets(&fetched),
        [stays.packet],
        "a fetch skips the expired"
    );
    assert_eq!(
        store.count_messages(&juliet).await.unwrap().messages,
        2,
        "a fetch removes nothing, expired messages included"
    );
}

/// A message is expired from the instant its `expire` time is reached.
pub async fn expiry_is_reached_at_the_expire_instant<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let expire = T0 + 5 * SECOND;
    write(store, &juliet, vec![chat(&juliet, 0).expires_at(expire)]).await;
    let before = store
        .fetch_messages(&juliet, None, None, expire - 1)
        .await
        .unwrap();
    assert_eq!(before.len(), 1, "visible one microsecond before expiry");
    let at = store
        .fetch_messages(&juliet, None, None, expire)
        .await
        .unwrap();
    assert!(at.is_empty(), "expired at its expire time");
    assert!(
        store
            .pop_messages(&juliet, expire)
            .await
            .unwrap()
            .is_empty(),
        "a pop at the expire instant returns nothing"
    );
}

/// A message already expired when written is skipped and reported as such.
pub async fn already_expired_messages_are_not_stored<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let batch = vec![chat(&juliet, 0).expires_at(T0), chat(&juliet, 1)];
    let report = write(store, &juliet, batch).await;
    assert_eq!(
        report,
        WriteReport {
            stored: 1,
            duplicates: 0,
            expired: 1
        },
        "a message expired when written is reported as expired"
    );
    assert_eq!(
        store.count_messages(&juliet).await.unwrap().messages,
        1,
        "and is not stored"
    );
}

/// Expired messages never count toward the quota.
pub async fn expired_messages_do_not_count_toward_quota<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let quota = Quota::messages(2);
    let lapsing = vec![
        chat(&juliet, 0).expires_at(T0 + SECOND),
        chat(&juliet, 1).expires_at(T0 + SECOND),
    ];
    store
        .write_messages(&juliet, lapsing, quota, T0)
        .await
        .unwrap();
    let later = T0 + SECOND;
    let fresh = vec![chat(&juliet, 2), chat(&juliet, 3)];
    let report = store
        .write_messages(&juliet, fresh, quota, later)
        .await
        .expect("expired messages do not count toward the quota");
    assert_eq!(report.stored, 2, "two expired messages leave room for two");
    let popped = store.pop_messages(&juliet, later).await.unwrap();
    assert_eq!(popped.len(), 2, "only the fresh messages are delivered");
}

/// A message that expires, written one at a time after one that does not, frees its room
/// once it has expired: a store that tracks the earliest expiry it holds must lower it when
/// such a message arrives.
pub async fn a_later_message_that_expires_frees_its_room<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let quota = Quota::messages(2);
    let lasting = chat(&juliet, 0);
    let lapsing = chat(&juliet, 1).expires_at(T0 + SECOND);
    for message in [lasting, lapsing] {
        store
            .write_messages(&juliet, vec![message], quota, T0)
            .await
            .unwrap();
    }
    let later = T0 + SECOND;
    store
        .write_messages(&juliet, vec![chat(&juliet, 2)], quota, later)
        .await
        .expect("the expired message no longer counts toward the quota");
    let popped = store.pop_messages(&juliet, later).await.unwrap();
    assert_eq!(
        packets(&popped),
        new_packets(&[chat(&juliet, 0), chat(&juliet, 2)]),
        "the lasting and the new message are delivered"
    );
}

/// Messages that expire at different times each free their room when their time comes: a
/// store that tracks the earliest expiry it holds must move it on to the next one when it
/// removes the first.
pub async fn each_expiry_frees_its_room_in_turn<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let quota = Quota::messages(2);
    let first = chat(&juliet, 0).expires_at(T0 + SECOND);
    let second = chat(&juliet, 1).expires_at(T0 + 2 * SECOND);
    write(store, &juliet, vec![first, second]).await;
    for (n, now) in [(2, T0 + SECOND), (3, T0 + 2 * SECOND)] {
        store
            .write_messages(&juliet, vec![chat(&juliet, n)], quota, now)
            .await
            .unwrap_or_else(|e| {
                panic!("message {n}: the message expired by then frees its room: {e}")
            });
    }
    let popped = store.pop_messages(&juliet, T0 + 2 * SECOND).await.unwrap();
    assert_eq!(
        packets(&popped),
        new_packets(&[chat(&juliet, 2), chat(&juliet, 3)]),
        "both expired messages made room, one at a time"
    );
}

/// A write removes the user's expired messages before storing, so the count drops.
pub async fn write_removes_the_users_expired_messages<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let lapsing = chat(&juliet, 0).expires_at(T0 + SECOND);
    write(store, &juliet, vec![lapsing, chat(&juliet, 1)]).await;
    assert_eq!(
        store.count_messages(&juliet).await.unwrap().messages,
        2,
        "the count holds the lapsed message until a path removes it"
    );
    store
        .write_messages(
            &juliet,
            vec![chat(&juliet, 2)],
            Quota::UNLIMITED,
            T0 + SECOND,
        )
        .await
        .unwrap();
    assert_eq!(
        store.count_messages(&juliet).await.unwrap().messages,
        2,
        "the write removed the lapsed message before adding one"
    );
}

/// A write refused for quota still removes the user's expired messages, and nothing else.
pub async fn refused_write_still_removes_expired_messages<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let quota = Quota::messages(2);
    let lapsing = chat(&juliet, 0).expires_at(T0 + SECOND);
    let kept = vec![lapsing, chat(&juliet, 1)];
    store
        .write_messages(&juliet, kept, quota, T0)
        .await
        .unwrap();
    let later = T0 + SECOND;
    let too_many = vec![chat(&juliet, 2), chat(&juliet, 3)];
    let refused = store.write_messages(&juliet, too_many, quota, later).await;
    assert!(
        refused.is_err(),
        "1 held + 2 incoming is over 2: {refused:?}"
    );
    assert_eq!(
        store.count_messages(&juliet).await.unwrap().messages,
        1,
        "the refused write removed the expired message and added nothing"
    );
}
