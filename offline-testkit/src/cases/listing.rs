//! Queue statistics and the paged list of users holding messages.

use offline_core::{OfflineBackend, QueueStats, UserKey};

use super::{T0, chat, chats, held_seqs, write};
use crate::Fixture;

/// `count_messages` reports the number of messages and the sum of their packet lengths.
pub async fn count_reports_messages_and_bytes<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let messages = chats(&juliet, 0..4);
    let bytes = messages.iter().map(|m| m.size()).sum();
    write(store, &juliet, messages).await;
    let stats = store.count_messages(&juliet).await.unwrap();
    assert_eq!(stats, QueueStats { messages: 4, bytes });
    let nobody = fx.user("nobody");
    assert_eq!(
        store.count_messages(&nobody).await.unwrap(),
        QueueStats::default()
    );
}

/// Pages of users come in `(server, user)` byte order, each page continuing after the last
/// key of the one before, covering every user once.
pub async fn list_users_pages_in_key_order<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let (com, net) = (fx.domain("example.com"), fx.domain("example.net"));
    let mut users: Vec<UserKey> = ["zoe", "adam", "émile", "bob", "ann"]
        .iter()
        .flat_map(|local| [fx.user_at(local, &com), fx.user_at(local, &net)])
        .collect();
    for user in &users {
        write(store, user, vec![chat(user, 0)]).await;
    }
    users.sort();

    // On a shared store, start just before this case's namespace and stop past it.
    let start = (!fx.namespace().is_empty()).then(|| UserKey::from_normalized(fx.namespace(), ""));
    let mut after = start;
    let mut listed = Vec::new();
    loop {
        let page = store.list_users(None, after.as_ref(), 3).await.unwrap();
        assert!(page.len() <= 3, "page of {} for a limit of 3", page.len());
        for pair in page.windows(2) {
            assert!(
                pair[0] < pair[1],
                "{:?} listed before {:?}",
                pair[0],
                pair[1]
            );
        }
        if let (Some(after), Some(first)) = (&after, page.first()) {
            assert!(
                after < first,
                "page starts at {first:?}, not after {after:?}"
            );
        }
        let ours: Vec<UserKey> = page
            .iter()
            .filter(|u| u.server().starts_with(fx.namespace()))
            .cloned()
            .collect();
        let past_namespace = ours.len() < page.len();
        listed.extend(ours);
        after = page.last().cloned();
        if page.is_empty() || past_namespace {
            break;
        }
    }
    assert_eq!(listed, users);
}

/// Listing one domain returns its users only, none of `sub.` or `.evil` neighbours.
pub async fn list_users_of_a_domain_spares_neighbours<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let domain = fx.domain("example.com");
    let neighbours = [
        fx.domain("example.com.evil"),
        fx.subdomain("sub", "example.com"),
        fx.domain("example.co"),
    ];
    let mut expected = Vec::new();
    for local in ["bob", "alice", "carol"] {
        let user = fx.user_at(local, &domain);
        write(store, &user, vec![chat(&user, 0)]).await;
        expected.push(user);
        for other in &neighbours {
            let stranger = fx.user_at(local, other);
            write(store, &stranger, vec![chat(&stranger, 0)]).await;
        }
    }
    expected.sort();
    let all = store.list_users(Some(&domain), None, 100).await.unwrap();
    assert_eq!(all, expected);
    let second_page = store
        .list_users(Some(&domain), Some(&expected[0]), 1)
        .await
        .unwrap();
    assert_eq!(second_page, [expected[1].clone()]);
    let after_last = store
        .list_users(Some(&domain), expected.last(), 100)
        .await
        .unwrap();
    assert!(after_last.is_empty(), "{after_last:?}");
}

/// A user whose queue was emptied, by any path, is no longer listed.
pub async fn list_users_forgets_emptied_queues<S: OfflineBackend>(fx: Fixture<S>) {
    let store = fx.store();
    let domain = fx.domain("example.com");
    let [popped, removed, acked, kept] = ["popped", "removed", "acked", "kept"].map(|u| fx.user(u));
    for user in [&popped, &removed, &acked, &kept] {
        write(store, user, vec![chat(user, 0)]).await;
    }
    store.pop_messages(&popped, T0).await.unwrap();
    store.remove_user(&removed).await.unwrap();
    let seqs = held_seqs(store, &acked).await;
    store.remove_messages(&acked, &seqs).await.unwrap();
    let listed = store.list_users(Some(&domain), None, 100).await.unwrap();
    assert_eq!(listed, [kept]);
}
