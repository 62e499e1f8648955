//! Queue statistics and the paged list of users holding messages.

use offline_core::{OfflineBackend, QueueStats, UserKey};

use super::{T0, chat, held_seqs, list_pages, write};
use crate::Fixture;

/// `count_messages` reports the number of messages and the sum of their packet lengths.
pub async fn count_reports_messages_and_bytes<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let messages = super::chats(&juliet, 0..4);
    let bytes = messages.iter().map(|m| m.size()).sum();
    write(store, &juliet, messages).await;
    let stats = store.count_messages(&juliet).await.unwrap();
    assert_eq!(
        stats,
        QueueStats { messages: 4, bytes },
        "messages and packet bytes held"
    );
    let nobody = fx.user("nobody");
    assert_eq!(
        store.count_messages(&nobody).await.unwrap(),
        QueueStats::default(),
        "a user without messages counts nothing"
    );
}

/// Pages of users come in `(server, user)` byte order, each page continuing after the last
/// key of the one before, covering every user once.
pub async fn list_users_pages_in_key_order<S: OfflineBackend>(fx: &mut Fixture<S>) {
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
    for page in [1, 3, 10, 11] {
        let listed = list_pages(store, None, start.clone(), page, |u| fx.owns(u)).await;
        assert_eq!(
            listed, users,
            "pages of {page} list every user once, in (server, user) byte order"
        );
    }
}

/// Listing one domain returns its users only, none of `sub.` or `.evil` neighbours.
pub async fn list_users_of_a_domain_spares_neighbours<S: OfflineBackend>(fx: &mut Fixture<S>) {
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
    assert_eq!(all, expected, "the users of {domain}, and no neighbour's");
    let paged = list_pages(store, Some(&domain), None, 1, |_| true).await;
    assert_eq!(paged, expected, "pages of one user of {domain}");
    let after_last = store
        .list_users(Some(&domain), expected.last(), 100)
        .await
        .unwrap();
    assert!(
        after_last.is_empty(),
        "nothing of {domain} after its last user: {after_last:?}"
    );
}

/// Listing a domain from a cursor in another domain: a cursor sorting before the domain
/// starts at its first user, one sorting after it lists nothing.
pub async fn list_users_of_a_domain_from_a_cursor_outside_it<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    let store = fx.store();
    let (co, com, net) = (
        fx.domain("example.co"),
        fx.domain("example.com"),
        fx.domain("example.net"),
    );
    let before = [fx.user_at("a", &co), fx.user_at("x", &co)];
    let inside = [fx.user_at("bob", &com), fx.user_at("carol", &com)];
    let after = fx.user_at("a", &net);
    for user in before.iter().chain(&inside).chain([&after]) {
        write(store, user, vec![chat(user, 0)]).await;
    }
    for cursor in &before {
        let listed = store
            .list_users(Some(&com), Some(cursor), 10)
            .await
            .unwrap();
        assert_eq!(
            listed, inside,
            "listing {com} after {cursor}, which sorts before it, starts at its first user"
        );
    }
    let listed = store
        .list_users(Some(&com), Some(&after), 10)
        .await
        .unwrap();
    assert!(
        listed.is_empty(),
        "listing {com} after {after}, which sorts after it, gives nothing: {listed:?}"
    );
}

/// A limit of zero lists nobody, with or without a domain or cursor.
pub async fn list_users_with_limit_zero_is_empty<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let domain = fx.domain("example.com");
    let users = [fx.user("ann"), fx.user("bob")];
    for user in &users {
        write(store, user, vec![chat(user, 0)]).await;
    }
    for (scope, cursor) in [
        (None, None),
        (Some(&domain), None),
        (Some(&domain), Some(&users[0])),
    ] {
        let listed = store.list_users(scope, cursor, 0).await.unwrap();
        assert!(
            listed.is_empty(),
            "a limit of 0 lists nobody (domain {scope:?}, after {cursor:?}): {listed:?}"
        );
    }
}

/// A user whose queue was emptied, by any path, is no longer listed.
pub async fn list_users_forgets_emptied_queues<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let store = fx.store();
    let domain = fx.domain("example.com");
    let [popped, removed, acked, expired, kept] =
        ["popped", "removed", "acked", "expired", "kept"].map(|u| fx.user(u));
    for user in [&popped, &removed, &acked, &kept] {
        write(store, user, vec![chat(user, 0)]).await;
    }
    write(store, &expired, vec![chat(&expired, 0).expires_at(T0 + 1)]).await;
    store.pop_messages(&popped, T0).await.unwrap();
    store.remove_user(&removed).await.unwrap();
    let seqs = held_seqs(store, &acked).await;
    store.remove_messages(&acked, &seqs).await.unwrap();
    store
        .remove_expired_messages(&domain, T0 + 1)
        .await
        .unwrap();
    let listed = store.list_users(Some(&domain), None, 100).await.unwrap();
    assert_eq!(
        listed,
        [kept],
        "users emptied by pop, remove_user, remove_messages and expiry are not listed"
    );
}
