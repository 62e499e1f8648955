//! MariaDB (10.5 or later: the store uses `INSERT ... RETURNING` and `DELETE ... RETURNING`),
//! through diesel-async's pure-Rust driver (mysql_async). A Galera cluster of MariaDB nodes
//! is a multi-master store.
//!
//! Addresses are binary strings, compared byte-wise whatever the server's collation. Every
//! session runs at `READ COMMITTED` (no gap locks), in strict SQL mode (a value too long for
//! its column is an error, never cut), and, on Galera, with `wsrep_sync_wait = 1`, so that a
//! read on one node sees what was committed on another before it. Writers to one user queue
//! on the row lock of `INSERT ... ON DUPLICATE KEY UPDATE` on their node; across nodes the
//! first to commit its update of the user's row wins and the other is retried (Galera
//! reports the conflict as a deadlock).

use diesel::mysql::Mysql;
use diesel::sql_types::BigInt;
use diesel::{ConnectionError, QueryableByName};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use offline_core::BoxError;

use crate::dialect::{Dialect, StatementLimits};
use crate::error::OpenError;
use crate::query::{Query, Value};
use crate::store::SqlStore;
use crate::{DieselConfig, pool};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");

/// The session settings every connection starts with.
const SESSION: &[&str] = &[
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
    // Errors are told apart partly by their text (crate::error): keep it English.
    "SET SESSION lc_messages = 'en_US'",
];

/// Causal reads on Galera; refused by servers built without it, which need none.
const GALERA_SESSION: &str = "SET SESSION wsrep_sync_wait = 1";

/// The MariaDB dialect.
#[derive(Debug)]
pub(crate) struct Mysql_;

impl Dialect for Mysql_ {
    const NAME: &'static str = "mysql";
    const LOCK_OR_CREATE_QUEUE: &'static str = "INSERT INTO offline_store_queue \
         (server, username, next_seq, messages, bytes) VALUES (?, ?, 1, 0, 0) \
         ON DUPLICATE KEY UPDATE next_seq = next_seq \
         RETURNING next_seq, messages, bytes, expire_floor";
    const LOCK_QUEUE: &'static str = "SELECT next_seq, messages, bytes, expire_floor \
         FROM offline_store_queue WHERE server = ? AND username = ? FOR UPDATE";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const FETCH_LOCK: &'static str = " LOCK IN SHARE MODE";
    const USERS_OF_SERVER: &'static str = "SELECT server, username FROM offline_store_queue \
         WHERE held_server = ? AND username > ? ORDER BY username LIMIT ?";

    /// MariaDB reads a row-value comparison by scanning the index from its start; the
    /// same condition spelt out is a range.
    fn users_from<'a>(server: &'a str, user: &'a str, limit: i64) -> Query<'a> {
        Self::query(
            "SELECT server, username FROM offline_store_queue \
             WHERE held_server > ? OR (held_server = ? AND username > ?) \
             ORDER BY held_server, username LIMIT ?",
            [
                Value::Text(server),
                Value::Text(server),
                Value::Text(user),
                Value::Int(limit),
            ],
        )
    }

    type Conn = AsyncMysqlConnection;
    type Pooled = Object<AsyncMysqlConnection>;
    type Pool = Pool<AsyncMysqlConnection>;

    async fn checkout(pool: &Self::Pool) -> Result<Self::Pooled, BoxError> {
        pool::checkout(pool).await
    }

    fn discard(conn: Self::Pooled) {
        pool::discard(conn);
    }
}

crate::query::ansi_session!(AsyncMysqlConnection, Mysql);

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
    #[diesel(sql_type = BigInt)]
    max_allowed_packet: i64,
}

