//! The records an offline queue holds, and the limits every backend enforces on them.

use std::fmt;

use crate::{OfflineError, Result};

/// The largest packet a store accepts, in bytes: 1 MiB, above every common server's stanza
/// size limit (ejabberd 256 KiB, Prosody 256 KiB) and within every database's defaults.
pub const MAX_PACKET_BYTES: usize = 1024 * 1024;

/// The longest `from` or `to` address a store accepts, in bytes (a full JID of three
/// maximal 1023-byte parts and its separators).
pub const MAX_ADDRESS_BYTES: usize = 3071;

/// The longest dedupe key a store accepts, in bytes.
pub const MAX_DEDUPE_KEY_BYTES: usize = 1023;

/// The most opaque `permanent_fields` bytes a store accepts: 64 KiB, far above what a server
/// keeps there (MongooseIM keeps a few small terms).
pub const MAX_PERMANENT_FIELDS_BYTES: usize = 64 * 1024;

/// A message to store for an offline user.
///
/// Times are microseconds since the Unix epoch; both must be non-negative.
///
/// ```
/// use offline_core::NewMessage;
///
/// let now = 1_700_000_000_000_000;
/// let message = NewMessage::new(
///     now,
///     "romeo@example.net/orchard",
///     "juliet@example.com",
///     "<message type='chat'><body>Art thou not Romeo?</body></message>",
/// )
/// .expires_at(now + 3_600_000_000)
/// .dedupe_key("romeo@example.net 5e4f-origin-id");
/// assert!(!message.is_expired(now));
/// assert!(message.is_expired(now + 3_600_000_000));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// When the message was stored (or the trusted sender stamp), µs since the epoch.
    pub timestamp: i64,
    /// When the message expires, µs since the epoch; `None` never expires.
    pub expire: Option<i64>,
    /// The sender's full JID, as routed.
    pub from: String,
    /// The recipient, as routed.
    pub to: String,
    /// The stanza's XML, stored byte-exact. Its length is what the byte quota counts.
    pub packet: String,
    /// A key under which at most one message is held per user (e.g. from XEP-0359 origin-id).
    pub dedupe_key: Option<String>,
    /// Opaque data a server keeps beside the message (MongooseIM's `permanent_fields`).
    pub permanent_fields: Option<Vec<u8>>,
}

impl NewMessage {
    /// A message with no expiry, no dedupe key and no permanent fields.
    pub fn new(
        timestamp: i64,
        from: impl Into<String>,
        to: impl Into<String>,
        packet: impl Into<String>,
    ) -> Self {
        Self {
            timestamp,
            expire: None,
            from: from.into(),
            to: to.into(),
            packet: packet.into(),
            dedupe_key: None,
            permanent_fields: None,
        }
    }

    /// Sets the expiry time (µs since the epoch).
    #[must_use]
    pub fn expires_at(mut self, expire: i64) -> Self {
        self.expire = Some(expire);
        self
    }

    /// Sets the dedupe key.
    #[must_use]
    pub fn dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// Sets the opaque permanent fields.
    #[must_use]
    pub fn permanent_fields(mut self, fields: impl Into<Vec<u8>>) -> Self {
        self.permanent_fields = Some(fields.into());
        self
    }

    /// Whether the message has expired at `now`: a message expires at the instant its `expire`
    /// time is reached.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expire.is_some_and(|expire| expire <= now)
    }

    /// The message's size for the byte quota: the length of its packet.
    pub fn size(&self) -> u64 {
        self.packet.len() as u64
    }

    /// Checks the limits every backend enforces: non-negative times; non-empty `from`, `to`
    /// and packet within their maximum sizes; a non-empty dedupe key if any; no NUL byte in any
    /// text (SQL text columns cannot hold one); permanent fields within their maximum size.
    pub fn validate(&self) -> Result<()> {
        if self.timestamp < 0 {
            return Err(OfflineError::invalid_input(format!(
                "timestamp {} is before the Unix epoch",
                self.timestamp
            )));
        }
        if let Some(expire) = self.expire.filter(|expire| *expire < 0) {
            return Err(OfflineError::invalid_input(format!(
                "expire {expire} is before the Unix epoch"
            )));
        }
        check_text("from", &self.from, MAX_ADDRESS_BYTES)?;
        check_text("to", &self.to, MAX_ADDRESS_BYTES)?;
        check_text("packet", &self.packet, MAX_PACKET_BYTES)?;
        if let Some(key) = &self.dedupe_key {
            check_text("dedupe_key", key, MAX_DEDUPE_KEY_BYTES)?;
        }
        if let Some(fields) = self
            .permanent_fields
            .as_ref()
            .filter(|f| f.len() > MAX_PERMANENT_FIELDS_BYTES)
        {
            return Err(OfflineError::invalid_input(format!(
                "permanent_fields is {} bytes long, more than the {MAX_PERMANENT_FIELDS_BYTES} allowed",
                fields.len()
            )));
        }
        Ok(())
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(OfflineError::invalid_input(format!("{field} is empty")));
    }
    if value.len() > max {
        return Err(OfflineError::invalid_input(format!(
            "{field} is {} bytes long, more than the {max} allowed",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(OfflineError::invalid_input(format!(
            "{field} contains a NUL byte"
        )));
    }
    Ok(())
}

impl fmt::Debug for NewMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 120;
        let packet = match self.packet.char_indices().nth(SHOWN) {
            Some((cut, _)) => format!("{}… ({} bytes)", &self.packet[..cut], self.packet.len()),
            None => self.packet.clone(),
        };
        f.debug_struct("NewMessage")
            .field("timestamp", &self.timestamp)
            .field("expire", &self.expire)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("packet", &packet)
            .field("dedupe_key", &self.dedupe_key)
            .field("permanent_fields", &self.permanent_fields)
            .finish()
    }
}

