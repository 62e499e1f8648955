//! Every length limit of the contract at its maximum and one past it, and batches as large as
//! databases choke on.

use offline_core::{
    Domain, MAX_ADDRESS_BYTES, MAX_DEDUPE_KEY_BYTES, MAX_LOCALPART_BYTES, MAX_PACKET_BYTES,
    MAX_PERMANENT_FIELDS_BYTES, NewMessage, OfflineBackend, OfflineError, QueueStats, Quota,
};

use super::{T0, assert_seq_increasing, chat, chats, count, held, new_packets, packets, write};
use crate::Fixture;

/// The longest ASCII domain a JID may have, in bytes.
const MAX_ASCII_DOMAIN_BYTES: usize = 253;

/// The longest domain in bytes after `namespace`: four labels of as many four-byte characters
/// as their ASCII (punycode) form allows, about 900 bytes of UTF-8.
fn longest_domain(namespace: &str) -> String {
    let label = |n: usize| "𠀀".repeat(n);
    let mut labels: Vec<String> = Vec::new();
    for _ in 0..4 {
        let fits = |n: usize| {
            let mut candidate = labels.clone();
            candidate.push(label(n));
            Domain::new(&format!("{namespace}{}", candidate.join("."))).is_ok()
        };
        match (1..64).filter(|&n| fits(n)).max() {
            Some(longest) => labels.push(label(longest)),
            None => break,
        }
    }
    labels.join(".")
}

/// `text` repeated, then padded with `pad`, to exactly `len` bytes.
fn exactly(len: usize, text: &str, pad: char) -> String {
    let mut out = text.repeat(len / text.len());
    while out.len() < len {
        out.push(pad);
    }
    out
}

/// A user with the longest localpart (multi-byte characters) at the longest domain (multi-byte
/// too, far beyond 253 bytes), and
/// messages with the longest `from`, `to`, dedupe key and packet, all come back byte for byte.
pub async fn every_length_limit_round_trips_at_its_maximum<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let domain = fx.domain(&longest_domain(fx.namespace()));
    assert!(
        domain.as_str().len() > MAX_ASCII_DOMAIN_BYTES,
        "the test builds a Unicode domain longer than any ASCII one"
    );
    let local = exactly(MAX_LOCALPART_BYTES, "ä", 'a');
    let user = fx.user_at(&local, &domain);
    assert_eq!(
        user.user().len(),
        MAX_LOCALPART_BYTES,
        "the test builds a localpart of the longest length"
    );
    let unit = "ab€🎉";
    let frame = "<message><body></body></message>";
    let body = exactly(MAX_PACKET_BYTES - frame.len(), unit, ' ');
    let longest = NewMessage {
        from: exactly(MAX_ADDRESS_BYTES, "rōmeo@example.net/", 'x'),
        to: exactly(MAX_ADDRESS_BYTES, &format!("{user}/"), 'y'),
        packet: format!("<message><body>{body}</body></message>"),
        ..chat(&user, 0)
    }
    .dedupe_key(exactly(MAX_DEDUPE_KEY_BYTES, "kéy ", '!'))
    .permanent_fields(
        (0..MAX_PERMANENT_FIELDS_BYTES)
            .map(|i| i as u8)
            .collect::<Vec<u8>>(),
    );
    assert_eq!(
        longest.packet.len(),
        MAX_PACKET_BYTES,
        "the test builds a packet of the longest length"
    );
    write(store, &user, vec![longest.clone(), chat(&user, 1)]).await;
    let listed = store.list_users(Some(&domain), None, 10).await.unwrap();
    assert_eq!(
        listed,
        std::slice::from_ref(&user),
        "the longest user is listed whole"
    );
    let fetched = held(store, &user).await;
    assert!(
        fetched.first().is_some_and(|s| s.message == longest),
        "the message at every limit must come back byte for byte"
    );
    assert_eq!(
        count(store, &user).await,
        2,
        "the longest user's queue holds both messages"
    );
    let duplicate = write(store, &user, vec![longest.clone()]).await;
    assert_eq!(
        duplicate.duplicates, 1,
        "the longest dedupe key is matched whole"
    );
    let popped = store.pop_messages(&user, T0).await.unwrap();
    assert!(
        popped.first().is_some_and(|s| s.message == longest),
        "the pop returns the message at every limit byte for byte"
    );
}

