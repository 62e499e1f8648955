//! What a store must keep byte for byte, and how large a queue it must hold.

use offline_core::{NewMessage, OfflineBackend};

use super::{T0, assert_seq_increasing, chat, chats, new_packets, packets, write};
use crate::Fixture;

/// Localparts that are valid JIDs yet full of SQL, LIKE and shell metacharacters or non-ASCII.
const AWKWARD_LOCALPARTS: [&str; 6] = [
    "x%_y",
    "robert);drop_table_offline_message;--",
    "back\\slash",
    "ñandú",
    "日本語",
    "ελληνικά",
];

/// Packets with quotes, backslashes, XML and SQL metacharacters, control characters (all but
/// NUL), combining marks, astral-plane characters and invalid-looking escapes.
fn awkward_packets() -> Vec<String> {
    let controls: String = (1u8..32).map(char::from).collect();
    vec![
        r#"<message><body>it's "quoted" \ back\slashed \' \" \\</body></message>"#.to_owned(),
        "<message><body>'); DELETE FROM offline_message; -- %_ ${x} $1 ?</body></message>"
            .to_owned(),
        "<message><body>&lt;&amp;&gt; <![CDATA[<&>]]> &#0; \\x00 \\0</body></message>".to_owned(),
        format!("<message><body>{controls}\u{7f}\u{85}\u{2028}</body></message>"),
        "<message><body>e\u{301} \u{feff} \u{10ffff} \u{fffd} 👩‍👩‍👧 𝕏</body></message>".to_owned(),
        "   leading and trailing whitespace\r\n\t ".to_owned(),
    ]
}

/// JIDs, packets, senders and dedupe keys with unicode and metacharacters come back
/// byte-exact, each user in its own queue.
pub async fn awkward_text_is_kept_byte_exact<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let domain = fx.domain("example.com");
    for local in AWKWARD_LOCALPARTS {
        let user = fx.user_at(local, &domain);
        let messages: Vec<NewMessage> = awkward_packets()
            .into_iter()
            .enumerate()
            .map(|(n, packet)| {
                NewMessage {
                    from: format!("{local}@example.net/résource ' \" ;"),
                    packet,
                    ..chat(&user, n)
                }
                .dedupe_key(format!("{n}|'%_\\;"))
            })
            .collect();
        write(store, &user, messages.clone()).await;
        let fetched = store.fetch_messages(&user, None, None, T0).await.unwrap();
        let kept: Vec<NewMessage> = fetched.into_iter().map(|s| s.message).collect();
        assert_eq!(kept, messages, "messages of {user}");
    }
    let listed = store.list_users(Some(&domain), None, 100).await.unwrap();
    let mut expected: Vec<_> = AWKWARD_LOCALPARTS
        .iter()
        .map(|local| fx.user_at(local, &domain))
        .collect();
    expected.sort();
    assert_eq!(listed, expected, "every awkward localpart is its own user");
}

/// A queue of 10,000 messages is counted, paged and popped whole and in order.
pub async fn ten_thousand_message_queue<S: OfflineBackend>(fx: &mut Fixture<S>) {
    const TOTAL: usize = 10_000;
    let store = fx.store();
    let juliet = fx.user("juliet");
    let mut expected = Vec::with_capacity(TOTAL);
    for start in (0..TOTAL).step_by(500) {
        let batch = chats(&juliet, start..start + 500);
        expected.extend(new_packets(&batch));
        write(store, &juliet, batch).await;
    }
    assert_eq!(
        store.count_messages(&juliet).await.unwrap().messages,
        TOTAL as u64,
        "the count of a queue written in 20 batches"
    );
    let middle = store
        .fetch_messages(&juliet, None, Some(TOTAL / 2), T0)
        .await
        .unwrap();
    let rest = store
        .fetch_messages(&juliet, middle.last().map(|s| s.seq), None, T0)
        .await
        .unwrap();
    assert_eq!(
        (middle.len(), rest.len()),
        (TOTAL / 2, TOTAL / 2),
        "two fetches page through the whole queue"
    );
    let popped = store.pop_messages(&juliet, T0).await.unwrap();
    assert_seq_increasing(&popped);
    assert_eq!(packets(&popped), expected, "the pop returns all, in order");
    assert_eq!(
        store.count_messages(&juliet).await.unwrap().messages,
        0,
        "the pop leaves nothing"
    );
}