/// A message held in an offline queue: what was written, plus its sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// The message's place in its user's queue: unique and increasing in arrival order within
    /// that queue, never reused for that user (see [`OfflineBackend`](crate::OfflineBackend)).
    /// Not unique across users.
    pub seq: u64,
    /// The message as it was written.
    pub message: NewMessage,
}

/// How much a queue holds (or a batch would add).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueStats {
    /// Number of messages.
    pub messages: u64,
    /// Sum of the messages' packet lengths, in bytes.
    pub bytes: u64,
}

impl QueueStats {
    /// Counts a message in.
    pub fn add(&mut self, message: &NewMessage) {
        self.messages += 1;
        self.bytes += message.size();
    }

    /// Counts a message out.
    pub fn remove(&mut self, message: &NewMessage) {
        self.messages = self.messages.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(message.size());
    }

    /// The totals of a set of messages.
    pub fn of<'a>(messages: impl IntoIterator<Item = &'a NewMessage>) -> Self {
        let mut stats = Self::default();
        for message in messages {
            stats.add(message);
        }
        stats
    }
}

impl fmt::Display for QueueStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} messages ({} bytes)", self.messages, self.bytes)
    }
}

/// What a successful [`write_messages`](crate::OfflineBackend::write_messages) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Messages now held in the queue.
    pub stored: u64,
    /// Messages skipped because their dedupe key was already held (or repeated in the batch).
    pub duplicates: u64,
    /// Messages skipped because they had already expired when written.
    pub expired: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> NewMessage {
        NewMessage::new(10, "a@example.com/r", "b@example.com", "<message/>")
    }

    #[test]
    fn expiry_is_reached_at_the_expire_instant() {
        let m = message().expires_at(100);
        assert!(!m.is_expired(99));
        assert!(m.is_expired(100));
        assert!(!message().is_expired(i64::MAX));
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (
                NewMessage {
                    timestamp: -1,
                    ..message()
                },
                "timestamp",
            ),
            (message().expires_at(-5), "expire"),
            (
                NewMessage {
                    from: String::new(),
                    ..message()
                },
                "from is empty",
            ),
            (
                NewMessage {
                    to: "b\0".into(),
                    ..message()
                },
                "to contains a NUL",
            ),
            (
                NewMessage {
                    packet: String::new(),
                    ..message()
                },
                "packet is empty",
            ),
            (
                NewMessage {
                    packet: "x".repeat(MAX_PACKET_BYTES + 1),
                    ..message()
                },
                "packet is 1048577 bytes long",
            ),
            (message().dedupe_key(""), "dedupe_key is empty"),
        ];
        for (bad, expected) in cases {
            let err = bad.validate().unwrap_err();
            assert!(matches!(err, OfflineError::InvalidInput { .. }));
            assert!(err.to_string().contains(expected), "{err} lacks {expected}");
        }
        message()
            .dedupe_key("k")
            .permanent_fields(vec![0, 1])
            .validate()
            .unwrap();
    }

    #[test]
    fn size_counts_bytes_not_chars() {
        let m = NewMessage {
            packet: "é".into(),
            ..message()
        };
        assert_eq!(m.size(), 2);
        assert_eq!(
            QueueStats::of([&m, &m]),
            QueueStats {
                messages: 2,
                bytes: 4
            }
        );
    }

    #[test]
    fn debug_truncates_long_packets() {
        let m = NewMessage {
            packet: "y".repeat(1000),
            ..message()
        };
        let shown = format!("{m:?}");
        assert!(shown.contains("(1000 bytes)"), "{shown}");
        assert!(shown.len() < 400);
    }
}
