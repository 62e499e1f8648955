//! The statements every dialect runs as they are (with `?` placeholders). What a dialect
//! writes its own way is in its module, behind [`Dialect`](crate::dialect::Dialect).

/// The columns of a message as [`MessageRow`](crate::rows::MessageRow) reads them.
const MESSAGE_COLUMNS: &str =
    "seq, stamp, expire, from_jid, to_jid, packet, dedupe_key, permanent_fields";

/// Removes the user's expired messages, returning their sizes. Binds: server, username, now.
pub(crate) const DELETE_EXPIRED_OF_USER: &str = "DELETE FROM offline_store_message \
     WHERE server = ? AND username = ? AND expire <= ? RETURNING packet_bytes";

/// The earliest expiry the user's queue holds. Binds: server, username.
pub(crate) const EARLIEST_EXPIRY: &str = "SELECT MIN(expire) AS at FROM offline_store_message \
     WHERE server = ? AND username = ?";

/// The digests among a list that the user's queue holds; the list follows. Binds: server,
/// username.
pub(crate) const HELD_DIGESTS: &str = "SELECT dedupe_digest FROM offline_store_message \
     WHERE server = ? AND username = ? AND dedupe_digest IN ";

/// A multi-row insert; one `(...)` of [`INSERT_ROW_VALUES`] placeholders per message follows.
pub(crate) const INSERT_MESSAGES: &str = "INSERT INTO offline_store_message (server, username, \
     seq, stamp, expire, from_jid, to_jid, packet, packet_bytes, dedupe_key, dedupe_digest, \
     permanent_fields) VALUES ";

/// Sets what the user's queue row carries. Binds: next seq, messages, bytes, expire floor,
/// server, username.
pub(crate) const UPDATE_QUEUE: &str = "UPDATE offline_store_queue \
     SET next_seq = ?, messages = ?, bytes = ?, expire_floor = ? \
     WHERE server = ? AND username = ?";

/// What the user's queue holds, without locking. Binds: server, username.
pub(crate) const READ_QUEUE: &str = "SELECT next_seq, messages, bytes, expire_floor \
     FROM offline_store_queue WHERE server = ? AND username = ?";

/// Takes the user's whole queue. Binds: server, username.
pub(crate) fn pop() -> String {
    format!(
        "DELETE FROM offline_store_message WHERE server = ? AND username = ? \
         RETURNING {MESSAGE_COLUMNS}"
    )
}

/// A page of the user's unexpired messages in seq order. Binds: server, username, the seq
/// to start after, now, limit.
pub(crate) fn fetch() -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM offline_store_message \
         WHERE server = ? AND username = ? AND seq > ? AND (expire IS NULL OR expire > ?) \
         ORDER BY seq LIMIT ?"
    )
}

/// Removes some of the user's messages by seq, returning their sizes; the seq list follows.
/// Binds: server, username.
pub(crate) const DELETE_SEQS: &str = "DELETE FROM offline_store_message \
     WHERE server = ? AND username = ? AND seq IN ";

/// Appended to [`DELETE_SEQS`] after its list.
pub(crate) const RETURNING_SIZE: &str = " RETURNING packet_bytes";

/// Removes the user's messages. Binds: server, username.
pub(crate) const DELETE_USER: &str =
    "DELETE FROM offline_store_message WHERE server = ? AND username = ?";

/// Users with messages expired at an instant, on one server, through the expiry index.
/// Binds: server, now, limit.
pub(crate) const EXPIRED_USERS: &str = "SELECT username FROM offline_store_message \
     WHERE server = ? AND expire <= ? LIMIT ?";

/// Users with messages older than a cutoff, on one server, through the age index. Binds:
/// server, cutoff, limit.
pub(crate) const OLD_USERS: &str = "SELECT username FROM offline_store_message \
     WHERE server = ? AND stamp < ? LIMIT ?";

/// Locks the queue rows of a list of one server's users; the list follows. Binds: server.
pub(crate) const LOCK_QUEUES: &str = "SELECT username, messages, bytes \
     FROM offline_store_queue WHERE server = ? AND username IN ";

/// Removes the expired messages of a list of one server's users, returning whose and how
/// large; the list follows. Binds: server, now.
pub(crate) const DELETE_EXPIRED_OF_USERS: &str = "DELETE FROM offline_store_message \
     WHERE server = ? AND expire <= ? AND username IN ";

/// Removes the messages older than a cutoff of a list of one server's users; the list
/// follows. Binds: server, cutoff.
pub(crate) const DELETE_OLD_OF_USERS: &str = "DELETE FROM offline_store_message \
     WHERE server = ? AND stamp < ? AND username IN ";

/// Appended to the deletes of several users after their list.
pub(crate) const RETURNING_USER_SIZE: &str = " RETURNING username, packet_bytes";

/// Removes every message of a list of one server's users; the list follows. Binds: server.
pub(crate) const DELETE_USERS: &str =
    "DELETE FROM offline_store_message WHERE server = ? AND username IN ";

/// Empties the queue rows of a list of one server's users; the list follows. Binds: server.
pub(crate) const EMPTY_QUEUES: &str = "UPDATE offline_store_queue \
     SET messages = 0, bytes = 0, expire_floor = NULL WHERE server = ? AND username IN ";
