//! The rows the store's queries return, decoded by name on every dialect.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use offline_core::{NewMessage, OfflineError, Result, StoredMessage};

use crate::error::BACKEND;

/// A user's row in `offline_store_queue`.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub(crate) struct QueueRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) next_seq: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) messages: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) bytes: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) expire_floor: Option<i64>,
}

/// A queue row with its user, as purges lock several at once.
#[derive(Debug, QueryableByName)]
pub(crate) struct NamedQueueRow {
    #[diesel(sql_type = Text)]
    pub(crate) username: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) messages: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) bytes: i64,
}

/// A message as fetch and pop read it.
#[derive(Debug, QueryableByName)]
pub(crate) struct MessageRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = BigInt)]
    stamp: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    expire: Option<i64>,
    #[diesel(sql_type = Text)]
    from_jid: String,
    #[diesel(sql_type = Text)]
    to_jid: String,
    #[diesel(sql_type = Text)]
    packet: String,
    #[diesel(sql_type = Nullable<Text>)]
    dedupe_key: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    permanent_fields: Option<Vec<u8>>,
}

impl MessageRow {
    /// Whether the message is expired at `now` (the contract's rule, on the stored value).
    pub(crate) fn is_expired(&self, now: i64) -> bool {
        self.expire.is_some_and(|expire| expire <= now)
    }

    /// The message as the contract returns it.
    pub(crate) fn into_stored(self) -> Result<StoredMessage> {
        let seq = u64::try_from(self.seq).map_err(|_| {
            OfflineError::backend(
                BACKEND,
                format!("a stored message has seq {}, below 1", self.seq),
            )
        })?;
        Ok(StoredMessage {
            seq,
            message: NewMessage {
                timestamp: self.stamp,
                expire: self.expire,
                from: self.from_jid,
                to: self.to_jid,
                packet: self.packet,
                dedupe_key: self.dedupe_key,
                permanent_fields: self.permanent_fields,
            },
        })
    }
}

/// One size: the `packet_bytes` of a removed message.
#[derive(Debug, QueryableByName)]
pub(crate) struct Size {
    #[diesel(sql_type = BigInt)]
    pub(crate) packet_bytes: i64,
}

/// The seq of a message written.
#[derive(Debug, QueryableByName)]
pub(crate) struct Seq {
    #[diesel(sql_type = BigInt)]
    pub(crate) seq: i64,
}

/// The size of a removed message and whose it was.
#[derive(Debug, QueryableByName)]
pub(crate) struct UserSize {
    #[diesel(sql_type = Text)]
    pub(crate) username: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) packet_bytes: i64,
}

/// A user name.
#[derive(Debug, QueryableByName)]
pub(crate) struct Username {
    #[diesel(sql_type = Text)]
    pub(crate) username: String,
}

/// A user's full key.
#[derive(Debug, QueryableByName)]
pub(crate) struct UserRow {
    #[diesel(sql_type = Text)]
    pub(crate) server: String,
    #[diesel(sql_type = Text)]
    pub(crate) username: String,
}

/// A dedupe digest the queue holds.
#[derive(Debug, QueryableByName)]
pub(crate) struct Digest {
    #[diesel(sql_type = Binary)]
    pub(crate) dedupe_digest: Vec<u8>,
}

/// An optional instant, such as the earliest expiry a queue holds.
#[derive(Debug, QueryableByName)]
pub(crate) struct Instant {
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) at: Option<i64>,
}
