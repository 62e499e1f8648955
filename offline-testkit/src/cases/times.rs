//! Time as the caller gives it: `now` moving backwards, and times at their extremes.

use offline_core::{NewMessage, OfflineBackend, Quota, WriteReport};

use super::{DAY, SECOND, T0, assert_seq_increasing, chat, count, held, packets, write};
use crate::Fixture;

/// A clock set back shows again what a read only skipped, removes nothing that was not
/// expired at the time given, and still numbers new messages after the old ones.
pub async fn now_moving_backwards_loses_nothing<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let domain = fx.domain("example.com");
    let lapsing = chat(&juliet, 0).expires_at(T0 + 10 * SECOND);
    write(store, &juliet, vec![lapsing.clone(), chat(&juliet, 1)]).await;
    let later = store
        .fetch_messages(&juliet, None, None, T0 + 20 * SECOND)
        .await
        .unwrap();
    assert_eq!(later.len(), 1, "at T0+20s the lapsed message is skipped");
    let earlier = store.fetch_messages(&juliet, None, None, T0).await.unwrap();
    assert_eq!(
        earlier.len(),
        2,
        "back at T0 the fetch shows it again: fetch removes nothing"
    );
    assert_eq!(
        store
            .remove_expired_messages(&domain, T0 + 5 * SECOND)
            .await
            .unwrap(),
        0,
        "nothing is expired at T0+5s"
    );
    store
        .write_messages(&juliet, vec![chat(&juliet, 2)], Quota::UNLIMITED, T0 - DAY)
        .await
        .expect("a write with a clock a day behind");
    let all = held(store, &juliet).await;
    assert_eq!(
        packets(&all),
        [0, 1, 2].map(|n| chat(&juliet, n).packet),
        "a write at an earlier now removes nothing unexpired and appends in arrival order"
    );
    assert_seq_increasing(&all);
    let popped = store.pop_messages(&juliet, T0 + 20 * SECOND).await.unwrap();
    assert_eq!(popped.len(), 2, "a pop at T0+20s skips the lapsed message");
    assert!(
        held(store, &juliet).await.is_empty(),
        "the pop removed the lapsed message too: a clock set back cannot bring it back"
    );
}

/// Timestamps at 0 and `i64::MAX`, expiry at `i64::MAX`, and `now` at `i64::MIN` and
/// `i64::MAX` behave as the contract says, without overflow.
pub async fn times_at_the_extremes_are_kept<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let domain = fx.domain("example.com");
    let oldest = NewMessage {
        timestamp: 0,
        ..chat(&juliet, 0)
    };
    let newest = NewMessage {
        timestamp: i64::MAX,
        ..chat(&juliet, 1)
    }
    .expires_at(i64::MAX);
    let written = vec![oldest, newest];
    store
        .write_messages(&juliet, written.clone(), Quota::UNLIMITED, i64::MIN)
        .await
        .expect("a write at now = i64::MIN");
    let at_the_start = store
        .fetch_messages(&juliet, None, None, i64::MIN)
        .await
        .unwrap();
    let kept: Vec<NewMessage> = at_the_start.into_iter().map(|s| s.message).collect();
    assert_eq!(
        kept, written,
        "extreme timestamps and expiry come back as written"
    );
    let just_before = store
        .fetch_messages(&juliet, None, None, i64::MAX - 1)
        .await
        .unwrap();
    assert_eq!(
        just_before.len(),
        2,
        "expire = i64::MAX is not reached at i64::MAX - 1"
    );
    let at_the_end = store
        .fetch_messages(&juliet, None, None, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        packets(&at_the_end),
        [chat(&juliet, 0).packet],
        "expire = i64::MAX is reached at now = i64::MAX"
    );
    assert_eq!(
        store.remove_old_messages(&domain, i64::MIN).await.unwrap(),
        0,
        "nothing is older than i64::MIN"
    );
    assert_eq!(
        store
            .remove_expired_messages(&domain, i64::MIN)
            .await
            .unwrap(),
        0,
        "nothing has expired at i64::MIN"
    );
    assert_eq!(
        store.remove_old_messages(&domain, i64::MAX).await.unwrap(),
        1,
        "the message stamped 0 is older than i64::MAX, the one stamped i64::MAX is not"
    );
    assert_eq!(
        store
            .remove_expired_messages(&domain, i64::MAX)
            .await
            .unwrap(),
        1,
        "at i64::MAX the message expiring then is expired"
    );
    assert_eq!(
        count(store, &juliet).await,
        0,
        "both purges emptied the queue"
    );
}

/// A message stamped 0 is accepted and kept as it is; one expiring at 0 is skipped as
/// expired, not refused.
pub async fn timestamp_zero_is_kept_and_expire_zero_is_expired<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let epoch = NewMessage {
        timestamp: 0,
        ..chat(&juliet, 0)
    };
    let lapsed = chat(&juliet, 1).expires_at(0);
    let report = write(store, &juliet, vec![epoch.clone(), lapsed]).await;
    assert_eq!(
        report,
        WriteReport {
            stored: 1,
            duplicates: 0,
            expired: 1
        },
        "timestamp 0 is valid; expire 0 is already expired at T0"
    );
    let kept: Vec<NewMessage> = held(store, &juliet)
        .await
        .into_iter()
        .map(|s| s.message)
        .collect();
    assert_eq!(kept, [epoch], "the message stamped 0 comes back unchanged");
}
