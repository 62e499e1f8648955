//! Domain-wide purges of expired and old messages, and `remove_domain`, with neighbouring
//! domains present.

use offline_core::{Domain, NewMessage, OfflineBackend, UserKey};

use super::{DAY, SECOND, T0, chat, count, packets, write};
use crate::Fixture;

/// `example.com` and the neighbours a purge of it must spare.
struct Neighbourhood {
    target: Domain,
    neighbours: [Domain; 3],
}

impl Neighbourhood {
    fn new<S: OfflineBackend>(fx: &Fixture<S>) -> Self {
        Self {
            target: fx.domain("example.com"),
            neighbours: [
                fx.domain("example.com.evil"),
                fx.subdomain("sub", "example.com"),
                fx.domain("xample.com"),
            ],
        }
    }

    /// `ali` and `alice` of every domain, target first.
    fn users<S: OfflineBackend>(&self, fx: &Fixture<S>) -> Vec<UserKey> {
        std::iter::once(&self.target)
            .chain(&self.neighbours)
            .flat_map(|domain| [fx.user_at("ali", domain), fx.user_at("alice", domain)])
            .collect()
    }
}

/// Messages stamped 7, 5 and 2 days before `T0`, the last one expiring 10 s after `T0`.
fn aged(user: &UserKey) -> Vec<NewMessage> {
    [7, 5, 2]
        .into_iter()
        .enumerate()
        .map(|(n, days)| NewMessage {
            timestamp: T0 - days * DAY,
            ..chat(user, n)
        })
        .enumerate()
        .map(|(n, m)| {
            if n == 2 {
                m.expires_at(T0 + 10 * SECOND)
            } else {
                m
            }
        })
        .collect()
}

async fn seed<S: OfflineBackend>(fx: &Fixture<S>) -> Neighbourhood {
    let hood = Neighbourhood::new(fx);
    for user in hood.users(fx) {
        write(fx.store(), &user, aged(&user)).await;
    }
    hood
}

/// Checks the neighbours first (each still holds its 3 messages), so that a purge reaching
/// across domains is reported as such, then the target's users (`ali`, `alice`).
async fn assert_counts<S: OfflineBackend>(
    fx: &Fixture<S>,
    hood: &Neighbourhood,
    target: [u64; 2],
    rule: &str,
) {
    let users = hood.users(fx);
    for neighbour in &users[2..] {
        assert_eq!(
            count(fx.store(), neighbour).await,
            3,
            "a purge of {} must not touch the neighbouring {neighbour}",
            hood.target
        );
    }
    let held = [
        count(fx.store(), &users[0]).await,
        count(fx.store(), &users[1]).await,
    ];
    assert_eq!(
        held, target,
        "{rule}: what ali and alice of {} hold",
        hood.target
    );
}

/// `remove_expired_messages` removes the domain's expired messages, returns how many, and
/// leaves unexpired ones and other domains alone.
pub async fn remove_expired_messages_spares_neighbours<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let hood = seed(fx).await;
    let store = fx.store();
    let before_expiry = store
        .remove_expired_messages(&hood.target, T0 + 10 * SECOND - 1)
        .await
        .unwrap();
    assert_counts(fx, &hood, [3, 3], "nothing expires before its expire time").await;
    assert_eq!(before_expiry, 0, "nothing expired a microsecond before");
    let removed = store
        .remove_expired_messages(&hood.target, T0 + 10 * SECOND)
        .await
        .unwrap();
    assert_counts(fx, &hood, [2, 2], "the expired message of each is removed").await;
    assert_eq!(removed, 2, "one expired message for each of ali and alice");
    let ali = fx.user_at("ali", &hood.target);
    let left = store.pop_messages(&ali, T0).await.unwrap();
    let expected: Vec<String> = aged(&ali)[..2].iter().map(|m| m.packet.clone()).collect();
    assert_eq!(
        packets(&left),
        expected,
        "the unexpired messages stay, in order"
    );
}

/// `remove_old_messages` removes the domain's messages stamped strictly before the cutoff.
pub async fn remove_old_messages_is_strict_and_spares_neighbours<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    let hood = seed(fx).await;
    let store = fx.store();
    let at_the_5_day_stamp = store
        .remove_old_messages(&hood.target, T0 - 5 * DAY)
        .await
        .unwrap();
    assert_counts(
        fx,
        &hood,
        [2, 2],
        "a cutoff at the 5-day stamp removes only the strictly older 7-day ones",
    )
    .await;
    assert_eq!(
        at_the_5_day_stamp, 2,
        "the number removed at the 5-day stamp"
    );
    let removed = store
        .remove_old_messages(&hood.target, T0 - 3 * DAY)
        .await
        .unwrap();
    assert_counts(
        fx,
        &hood,
        [1, 1],
        "a cutoff 3 days ago removes the 5-day ones",
    )
    .await;
    assert_eq!(removed, 2, "the number removed at 3 days");
}

/// Purges of a domain holding nothing remove nothing, anywhere.
pub async fn purges_of_an_empty_domain_remove_nothing<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let hood = seed(fx).await;
    let store = fx.store();
    let empty = fx.domain("example.org");
    let later = T0 + DAY;
    let removed = [
        store.remove_expired_messages(&empty, later).await.unwrap(),
        store.remove_old_messages(&empty, later).await.unwrap(),
        store.remove_domain(&empty).await.unwrap(),
    ];
    assert_counts(fx, &hood, [3, 3], "purges of another domain").await;
    assert_eq!(removed, [0; 3], "purges of {empty}, which holds nothing");
}

/// `remove_domain` removes every queue of the domain and nothing of its neighbours.
pub async fn remove_domain_spares_neighbours<S: OfflineBackend>(fx: &mut Fixture<S>) {
    let hood = seed(fx).await;
    let store = fx.store();
    let removed = store.remove_domain(&hood.target).await.unwrap();
    assert_counts(fx, &hood, [0, 0], "remove_domain empties its queues").await;
    assert_eq!(removed, 6, "remove_domain returns what the queues held");
    let listed = store
        .list_users(Some(&hood.target), None, 10)
        .await
        .unwrap();
    assert!(
        listed.is_empty(),
        "a removed domain lists nobody: {listed:?}"
    );
    let ali = fx.user_at("ali", &hood.target);
    let report = write(store, &ali, vec![chat(&ali, 9)]).await;
    assert_eq!(
        report.stored, 1,
        "the domain takes new messages after its removal"
    );
}
