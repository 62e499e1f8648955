//! Key layout: order-preserving, prefix-free encodings of domains, users, times and seqs.
//!
//! A string part is written with every `0x00` byte escaped as `0x00 0xFF` and closed by
//! `0x00 0x01`. The terminator never occurs inside an escaped part, so no part's encoding is a
//! prefix of another's (`example.com` never covers `example.com.evil`, `ali` never covers
//! `alice`), and encoded parts compare as the parts do, byte-wise. Integers are big-endian,
//! signed ones with the sign bit flipped, so that keys sort numerically.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `messages` | user, seq | the message ([`codec`](crate::codec)) |
//! | `users` | user | what the queue holds: messages, bytes, a time before which none expires |
//! | `dedupe` | user, dedupe key | seq |
//! | `user_expiry` | user, expire, seq | — |
//! | `expiry` | domain, expire, user's localpart, seq | — |
//! | `age` | domain, timestamp, user's localpart, seq | — |
//! | `meta` | name | format version, seq high-water mark |
//!
//! where "user" is domain then localpart.

use offline_core::UserKey;

/// Appends `part`, escaped and terminated.
pub(crate) fn push_part(key: &mut Vec<u8>, part: &[u8]) {
    for &byte in part {
        key.push(byte);
        if byte == 0 {
            key.push(0xFF);
        }
    }
    key.extend_from_slice(&[0, 1]);
}

/// Reads one escaped part from the front of `key`; returns it and the rest.
pub(crate) fn take_part(key: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut part = Vec::new();
    let mut at = 0;
    loop {
        match (key.get(at)?, key.get(at + 1)) {
            (0, Some(1)) => return Some((part, &key[at + 2..])),
            (0, Some(0xFF)) => {
                part.push(0);
                at += 2;
            }
            (0, _) => return None,
            (&byte, _) => {
                part.push(byte);
                at += 1;
            }
        }
    }
}

/// The prefix of every key of a domain.
pub(crate) fn domain(server: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(server.len() + 2);
    push_part(&mut key, server.as_bytes());
    key
}

/// The prefix of every key of a user.
pub(crate) fn user(user: &UserKey) -> Vec<u8> {
    let mut key = domain(user.server());
    push_part(&mut key, user.user().as_bytes());
    key
}

/// The user a `users` key, or the front of a `messages` key, names.
pub(crate) fn parse_user(key: &[u8]) -> Option<(UserKey, &[u8])> {
    let (server, rest) = take_part(key)?;
    let (local, rest) = take_part(rest)?;
    let user = UserKey::from_normalized(
        String::from_utf8(server).ok()?,
        String::from_utf8(local).ok()?,
    );
    Some((user, rest))
}

