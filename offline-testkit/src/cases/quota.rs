//! Quota by messages and by bytes, all or nothing.

use offline_core::{NewMessage, OfflineBackend, OfflineError, QueueStats, Quota};

use super::{T0, chat, chats, new_packets, packets};
use crate::Fixture;

/// Up to the limit every write is admitted; past it the write fails with `QuotaExceeded`
/// carrying the numbers.
pub async fn quota_admits_up_to_the_message_limit<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let quota = Quota::messages(3);
    for n in 0..3 {
        store
            .write_messages(&juliet, vec![chat(&juliet, n)], quota, T0)
            .await
            .unwrap_or_else(|e| panic!("message {n} of 3: {e}"));
    }
    let fourth = chat(&juliet, 3);
    let size = fourth.size();
    let err = store
        .write_messages(&juliet, vec![fourth], quota, T0)
        .await
        .unwrap_err();
    match err {
        OfflineError::QuotaExceeded {
            user,
            quota: applied,
            stored,
            incoming,
        } => {
            assert_eq!(user, juliet, "QuotaExceeded names the recipient");
            assert_eq!(applied, quota, "QuotaExceeded carries the quota applied");
            assert_eq!(stored.messages, 3, "QuotaExceeded carries what is held");
            assert_eq!(
                incoming,
                QueueStats {
                    messages: 1,
                    bytes: size
                },
                "QuotaExceeded carries what the batch would add"
            );
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(
        store.count_messages(&juliet).await.unwrap().messages,
        3,
        "the refused write stored nothing"
    );
}

/// A batch that would go over the limit is refused whole: none of it is stored.
pub async fn quota_refuses_the_whole_batch<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let quota = Quota::messages(5);
    let first = chats(&juliet, 0..3);
    let expected = new_packets(&first);
    store
        .write_messages(&juliet, first, quota, T0)
        .await
        .unwrap();
    let refused = store
        .write_messages(&juliet, chats(&juliet, 3..6), quota, T0)
        .await;
    assert!(
        matches!(refused, Err(OfflineError::QuotaExceeded { .. })),
        "3 held + 3 incoming is over 5: {refused:?}"
    );
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    assert_eq!(
        packets(&popped),
        expected,
        "nothing of the refused batch is stored"
    );
}

/// The byte limit counts packet lengths and refuses a batch whole.
pub async fn byte_quota_refuses_the_whole_batch<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let sized = |n: usize, len: usize| NewMessage {
        packet: format!("<m n='{n}'>{}</m>", "x".repeat(len - 13)),
        ..chat(&juliet, n)
    };
    assert_eq!(sized(0, 40).size(), 40, "the test's own 40-byte message");
    let quota = Quota::UNLIMITED.with_max_bytes(100);
    store
        .write_messages(&juliet, vec![sized(0, 40), sized(1, 40)], quota, T0)
        .await
        .unwrap();
    let err = store
        .write_messages(&juliet, vec![sized(2, 15), sized(3, 15)], quota, T0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, OfflineError::QuotaExceeded { stored, incoming, .. }
            if stored.bytes == 80 && incoming.bytes == 30),
        "80 bytes held + 30 incoming is over 100: {err:?}"
    );
    assert_eq!(
        store.count_messages(&juliet).await.unwrap(),
        QueueStats {
            messages: 2,
            bytes: 80
        },
        "the refused batch stored nothing"
    );
    store
        .write_messages(&juliet, vec![sized(4, 20)], quota, T0)
        .await
        .expect("exactly at the byte limit is admitted");
}

/// Bytes are UTF-8 bytes, not characters.
pub async fn byte_quota_counts_utf8_bytes<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let packet = "<message><body>żółć 🎉</body></message>".to_owned();
    let bytes = packet.len() as u64;
    assert!(
        bytes > packet.chars().count() as u64,
        "the test's packet has multi-byte characters"
    );
    let message = NewMessage {
        packet,
        ..chat(&juliet, 0)
    };
    let too_small = Quota::UNLIMITED.with_max_bytes(bytes - 1);
    let refused = store
        .write_messages(&juliet, vec![message.clone()], too_small, T0)
        .await;
    assert!(
        matches!(refused, Err(OfflineError::QuotaExceeded { .. })),
        "a packet of {bytes} UTF-8 bytes is over a limit of {}: {refused:?}",
        bytes - 1
    );
    let exact = Quota::UNLIMITED.with_max_bytes(bytes);
    store
        .write_messages(&juliet, vec![message], exact, T0)
        .await
        .unwrap();
    assert_eq!(
        store.count_messages(&juliet).await.unwrap().bytes,
        bytes,
        "count_messages reports UTF-8 bytes"
    );
}

/// One user's full queue does not stop another's writes.
pub async fn quota_is_per_user<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let (alice, alicia) = (fx.user("alice"), fx.user("alicia"));
    let quota = Quota::messages(2);
    store
        .write_messages(&alice, chats(&alice, 0..2), quota, T0)
        .await
        .unwrap();
    let refused = store
        .write_messages(&alice, vec![chat(&alice, 2)], quota, T0)
        .await;
    assert!(
        matches!(refused, Err(OfflineError::QuotaExceeded { .. })),
        "alice's queue is full: {refused:?}"
    );
    store
        .write_messages(&alicia, chats(&alicia, 0..2), quota, T0)
        .await
        .expect("alice's full queue does not stop alicia's writes");
}

/// Without limits a large batch is stored whole.
pub async fn unlimited_quota_admits_large_batches<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let report = store
        .write_messages(&juliet, chats(&juliet, 0..1000), Quota::UNLIMITED, T0)
        .await
        .unwrap();
    assert_eq!(report.stored, 1000, "a batch of 1000 without limits");
    assert_eq!(
        store.count_messages(&juliet).await.unwrap().messages,
        1000,
        "every message of the batch is held"
    );
}