/// A batch with one invalid message (empty, oversized or NUL-bearing text, one byte past a
/// limit, a negative time) is refused whole with `InvalidInput`.
pub async fn invalid_messages_are_refused_whole<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let valid = chat(&juliet, 0);
    let with = |change: fn(&mut NewMessage)| {
        let mut message = chat(&juliet, 1);
        change(&mut message);
        message
    };
    let invalid = [
        ("an empty packet", with(|m| m.packet.clear())),
        ("a NUL in the packet", with(|m| m.packet.push('\0'))),
        (
            "a packet one byte too long",
            with(|m| m.packet = "x".repeat(MAX_PACKET_BYTES + 1)),
        ),
        ("an empty from", with(|m| m.from.clear())),
        (
            "a from one byte too long",
            with(|m| m.from = "f".repeat(MAX_ADDRESS_BYTES + 1)),
        ),
        ("a NUL in to", with(|m| m.to.push('\0'))),
        (
            "a to one byte too long",
            with(|m| m.to = "t".repeat(MAX_ADDRESS_BYTES + 1)),
        ),
        (
            "an empty dedupe key",
            with(|m| m.dedupe_key = Some(String::new())),
        ),
        (
            "a dedupe key one byte too long",
            with(|m| m.dedupe_key = Some("k".repeat(MAX_DEDUPE_KEY_BYTES + 1))),
        ),
        (
            "permanent fields one byte too long",
            with(|m| m.permanent_fields = Some(vec![0; MAX_PERMANENT_FIELDS_BYTES + 1])),
        ),
        ("a negative timestamp", with(|m| m.timestamp = -1)),
        ("a negative expire", with(|m| m.expire = Some(-1))),
    ];
    for (what, bad) in invalid {
        let result = store
            .write_messages(&juliet, vec![valid.clone(), bad], Quota::UNLIMITED, T0)
            .await;
        assert!(
            matches!(result, Err(OfflineError::InvalidInput { .. })),
            "a batch with {what} must be refused with InvalidInput, got {result:?}"
        );
    }
    assert_eq!(
        store.count_messages(&juliet).await.unwrap(),
        QueueStats::default(),
        "nothing of a refused batch is stored"
    );
}

/// One batch of 10,000 messages (more bind parameters than PostgreSQL takes in one statement)
/// is stored whole, in order.
pub async fn batch_of_ten_thousand_messages_is_stored_whole<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    const TOTAL: usize = 10_000;
    let store = fx.store();
    let juliet = fx.user("juliet");
    let batch: Vec<NewMessage> = chats(&juliet, 0..TOTAL)
        .into_iter()
        .enumerate()
        .map(|(n, m)| m.dedupe_key(format!("key {n}")))
        .collect();
    let expected = new_packets(&batch);
    let report = store
        .write_messages(&juliet, batch, Quota::messages(TOTAL as u64), T0)
        .await
        .unwrap_or_else(|e| panic!("a batch of {TOTAL} within its quota: {e}"));
    assert_eq!(report.stored, TOTAL as u64, "every message of the batch");
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    assert_seq_increasing(&popped);
    assert_eq!(packets(&popped), expected, "the batch in order");
}

/// One batch of 20 MiB (more than MariaDB's default 16 MiB packet) is stored whole.
pub async fn batch_of_twenty_mebibytes_is_stored_whole<S: OfflineBackend>(fx: &mut Fixture<S>) {
    const MESSAGES: usize = 20;
    let store = fx.store();
    let juliet = fx.user("juliet");
    let batch: Vec<NewMessage> = (0..MESSAGES)
        .map(|n| NewMessage {
            packet: exactly(MAX_PACKET_BYTES, &format!("<m n='{n:02}'/>"), ' '),
            ..chat(&juliet, n)
        })
        .collect();
    let total: u64 = batch.iter().map(NewMessage::size).sum();
    assert_eq!(total, 20 << 20, "the test builds a batch of 20 MiB");
    write(store, &juliet, batch.clone()).await;
    assert_eq!(
        store.count_messages(&juliet).await.unwrap(),
        QueueStats {
            messages: MESSAGES as u64,
            bytes: total
        },
        "the whole 20 MiB batch is held"
    );
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    let back: Vec<NewMessage> = popped.into_iter().map(|s| s.message).collect();
    assert!(
        back == batch,
        "the 20 MiB batch must come back byte for byte"
    );
}
