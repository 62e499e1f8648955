//! Users whose names are prefixes of each other, or differ only in case.

use offline_core::{OfflineBackend, UserKey};

use super::{T0, chat, chats, packets, write};
use crate::Fixture;

/// `ali`, `alice`, `al`, and `ali` of neighbouring domains each keep their own queue through
/// pop, fetch and count.
pub async fn users_sharing_a_prefix_are_isolated<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let users = [
        fx.user("ali"),
        fx.user("alice"),
        fx.user("al"),
        fx.user_at("ali", &fx.domain("example.co")),
        fx.user_at("ali", &fx.domain("example.com.evil")),
    ];
    for (n, user) in users.iter().enumerate() {
        write(store, user, chats(user, 0..n + 1)).await;
    }
    for (n, user) in users.iter().enumerate() {
        let count = store.count_messages(user).await.unwrap().messages;
        assert_eq!(count, n as u64 + 1, "count of {user}");
        let fetched = store.fetch_messages(user, None, None, T0).await.unwrap();
        assert!(
            fetched.iter().all(|s| s.message.to == user.to_string()),
            "{user} fetched another user's message"
        );
    }
    let ali = store.pop_messages(&users[0], T0).await.unwrap();
    assert_eq!(
        packets(&ali),
        [chat(&users[0], 0).packet],
        "ali pops his own message only"
    );
    for (n, user) in users.iter().enumerate().skip(1) {
        let count = store.count_messages(user).await.unwrap().messages;
        assert_eq!(count, n as u64 + 1, "{user} lost messages when ali popped");
    }
}

/// `remove_user` removes that user's queue only and returns its size.
pub async fn remove_user_removes_only_that_user<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let ali = fx.user("ali");
    let others = [
        fx.user("alice"),
        fx.user("ali2"),
        fx.user_at("ali", &fx.subdomain("sub", "example.com")),
    ];
    write(store, &ali, chats(&ali, 0..3)).await;
    for user in &others {
        write(store, user, chats(user, 0..2)).await;
    }
    assert_eq!(
        store.remove_user(&ali).await.unwrap(),
        3,
        "remove_user returns the size of the queue"
    );
    assert_eq!(
        store.count_messages(&ali).await.unwrap().messages,
        0,
        "remove_user empties the queue"
    );
    for user in &others {
        assert_eq!(
            store.count_messages(user).await.unwrap().messages,
            2,
            "removing ali must not touch {user}"
        );
    }
}

/// JIDs that differ only in case are one user with one queue.
pub async fn case_variants_of_a_jid_share_one_queue<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let domain = fx.domain("example.com");
    let shouted: UserKey = format!("JULIET@{}/Balcony", domain.as_str().to_uppercase())
        .parse()
        .unwrap();
    let quiet: UserKey = format!("juliet@{domain}").parse().unwrap();
    assert_eq!(shouted, quiet, "case variants normalise to one key");
    write(store, &shouted, vec![chat(&quiet, 0)]).await;
    write(store, &quiet, vec![chat(&quiet, 1)]).await;
    let popped = store.pop_messages(&quiet, T0).await.unwrap();
    assert_eq!(popped.len(), 2, "both writes reached one queue");
}
