//! How values are written: messages, queue statistics and the seq high-water mark.

use offline_core::{NewMessage, OfflineError, QueueStats};

/// The first byte of every encoded message; a different one is another format.
const MESSAGE_FORMAT: u8 = 1;

/// A stored value that does not decode: the store is damaged.
#[derive(Debug, thiserror::Error)]
#[error("corrupt {what} in the RocksDB store{}", at.as_ref().map_or(String::new(), |at| format!(" ({at})")))]
pub(crate) struct Corrupt {
    what: &'static str,
    at: Option<String>,
}

impl Corrupt {
    pub(crate) fn new(what: &'static str) -> Self {
        Self { what, at: None }
    }

    /// The same, saying where it was found.
    pub(crate) fn at(self, at: String) -> Self {
        Self {
            at: Some(at),
            ..self
        }
    }
}

fn push_bytes(out: &mut Vec<u8>, field: &str, bytes: &[u8]) -> Result<(), OfflineError> {
    let len = u32::try_from(bytes.len()).map_err(|_| {
        OfflineError::invalid_input(format!(
            "{field} is {} bytes long, more than the RocksDB store takes (4 GiB)",
            bytes.len()
        ))
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn push_optional(out: &mut Vec<u8>, field: &str, bytes: Option<&[u8]>) -> Result<(), OfflineError> {
    match bytes {
        Some(bytes) => {
            out.push(1);
            push_bytes(out, field, bytes)
        }
        None => {
            out.push(0);
            Ok(())
        }
    }
}

/// A message as the `messages` column family holds it.
pub(crate) fn encode_message(message: &NewMessage) -> Result<Vec<u8>, OfflineError> {
    let mut out =
        Vec::with_capacity(message.packet.len() + message.from.len() + message.to.len() + 48);
    out.push(MESSAGE_FORMAT);
    out.extend_from_slice(&message.timestamp.to_be_bytes());
    match message.expire {
        Some(expire) => {
            out.push(1);
            out.extend_from_slice(&expire.to_be_bytes());
        }
        None => out.push(0),
    }
    push_bytes(&mut out, "from", message.from.as_bytes())?;
    push_bytes(&mut out, "to", message.to.as_bytes())?;
    push_bytes(&mut out, "packet", message.packet.as_bytes())?;
    let dedupe_key = message.dedupe_key.as_deref().map(str::as_bytes);
    push_optional(&mut out, "dedupe_key", dedupe_key)?;
    push_optional(
        &mut out,
        "permanent_fields",
        message.permanent_fields.as_deref(),
    )?;
    Ok(out)
}

/// Reads encoded fields front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?);
        self.take(usize::try_from(len).ok()?)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn optional<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.byte()? {
            0 => Some(None),
            1 => read(self).map(Some),
            _ => None,
        }
    }
}

/// The message a `messages` value holds.
pub(crate) fn decode_message(value: &[u8]) -> Result<NewMessage, Corrupt> {
    let corrupt = || Corrupt::new("message");
    let mut reader = Reader(value);
    if reader.byte() != Some(MESSAGE_FORMAT) {
        return Err(corrupt());
    }
    let message = (|| {
        Some(NewMessage {
            timestamp: reader.i64()?,
            expire: reader.optional(Reader::i64)?,
            from: reader.text()?,
            to: reader.text()?,
            packet: reader.text()?,
            dedupe_key: reader.optional(Reader::text)?,
            permanent_fields: reader.optional(|r| r.bytes().map(<[u8]>::to_vec))?,
        })
    })()
    .ok_or_else(corrupt)?;
    if !reader.0.is_empty() {
        return Err(corrupt());
    }
    Ok(message)
}

/// A `users` value: what a queue holds, and a time before which none of its messages
/// expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueueRecord {
    /// The queue's totals.
    pub(crate) stats: QueueStats,
    /// No message of the queue expires before this time (a lower bound, so it may be
    /// earlier than the earliest expiry; `i64::MAX`: none expires).
    pub(crate) expire_floor: i64,
}

impl QueueRecord {
    /// The record of a user without a queue.
    pub(crate) const EMPTY: Self = Self {
        stats: QueueStats {
            messages: 0,
            bytes: 0,
        },
        expire_floor: i64::MAX,
    };
}

/// Encodes a `users` value: messages, bytes, expiry floor.
pub(crate) fn encode_queue(queue: QueueRecord) -> [u8; 24] {
    let mut out = [0; 24];
    out[..8].copy_from_slice(&queue.stats.messages.to_be_bytes());
    out[8..16].copy_from_slice(&queue.stats.bytes.to_be_bytes());
    out[16..].copy_from_slice(&queue.expire_floor.to_be_bytes());
    out
}

/// Decodes a `users` value. A value of format 1 has no expiry floor: it reads as
/// `i64::MIN`, so that the next write looks for expired messages and sets it.
pub(crate) fn decode_queue(value: &[u8]) -> Result<QueueRecord, Corrupt> {
    let mut reader = Reader(value);
    let queue = (|| {
        let stats = QueueStats {
            messages: reader.u64()?,
            bytes: reader.u64()?,
        };
        let expire_floor = match reader.0.is_empty() {
            true => i64::MIN,
            false => reader.i64()?,
        };
        Some(QueueRecord {
            stats,
            expire_floor,
        })
    })();
    match queue {
        Some(queue) if reader.0.is_empty() => Ok(queue),
        _ => Err(Corrupt::new("queue statistics")),
    }
}

/// A big-endian `u64` value (a seq, the high-water mark, the format version).
pub(crate) fn decode_u64(value: &[u8], what: &'static str) -> Result<u64, Corrupt> {
    value
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| Corrupt::new(what))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn messages_read_back_as_written(
            timestamp in any::<i64>(),
            expire in any::<Option<i64>>(),
            from in ".{0,20}",
            to in ".{0,20}",
            packet in ".{0,200}",
            dedupe_key in prop::option::of(".{0,20}"),
            permanent_fields in prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
        ) {
            let message = NewMessage { timestamp, expire, from, to, packet, dedupe_key, permanent_fields };
            prop_assert_eq!(decode_message(&encode_message(&message).unwrap()).unwrap(), message);
        }

        #[test]
        fn damaged_values_are_refused_not_misread(cut in 0usize..60, flip in 0usize..60) {
            let message = NewMessage::new(7, "a@b/c", "d@e", "<message/>").dedupe_key("k");
            let encoded = encode_message(&message).unwrap();
            let truncated = &encoded[..cut.min(encoded.len() - 1)];
            prop_assert!(decode_message(truncated).is_err());
            let mut flipped = encoded.clone();
            let at = flip % flipped.len();
            flipped[at] ^= 0x80;
            if let Ok(read) = decode_message(&flipped) {
                prop_assert_ne!(read, message);
            }
        }
    }

    #[test]
    fn queue_records_read_back() {
        let queue = QueueRecord {
            stats: QueueStats {
                messages: 3,
                bytes: u64::MAX,
            },
            expire_floor: -5,
        };
        assert_eq!(decode_queue(&encode_queue(queue)).unwrap(), queue);
        assert!(decode_queue(&[1, 2, 3]).is_err());
        assert!(decode_queue(&[0; 20]).is_err());
    }

    #[test]
    fn a_format_1_record_has_no_expiry_floor() {
        let mut value = 3u64.to_be_bytes().to_vec();
        value.extend_from_slice(&700u64.to_be_bytes());
        let queue = decode_queue(&value).unwrap();
        assert_eq!((queue.stats.messages, queue.stats.bytes), (3, 700));
        assert_eq!(queue.expire_floor, i64::MIN);
    }
}
