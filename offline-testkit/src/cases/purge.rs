//! Domain-wide purges of expired and old messages, and `remove_domain`, with neighbouring
//! domains present.

use offline_core::{Domain, NewMessage, OfflineBackend, UserKey};

use super::{DAY, SECOND, T0, chat, packets, write};
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

/// Counts of every user's queue, target domain's users first.
async fn counts<S: OfflineBackend>(fx: &Fixture<S>, hood: &Neighbourhood) -> Vec<u64> {
    let mut counts = Vec::new();
    for user in hood.users(fx) {
        counts.push(fx.store().count_messages(&user).await.unwrap().messages);
    }
    counts
}

/// `remove_expired_messages` removes the domain's expired messages, returns how many, and
/// leaves unexpired ones and other domains alone.
pub async fn remove_expired_messages_spares_neighbours<S: OfflineBackend>(fx: Fixture<S>) {
    let hood = seed(&fx).await;
    let store = fx.store();
    let before_expiry = store
        .remove_expired_messages(&hood.target, T0 + 10 * SECOND - 1)
        .await
        .unwrap();
    assert_eq!(before_expiry, 0);
    let removed = store
        .remove_expired_messages(&hood.target, T0 + 10 * SECOND)
        .await
        .unwrap();
    assert_eq!(removed, 2, "one expired message for each of ali and alice");
    assert_eq!(counts(&fx, &hood).await, [2, 2, 3, 3, 3, 3, 3, 3]);
    let ali = fx.user_at("ali", &hood.target);
    let left = store.pop_messages(&ali, T0).await.unwrap();
    let expected: Vec<String> = aged(&ali)[..2].iter().map(|m| m.packet.clone()).collect();
    assert_eq!(packets(&left), expected);
}

/// `remove_old_messages` removes the domain's messages stamped strictly before the cutoff.
pub async fn remove_old_messages_is_strict_and_spares_neighbours<S: OfflineBackend>(
    fx: Fixture<S>,
) {
    let hood = seed(&fx).await;
    let store = fx.store();
    let at_the_5_day_stamp = store
        .remove_old_messages(&hood.target, T0 - 5 * DAY)
        .await
        .unwrap();
    assert_eq!(
        at_the_5_day_stamp, 2,
        "only the 7-day-old ones are strictly older"
    );
    let removed = store
        .remove_old_messages(&hood.target, T0 - 3 * DAY)
        .await
        .unwrap();
    assert_eq!(removed, 2, "then the 5-day-old ones");
    assert_eq!(counts(&fx, &hood).await, [1, 1, 3, 3, 3, 3, 3, 3]);
}

/// Purges of a domain holding nothing remove nothing, anywhere.
pub async fn purges_of_an_empty_domain_remove_nothing<S: OfflineBackend>(fx: Fixture<S>) {
    let hood = seed(&fx).await;
    let store = fx.store();
    let empty = fx.domain("example.org");
    let later = T0 + DAY;
    assert_eq!(
        store.remove_expired_messages(&empty, later).await.unwrap(),
        0
    );
    assert_eq!(store.remove_old_messages(&empty, later).await.unwrap(), 0);
    assert_eq!(store.remove_domain(&empty).await.unwrap(), 0);
    assert_eq!(counts(&fx, &hood).await, [3; 8]);
}

/// `remove_domain` removes every queue of the domain and nothing of its neighbours.
pub async fn remove_domain_spares_neighbours<S: OfflineBackend>(fx: Fixture<S>) {
    let hood = seed(&fx).await;
    let store = fx.store();
    assert_eq!(store.remove_domain(&hood.target).await.unwrap(), 6);
    assert_eq!(counts(&fx, &hood).await, [0, 0, 3, 3, 3, 3, 3, 3]);
    let listed = store
        .list_users(Some(&hood.target), None, 10)
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    let ali = fx.user_at("ali", &hood.target);
    let report = write(store, &ali, vec![chat(&ali, 9)]).await;
    assert_eq!(
        report.stored, 1,
        "the domain takes new messages after its removal"
    );
}