/// Checks the server, migrates the database and opens the store's pool.
pub(crate) async fn open(config: &DieselConfig) -> Result<SqlStore<Mysql_>, OpenError> {
    let url = driver_url(&config.url);
    let url = url.as_str();
    let mut conn = establish(url).await?;
    let settings: Vec<Setting> = diesel::sql_query(
        "SELECT VERSION() AS version, CAST(@@max_allowed_packet AS SIGNED) AS max_allowed_packet",
    )
    .load(&mut conn)
    .await
    .map_err(|e| connect_error(e.into()))?;
    let Some(setting) = settings.into_iter().next() else {
        return Err(connect_error(
            "the server did not report its version".into(),
        ));
    };
    check_version(&setting.version)?;
    let limits = limits(setting.max_allowed_packet);
    drop(conn);

    pool::migrate::<Mysql, _>(
        Mysql_::NAME,
        || {
            let url = url.to_owned();
            async move {
                let mut conn = establish(&url).await?;
                // Keeps two servers from migrating at once (per node on Galera, where the
                // migrations' DDL is ordered cluster-wide and only creates what is missing).
                conn.batch_execute("DO GET_LOCK('offline_store_migrations', 60)")
                    .await
                    .map_err(|e| connect_error(e.into()))?;
                Ok(AsyncConnectionWrapper::<AsyncMysqlConnection>::from(conn))
            }
            .boxed()
        },
        || MIGRATIONS,
    )
    .await?;
    let pool = pool::build(config, url, Box::new(|url| setup(url.to_owned())))?;
    Ok(SqlStore::new(
        pool,
        limits,
        config.conflict_retries,
        config.pool_size,
    ))
}

/// mysql_async knows the `mysql://` scheme only.
pub(crate) fn driver_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mariadb") => format!("mysql://{rest}"),
        _ => url.to_owned(),
    }
}

/// A pooled connection, with the store's session settings.
fn setup(url: String) -> BoxFuture<'static, Result<AsyncMysqlConnection, ConnectionError>> {
    async move {
        let mut conn = AsyncMysqlConnection::establish(&url).await?;
        for statement in SESSION {
            conn.batch_execute(statement)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
        }
        if let Err(error) = conn.batch_execute(GALERA_SESSION).await {
            tracing::debug!(%error, "wsrep_sync_wait is not available: not a Galera node");
        }
        Ok(conn)
    }
    .boxed()
}

/// MariaDB 10.5 or later: `INSERT ... RETURNING` came with it, and MySQL has none.
fn check_version(version: &str) -> Result<(), OpenError> {
    let unsupported = |reason: String| OpenError::Unsupported {
        dialect: Mysql_::NAME,
        reason,
    };
    if !version.contains("MariaDB") {
        return Err(unsupported(format!(
            "server version {version} is not MariaDB: the store needs MariaDB 10.5 or later \
             (INSERT ... RETURNING)"
        )));
    }
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if (major, minor) < (10, 5) {
        return Err(unsupported(format!(
            "MariaDB {version} is too old: the store needs 10.5 or later"
        )));
    }
    Ok(())
}

/// What one statement may carry under the server's `max_allowed_packet`.
fn limits(max_allowed_packet: i64) -> StatementLimits {
    let packet = usize::try_from(max_allowed_packet).unwrap_or(0);
    StatementLimits {
        bytes: StatementLimits::DEFAULT.bytes.min(packet / 4 * 3),
        ..StatementLimits::DEFAULT
    }
}

/// One connection, outside the pool.
pub(crate) async fn establish(url: &str) -> Result<AsyncMysqlConnection, OpenError> {
    AsyncMysqlConnection::establish(url)
        .await
        .map_err(|e| connect_error(e.into()))
}

fn connect_error(source: BoxError) -> OpenError {
    OpenError::Connect {
        dialect: Mysql_::NAME,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mariadb_with_returning_is_accepted() {
        assert!(check_version("10.11.19-MariaDB-0+deb12u1").is_ok());
        assert!(check_version("11.4.2-MariaDB").is_ok());
        assert!(check_version("10.5.0-MariaDB").is_ok());
        assert!(check_version("10.4.32-MariaDB").is_err());
        assert!(check_version("8.0.36").is_err());
    }

    #[test]
    fn statements_stay_within_the_packet_limit() {
        assert_eq!(limits(16 << 20).bytes, 8 << 20);
        assert_eq!(limits(4 << 20).bytes, 3 << 20);
    }

    #[test]
    fn mariadb_urls_become_mysql_urls() {
        assert_eq!(driver_url("mariadb://root@h/test"), "mysql://root@h/test");
        assert_eq!(driver_url("mysql://root@h/test"), "mysql://root@h/test");
    }
}
