//! The conformance cases: ordinary async functions, one per contract point, each taking a
//! fresh [`Fixture`](crate::Fixture). [`conformance_tests!`](crate::conformance_tests) stamps
//! one `#[test]` per case into a backend crate.

mod content;
mod dedupe;
mod expiry;
mod fetch;
mod isolation;
mod listing;
mod ordering;
mod purge;
mod quota;
mod race;

pub use content::*;
pub use dedupe::*;
pub use expiry::*;
pub use fetch::*;
pub use isolation::*;
pub use listing::*;
pub use ordering::*;
pub use purge::*;
pub use quota::*;
pub use race::*;

use offline_core::{NewMessage, OfflineBackend, Quota, StoredMessage, UserKey, WriteReport};

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
pub(crate) async fn write<S: OfflineBackend>(
    store: &S,
    user: &UserKey,
    messages: Vec<NewMessage>,
) -> WriteReport {
    store
        .write_messages(user, messages, Quota::UNLIMITED, T0)
        .await
        .unwrap_or_else(|e| panic!("writing to {user}: {e}"))
}

/// The `seq`s of the user's unexpired messages at `T0`, in order.
pub(crate) async fn held_seqs<S: OfflineBackend>(store: &S, user: &UserKey) -> Vec<u64> {
    let held = store.fetch_messages(user, None, None, T0).await.unwrap();
    held.iter().map(|s| s.seq).collect()
}

/// Asserts that `seq`s strictly increase.
pub(crate) fn assert_seq_increasing(stored: &[StoredMessage]) {
    for pair in stored.windows(2) {
        assert!(
            pair[0].seq < pair[1].seq,
            "seq {} is followed by {}",
            pair[0].seq,
            pair[1].seq
        );
    }
}
