//! Names and keys that a case- or accent-insensitive collation (MySQL's default
//! `utf8mb4_general_ci`, with its trailing-space padding) would take as equal are distinct.

use offline_core::{OfflineBackend, UserKey, WriteReport};

use super::{T0, chat, count, held, packets, write};
use crate::Fixture;

/// Localparts that normalisation keeps apart but a folding collation confuses.
const FOLDED_LOCALPARTS: [&str; 5] = ["emile", "émile", "ëmile", "resume", "résumé"];

/// Dedupe keys a folding collation would take as one: case, accents, trailing spaces, `ß`.
const FOLDED_KEYS: [&str; 9] = ["K", "k", "k ", "k  ", "emile", "Émile", "s", "ß", "ss"];

/// `emile`, `émile` and `ëmile` (and users of `example.com` and `éxample.com`) each keep their
/// own queue, count and place in the list.
pub async fn users_equal_under_a_folding_collation_are_distinct<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    let store = fx.store();
    let (plain, accented) = (fx.domain("example.com"), fx.domain("éxample.com"));
    let mut users: Vec<UserKey> = FOLDED_LOCALPARTS
        .iter()
        .map(|local| fx.user_at(local, &plain))
        .collect();
    users.push(fx.user_at("emile", &accented));
    for (n, user) in users.iter().enumerate() {
        write(store, user, super::chats(user, 0..n + 1)).await;
    }
    for (n, user) in users.iter().enumerate() {
        assert_eq!(
            count(store, user).await,
            n as u64 + 1,
            "{user} has a queue of its own, not one shared with a look-alike"
        );
        let fetched = held(store, user).await;
        assert!(
            fetched.iter().all(|s| s.message.to == user.to_string()),
            "{user} fetched a look-alike's message"
        );
    }
    let mut expected: Vec<UserKey> = users[..FOLDED_LOCALPARTS.len()].to_vec();
    expected.sort();
    let listed = store.list_users(Some(&plain), None, 100).await.unwrap();
    assert_eq!(
        listed, expected,
        "look-alike users are listed apart, in byte order"
    );
    let popped = store.pop_messages(&users[0], T0).await.unwrap();
    assert_eq!(
        packets(&popped),
        [chat(&users[0], 0).packet],
        "popping emile takes only emile's queue"
    );
    assert_eq!(
        count(store, &users[1]).await,
        2,
        "émile keeps her queue when emile pops"
    );
    assert_eq!(
        store.remove_user(&users[2]).await.unwrap(),
        3,
        "removing ëmile removes only her queue"
    );
    assert_eq!(
        count(store, &users[5]).await,
        6,
        "emile@éxample.com is not emile@example.com"
    );
}

/// Dedupe keys differing in case, accents or trailing spaces are different keys; the exact
/// key is still a duplicate.
pub async fn dedupe_keys_equal_under_a_folding_collation_are_distinct<S: OfflineBackend>(
    fx: &mut Fixture<S>,
) {
    let store = fx.store();
    let juliet = fx.user("juliet");
    let batch = FOLDED_KEYS
        .iter()
        .enumerate()
        .map(|(n, key)| chat(&juliet, n).dedupe_key(*key))
        .collect();
    let report = write(store, &juliet, batch).await;
    assert_eq!(
        report,
        WriteReport {
            stored: FOLDED_KEYS.len() as u64,
            duplicates: 0,
            expired: 0
        },
        "look-alike keys (equal only under a folding collation) are distinct within a batch"
    );
    for (n, key) in FOLDED_KEYS.iter().enumerate() {
        let again = write(
            store,
            &juliet,
            vec![chat(&juliet, 100 + n).dedupe_key(*key)],
        )
        .await;
        assert_eq!(
            (again.stored, again.duplicates),
            (0, 1),
            "the exact key {key:?} is held, so its resend is a duplicate, whatever its look-alikes"
        );
    }
    store.pop_messages(&juliet, T0).await.unwrap();
    for (n, key) in FOLDED_KEYS.iter().enumerate() {
        let report = write(store, &juliet, vec![chat(&juliet, n).dedupe_key(*key)]).await;
        assert_eq!(
            report.stored, 1,
            "{key:?} is stored in a queue holding its look-alikes written before it"
        );
    }
}
