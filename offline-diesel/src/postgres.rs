//! PostgreSQL, through diesel-async's pure-Rust driver (tokio-postgres).
//!
//! Server and user columns are `COLLATE "C"` (byte order) whatever the database's default
//! collation; the users holding messages are a partial index, so `list_users` reads a page
//! of it. Writers to one user queue on the row lock of `INSERT ... ON CONFLICT DO UPDATE`.

use diesel::pg::Pg;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use futures_util::FutureExt;
use offline_core::BoxError;

use crate::dialect::{Dialect, StatementLimits};
use crate::error::OpenError;
use crate::store::SqlStore;
use crate::{DieselConfig, pool};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Any constant key: the advisory lock that keeps two servers from migrating at once.
const MIGRATION_LOCK: i64 = 0x6f66_666c_696e_6531;

/// The PostgreSQL dialect.
#[derive(Debug)]
pub(crate) struct Postgres;

impl Dialect for Postgres {
    const NAME: &'static str = "postgres";
    const LOCK_OR_CREATE_QUEUE: &'static str = "INSERT INTO offline_store_queue AS q \
         (server, username, next_seq, messages, bytes) VALUES (?, ?, 1, 0, 0) \
         ON CONFLICT (server, username) DO UPDATE SET next_seq = q.next_seq \
         RETURNING q.next_seq, q.messages, q.bytes, q.expire_floor";
    const LOCK_QUEUE: &'static str = "SELECT next_seq, messages, bytes, expire_floor \
         FROM offline_store_queue WHERE server = ? AND username = ? FOR UPDATE";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const CHAINS_WRITES: bool = true;
    // A new user's row is created holding the message (the caller checked that the message
    // alone fits the quota); an existing row is updated only if the message fits and nothing
    // it holds has expired. ON CONFLICT locks the row either way.
    const WRITE_ONE: Option<&'static str> = Some(
        "WITH q AS (INSERT INTO offline_store_queue AS q \
         (server, username, next_seq, messages, bytes, expire_floor) \
         VALUES (?, ?, 2, 1, ?, ?) \
         ON CONFLICT (server, username) DO UPDATE SET next_seq = q.next_seq + 1, \
         messages = q.messages + 1, bytes = q.bytes + excluded.bytes, \
         expire_floor = LEAST(q.expire_floor, excluded.expire_floor) \
         WHERE (q.expire_floor IS NULL OR q.expire_floor > ?) \
         AND q.next_seq < 9223372036854775807 \
         AND q.messages + 1 <= COALESCE(?, q.messages + 1) \
         AND q.bytes + excluded.bytes <= COALESCE(?, q.bytes + excluded.bytes) \
         RETURNING q.server, q.username, q.next_seq - 1 AS seq) \
         INSERT INTO offline_store_message (server, username, seq, stamp, expire, from_jid, \
         to_jid, packet, packet_bytes, permanent_fields) \
         SELECT q.server, q.username, q.seq, ?, ?, ?, ?, ?, ?, ? FROM q RETURNING seq",
    );
    const POP_ONE: Option<&'static str> = Some(
        "SELECT seq, stamp, expire, from_jid, to_jid, packet, dedupe_key, permanent_fields \
         FROM offline_store_pop(?, ?)",
    );
    const USERS_OF_SERVER: &'static str = "SELECT server, username FROM offline_store_queue \
         WHERE server = ? AND messages > 0 AND username > ? ORDER BY username LIMIT ?";

    type Conn = AsyncPgConnection;
    type Pooled = Object<AsyncPgConnection>;
    type Pool = Pool<AsyncPgConnection>;

    async fn checkout(pool: &Self::Pool) -> Result<Self::Pooled, BoxError> {
        pool::checkout(pool).await
    }

    fn discard(conn: Self::Pooled) {
        pool::discard(conn);
    }
}

crate::query::ansi_session!(AsyncPgConnection, Pg);

/// Migrates the database and opens the store's pool.
pub(crate) async fn open(config: &DieselConfig) -> Result<SqlStore<Postgres>, OpenError> {
    let url = config.url.as_str();
    pool::migrate::<Pg, _>(
        Postgres::NAME,
        || {
            let url = url.to_owned();
            async move {
                let mut conn = establish(&url).await?;
                conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                    .await
                    .map_err(|e| connect_error(e.into()))?;
                Ok(AsyncConnectionWrapper::<AsyncPgConnection>::from(conn))
            }
            .boxed()
        },
        || MIGRATIONS,
    )
    .await?;
    let pool = pool::build(
        config,
        url,
        Box::new(|url| AsyncPgConnection::establish(url).boxed()),
    )?;
    Ok(SqlStore::new(
        pool,
        StatementLimits::DEFAULT,
        config.conflict_retries,
        config.pool_size,
    ))
}

/// One connection, outside the pool.
pub(crate) async fn establish(url: &str) -> Result<AsyncPgConnection, OpenError> {
    AsyncPgConnection::establish(url)
        .await
        .map_err(|e| connect_error(e.into()))
}

fn connect_error(source: BoxError) -> OpenError {
    OpenError::Connect {
        dialect: Postgres::NAME,
        source,
    }
}
