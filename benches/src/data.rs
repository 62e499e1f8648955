//! The users and messages a benchmark writes.

use std::time::{SystemTime, UNIX_EPOCH};

use offline_core::{Domain, NewMessage, UserKey};

use crate::Result;

/// `count` users of `domain`, `bench-0@domain` onwards.
pub fn bench_users(domain: &Domain, count: usize) -> Result<Vec<UserKey>> {
    (0..count)
        .map(|n| Ok(format!("bench-{n}@{domain}").parse()?))
        .collect()
}

/// The current time in microseconds since the Unix epoch, as the module's clock gives it.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The message every benchmark write stores: a chat stanza of a chosen size.
#[derive(Clone, Debug)]
pub struct Payload {
    from: String,
    packet: String,
}

impl Payload {
    /// A `<message/>` of `bytes` bytes (at least its markup's), from a sender of `domain`.
    pub fn new(domain: &Domain, bytes: usize) -> Self {
        let from = format!("sender@{domain}/bench");
        let head = format!("<message from='{from}' type='chat' xmlns='jabber:client'><body>");
        let tail = "</body></message>";
        let body = "x".repeat(bytes.saturating_sub(head.len() + tail.len()));
        Self {
            packet: format!("{head}{body}{tail}"),
            from,
        }
    }

    /// The packet's length in bytes.
    pub fn bytes(&self) -> usize {
        self.packet.len()
    }

    /// A message to `to` stored at `now`.
    pub fn message(&self, to: &UserKey, now: i64) -> NewMessage {
        NewMessage::new(
            now,
            self.from.as_str(),
            to.to_string(),
            self.packet.as_str(),
        )
    }

    /// `count` messages to `to` stored at `now`.
    pub fn batch(&self, to: &UserKey, count: usize, now: i64) -> Vec<NewMessage> {
        (0..count).map(|_| self.message(to, now)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_has_the_size_asked_for() {
        let domain: Domain = "bench.example".parse().unwrap();
        assert_eq!(Payload::new(&domain, 250).bytes(), 250);
        let users = bench_users(&domain, 3).unwrap();
        assert_eq!(users[2].to_string(), "bench-2@bench.example");
    }
}