/// A time as big-endian bytes that sort as the signed value does.
pub(crate) fn time(micros: i64) -> [u8; 8] {
    ((micros as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time [`time`] wrote.
pub(crate) fn time_from(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// The seq at the end of a key.
pub(crate) fn seq_at_end(key: &[u8]) -> Option<u64> {
    let bytes = key.get(key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// `messages` key of a user's message.
pub(crate) fn message(user_prefix: &[u8], seq: u64) -> Vec<u8> {
    [user_prefix, &seq.to_be_bytes()].concat()
}

/// `dedupe` key of a user's dedupe key.
pub(crate) fn dedupe(user_prefix: &[u8], dedupe_key: &str) -> Vec<u8> {
    [user_prefix, dedupe_key.as_bytes()].concat()
}

/// `user_expiry` key of a user's expiring message.
pub(crate) fn user_expiry(user_prefix: &[u8], expire: i64, seq: u64) -> Vec<u8> {
    [user_prefix, &time(expire), &seq.to_be_bytes()].concat()
}

/// The expiry time and seq of a `user_expiry` key under `user_prefix`.
pub(crate) fn parse_user_expiry(user_prefix: &[u8], key: &[u8]) -> Option<(i64, u64)> {
    let rest = key.strip_prefix(user_prefix)?;
    let (time, seq) = rest.split_first_chunk::<8>()?;
    let seq: [u8; 8] = seq.try_into().ok()?;
    Some((time_from(*time), u64::from_be_bytes(seq)))
}

/// `expiry` or `age` key of a message: its domain, a time, its localpart, its seq.
pub(crate) fn domain_time(user: &UserKey, at: i64, seq: u64) -> Vec<u8> {
    let mut key = domain(user.server());
    key.extend_from_slice(&time(at));
    push_part(&mut key, user.user().as_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The localpart and seq after the domain and time of an `expiry` or `age` key.
pub(crate) fn parse_domain_time(server: &str, key: &[u8]) -> Option<(UserKey, u64)> {
    let rest = key.get(domain(server).len() + 8..)?;
    let (local, rest) = take_part(rest)?;
    let seq = u64::from_be_bytes(rest.try_into().ok()?);
    Some((
        UserKey::from_normalized(server, String::from_utf8(local).ok()?),
        seq,
    ))
}

/// The first key after every key starting with `prefix` (`None`: no such key).
pub(crate) fn end_of(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use proptest::prelude::*;

    use super::*;

    /// Parts with NUL bytes, 0x01 and 0xFF next to them, and prefixes of each other.
    fn part() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(&["a", "b", "\0", "\u{1}", "ÿ", "é", "."][..]),
            0..6,
        )
        .prop_map(|pieces| pieces.concat())
    }

    fn key_of(server: &str, user: &str, seq: u64) -> Vec<u8> {
        message(&super::user(&UserKey::from_normalized(server, user)), seq)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn keys_never_collide_and_keep_order(
            a in (part(), part(), any::<u64>()),
            b in (part(), part(), any::<u64>()),
        ) {
            let (ka, kb) = (key_of(&a.0, &a.1, a.2), key_of(&b.0, &b.1, b.2));
            let parts = |t: &(String, String, u64)| (t.0.as_bytes().to_vec(), t.1.as_bytes().to_vec(), t.2);
            prop_assert_eq!(ka.cmp(&kb), parts(&a).cmp(&parts(&b)), "order of {:?} and {:?}", a, b);
            prop_assert_eq!(ka == kb, a == b);
        }

        #[test]
        fn a_range_holds_only_its_own_user_and_domain(
            a in (part(), part(), any::<u64>()),
            b in (part(), part()),
        ) {
            let key = key_of(&a.0, &a.1, a.2);
            let user_b = super::user(&UserKey::from_normalized(b.0.as_str(), b.1.as_str()));
            prop_assert_eq!(key.starts_with(&user_b), (&a.0, &a.1) == (&b.0, &b.1));
            prop_assert_eq!(key.starts_with(&domain(&b.0)), a.0 == b.0);
            if let Some(end) = end_of(&user_b) {
                let inside = key.as_slice() >= user_b.as_slice() && key < end;
                prop_assert_eq!(inside, (&a.0, &a.1) == (&b.0, &b.1));
            }
        }

        #[test]
        fn parts_and_times_read_back(
            server in part(), local in part(), at in any::<i64>(), later in any::<i64>(), seq in any::<u64>(),
        ) {
            let user = UserKey::from_normalized(server.as_str(), local.as_str());
            let key = message(&super::user(&user), seq);
            let (parsed, rest) = parse_user(&key).unwrap();
            prop_assert_eq!(&parsed, &user);
            prop_assert_eq!(seq_at_end(rest), Some(seq));
            let indexed = domain_time(&user, at, seq);
            prop_assert_eq!(parse_domain_time(&server, &indexed), Some((user.clone(), seq)));
            prop_assert_eq!(time(at).cmp(&time(later)), at.cmp(&later));
        }
    }

    #[test]
    fn neighbours_are_apart() {
        let prefix = domain("example.com");
        for other in [
            "example.com.evil",
            "example.co",
            "sub.example.com",
            "example.comx",
        ] {
            assert!(!domain(other).starts_with(&prefix), "{other}");
        }
        assert_eq!(
            domain("a").cmp(&domain("a\0")),
            Ordering::Less,
            "a part sorts before its extension by NUL"
        );
    }
}
