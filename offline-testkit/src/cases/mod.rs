//! The conformance cases: ordinary async functions, one per contract point, each taking the
//! case's [`Fixture`](crate::Fixture). [`conformance_tests!`](crate::conformance_tests) stamps
//! one `#[test]` per case into a backend crate.
//!
//! Every assertion says which rule of the contract broke. Every paging loop fails, instead of
//! spinning, when a page does not move its cursor forward.

mod collation;
mod content;
mod dedupe;
mod expiry;
mod fetch;
mod isolation;
mod limits;
mod listing;
mod ordering;
mod peers;
mod purge;
mod quota;
mod race;
mod restart;
mod times;

pub use collation::*;
pub use content::*;
pub use dedupe::*;
pub use expiry::*;
pub use fetch::*;
pub use isolation::*;
pub use limits::*;
pub use listing::*;
pub use ordering::*;
pub use peers::*;
pub use purge::*;
pub use quota::*;
pub use race::*;
pub use restart::*;
pub use times::*;

use offline_core::{
    Domain, NewMessage, OfflineBackend, Quota, StoredMessage, UserKey, WriteReport,
};

/// The time the cases start at, µs since the epoch (2023-11-14).
pub(crate) const T0: i64 = 1_700_000_000_000_000;
/// One second in µs.
pub(crate) const SECOND: i64 = 1_000_000;
/// One day in µs.
pub(crate) const DAY: i64 = 86_400 * SECOND;

/// The `n`th chat message for `to`, stamped `T0`, no expiry.
pub(crate) fn chat(to: &UserKey, n: usize) -> NewMessage {
    NewMessage::new(
        T0,
        "romeo@example.net/orchard",
        to.to_string(),
        format!("<message type='chat' to='{to}'><body>message {n}</body></message>"),
    )
}

/// Chat messages `range` for `to`.
pub(crate) fn chats(to: &UserKey, range: std::ops::Range<usize>) -> Vec<NewMessage> {
    range.map(|n| chat(to, n)).collect()
}

/// The packets of stored messages, in the order given.
pub(crate) fn packets(stored: &[StoredMessage]) -> Vec<String> {
    stored.iter().map(|s| s.message.packet.clone()).collect()
}

/// The packets of new messages, in the order given.
pub(crate) fn new_packets(messages: &[NewMessage]) -> Vec<String> {
    messages.iter().map(|m| m.packet.clone()).collect()
}

/// Writes with no quota at `T0`, failing the case on error.
pub(crate) async fn write<S: OfflineBackend + ?Sized>(
    store: &S,
    user: &UserKey,
    messages: Vec<NewMessage>,
) -> WriteReport {
    store
        .write_messages(user, messages, Quota::UNLIMITED, T0)
        .await
        .unwrap_or_else(|e| panic!("writing to {user}: {e}"))
}

/// Every message of the user unexpired at `T0`, in order.
pub(crate) async fn held<S: OfflineBackend + ?Sized>(
    store: &S,
    user: &UserKey,
) -> Vec<StoredMessage> {
    store
        .fetch_messages(user, None, None, T0)
        .await
        .unwrap_or_else(|e| panic!("fetching the messages of {user}: {e}"))
}

/// The `seq`s of the user's unexpired messages at `T0`, in order.
pub(crate) async fn held_seqs<S: OfflineBackend + ?Sized>(store: &S, user: &UserKey) -> Vec<u64> {
    held(store, user).await.iter().map(|s| s.seq).collect()
}

/// How many messages the user's queue holds.
pub(crate) async fn count<S: OfflineBackend + ?Sized>(store: &S, user: &UserKey) -> u64 {
    store
        .count_messages(user)
        .await
        .unwrap_or_else(|e| panic!("counting the messages of {user}: {e}"))
        .messages
}

/// Asserts that `seq`s strictly increase.
pub(crate) fn assert_seq_increasing(stored: &[StoredMessage]) {
    for pair in stored.windows(2) {
        assert!(
            pair[0].seq < pair[1].seq,
            "seqs must increase in queue order: seq {} is followed by {}",
            pair[0].seq,
            pair[1].seq
        );
    }
}

/// Pages through the user's messages unexpired at `now`, `page` at a time from `after`, to
/// the end. Fails if a page is larger than asked, is out of order, or does not move past the
/// cursor it started from.
pub(crate) async fn fetch_pages<S: OfflineBackend + ?Sized>(
    store: &S,
    user: &UserKey,
    mut after: Option<u64>,
    page: usize,
    now: i64,
) -> Vec<StoredMessage> {
    let mut all = Vec::new();
    loop {
        let fetched = store
            .fetch_messages(user, after, Some(page), now)
            .await
            .unwrap_or_else(|e| panic!("fetching a page of {user} after {after:?}: {e}"));
        assert!(
            fetched.len() <= page,
            "fetch_messages returned {} messages for a limit of {page}",
            fetched.len()
        );
        assert_seq_increasing(&fetched);
        if let (Some(after), Some(first)) = (after, fetched.first()) {
            assert!(
                first.seq > after,
                "fetch_messages after seq {after} returned seq {}: `after` is exclusive",
                first.seq
            );
        }
        let Some(last) = fetched.last() else {
            return all;
        };
        after = Some(last.seq);
        let short = fetched.len() < page;
        all.extend(fetched);
        if short {
            return all;
        }
    }
}

/// Pages through `list_users` (of `domain`, if given) from `after` to the end, `page` at a
/// time, keeping the users `keep` accepts; stops after the first page holding a user it does
/// not (on a shared store, the end of the case's namespace). Fails if a page is larger than
/// asked, out of order, or does not move past its cursor.
pub(crate) async fn list_pages<S: OfflineBackend + ?Sized>(
    store: &S,
    domain: Option<&Domain>,
    mut after: Option<UserKey>,
    page: usize,
    keep: impl Fn(&UserKey) -> bool,
) -> Vec<UserKey> {
    let mut listed = Vec::new();
    loop {
        let keys = store
            .list_users(domain, after.as_ref(), page)
            .await
            .unwrap_or_else(|e| panic!("listing users after {after:?}: {e}"));
        assert!(
            keys.len() <= page,
            "list_users returned {} users for a limit of {page}",
            keys.len()
        );
        for pair in keys.windows(2) {
            assert!(
                pair[0] < pair[1],
                "list_users must list in (server, user) byte order: {:?} came before {:?}",
                pair[0],
                pair[1]
            );
        }
        if let (Some(after), Some(first)) = (&after, keys.first()) {
            assert!(
                after < first,
                "list_users after {after:?} returned {first:?}: `after` is exclusive"
            );
        }
        let ours: Vec<UserKey> = keys.iter().filter(|k| keep(k)).cloned().collect();
        let left = ours.len() < keys.len();
        listed.extend(ours);
        if keys.len() < page || left {
            return listed;
        }
        after = keys.last().cloned();
    }
}
