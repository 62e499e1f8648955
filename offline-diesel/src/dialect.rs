//! What differs between PostgreSQL, MariaDB and SQLite: a few statements, how a connection
//! is had from the pool, and the limits of one statement. The store's algorithm
//! ([`crate::store`]) is written once against this trait; each dialect module implements it.

use std::future::Future;
use std::ops::DerefMut;

use offline_core::BoxError;

use crate::query::{Query, Session, Value};

/// One SQL dialect and its connection pool.
pub(crate) trait Dialect: Send + Sync + 'static {
    /// The dialect's name in errors and logs.
    const NAME: &'static str;

    /// Locks the user's queue row, creating it first if missing, and returns it as a
    /// [`QueueRow`](crate::rows::QueueRow). Binds: server, username.
    const LOCK_OR_CREATE_QUEUE: &'static str;

    /// Locks the user's queue row if there is one and returns it. Binds: server, username.
    const LOCK_QUEUE: &'static str;

    /// Appended to a `SELECT` to lock the rows it reads.
    const FOR_UPDATE: &'static str;

    /// Appended to the fetch where a snapshot can show a user's later seq without an earlier
    /// one (InnoDB: a new read view copies the set of active transactions by a lock-free
    /// walk that commits can overtake). A locking read scans the current index in seq order
    /// and waits on uncommitted rows instead.
    const FETCH_LOCK: &'static str = "";

    /// A page of users holding messages on one server, as
    /// [`UserRow`](crate::rows::UserRow)s. Binds: server, the username to start after, limit.
    const USERS_OF_SERVER: &'static str;

    /// Whether the database lets one transaction write at a time (SQLite). The store then
    /// queues its write transactions in the process, where a waiter is woken when its turn
    /// comes, instead of in the database's busy handler, which polls with growing sleeps.
    const ONE_WRITER: bool = false;

    /// Whether one statement may run a write and then another (PostgreSQL's
    /// `WITH ... AS (INSERT ...)`), saving a round trip per write.
    const CHAINS_WRITES: bool = false;

    /// `first` then `then`, as one statement; only where [`Self::CHAINS_WRITES`].
    fn chain<'a>(mut first: Query<'a>, then: Query<'a>) -> Query<'a> {
        first.prepend("WITH chained AS (");
        first.push(") ");
        first.append(then);
        first
    }

    /// One message written in one statement, where the dialect can: the user's queue row
    /// created or locked and updated, and the message inserted, only if nothing held has
    /// expired and the quota holds (else no row comes back, the queue row is locked, and the
    /// general path follows in the same transaction). Returns the message's seq. Binds:
    /// server, username, size, expire, now, most messages, most bytes, then the message's
    /// stamp, expire, from, to, packet, size and permanent fields.
    const WRITE_ONE: Option<&'static str> = None;

    /// The whole pop as one statement, where the dialect can (PostgreSQL: a function that
    /// locks and empties the queue row, then deletes and returns every message; each of its
    /// statements sees what was committed before it ran). Binds: server, username; returns
    /// the message columns.
    const POP_ONE: Option<&'static str> = None;

    /// The connection the pool hands out.
    type Conn: Session;

    /// A connection checked out of the pool; returned to it when dropped.
    type Pooled: DerefMut<Target = Self::Conn> + Send;

    /// The pool of connections.
    type Pool: Send + Sync;

    /// Checks a connection out of the pool, opening one if needed. Errors mean the database
    /// cannot be had now (refused connection, timeout).
    fn checkout(pool: &Self::Pool) -> impl Future<Output = Result<Self::Pooled, BoxError>> + Send;

    /// Drops a connection instead of returning it to the pool: it was lost or is in an
    /// unknown state.
    fn discard(conn: Self::Pooled);

    /// A page of users holding messages on every server, in `(server, username)` order,
    /// after `server` and `user`, as [`UserRow`](crate::rows::UserRow)s.
    fn users_from<'a>(server: &'a str, user: &'a str, limit: i64) -> Query<'a> {
        Self::query(
            "SELECT server, username FROM offline_store_queue \
             WHERE messages > 0 AND (server, username) > (?, ?) \
             ORDER BY server, username LIMIT ?",
            [Value::Text(server), Value::Text(user), Value::Int(limit)],
        )
    }

    /// A statement in this dialect's placeholders.
    fn query<'a>(sql: &str, binds: impl IntoIterator<Item = Value<'a>>) -> Query<'a> {
        Query::new(sql, binds)
    }
}

/// How much one statement may carry: rows per multi-row `INSERT` (bind parameter limits) and
/// bytes (MariaDB's `max_allowed_packet`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StatementLimits {
    /// Rows per multi-row `INSERT`, and values per `IN` list.
    pub(crate) rows: usize,
    /// Bytes of values per statement.
    pub(crate) bytes: usize,
}

impl StatementLimits {
    /// Within PostgreSQL's 65,535 and SQLite's 32,766 bind parameters, at 12 per row.
    pub(crate) const DEFAULT: Self = Self {
        rows: 1000,
        bytes: 8 << 20,
    };
}
