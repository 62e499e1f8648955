//! SQLite, a file on the server's disk: SQL without a database server, for a single node.
//! Connections run on tokio's blocking threads (diesel-async's `SyncConnectionWrapper`);
//! SQLite is compiled in (`libsqlite3-sys` bundled), nothing to install.
//!
//! The file is in WAL mode with `synchronous = FULL` (a commit is on disk when acknowledged).
//! Transactions that change a queue start with `BEGIN IMMEDIATE`: SQLite has one writer at
//! a time, and taking its lock first means waiting for it (up to the busy timeout) rather
//! than failing when a read turns into a write. Within one process the store also queues its
//! write transactions itself ([`Dialect::ONE_WRITER`]), so that many concurrent writers
//! take turns instead of polling the lock.

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager as SyncTransactionManager, SimpleConnection};
use diesel::result::QueryResult;
use diesel::sqlite::Sqlite;
use diesel::{Connection, ConnectionError, SqliteConnection};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection, TransactionManager};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use offline_core::BoxError;

use crate::dialect::{Dialect, StatementLimits};
use crate::error::OpenError;
use crate::query::{Query, Row, Session};
use crate::store::SqlStore;
use crate::{DieselConfig, pool};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A pooled SQLite connection.
pub(crate) type LiteConnection = SyncConnectionWrapper<SqliteConnection>;

/// The SQLite dialect.
#[derive(Debug)]
pub(crate) struct Sqlite_;

impl Dialect for Sqlite_ {
    const NAME: &'static str = "sqlite";
    const LOCK_OR_CREATE_QUEUE: &'static str = "INSERT INTO offline_store_queue \
         (server, username, next_seq, messages, bytes) VALUES (?, ?, 1, 0, 0) \
         ON CONFLICT (server, username) DO UPDATE SET next_seq = next_seq \
         RETURNING next_seq, messages, bytes, expire_floor";
    // The write transaction holds the database's write lock already.
    const LOCK_QUEUE: &'static str = "SELECT next_seq, messages, bytes, expire_floor \
         FROM offline_store_queue WHERE server = ? AND username = ?";
    const FOR_UPDATE: &'static str = "";
    const ONE_WRITER: bool = true;
    const USERS_OF_SERVER: &'static str = "SELECT server, username FROM offline_store_queue \
         WHERE server = ? AND messages > 0 AND username > ? ORDER BY username LIMIT ?";

    type Conn = LiteConnection;
    type Pooled = Object<LiteConnection>;
    type Pool = Pool<LiteConnection>;

    async fn checkout(pool: &Self::Pool) -> Result<Self::Pooled, BoxError> {
        pool::checkout(pool).await
    }

    fn discard(conn: Self::Pooled) {
        pool::discard(conn);
    }
}

type AsyncManager = <LiteConnection as AsyncConnection>::TransactionManager;

impl Session for LiteConnection {
    async fn execute(&mut self, query: &Query<'_>) -> QueryResult<usize> {
        query.statement().execute(self).await
    }

    async fn load<R: Row>(&mut self, query: &Query<'_>) -> QueryResult<Vec<R>> {
        query.statement().load(self).await
    }

    async fn begin(&mut self) -> QueryResult<()> {
        self.spawn_blocking(|conn| {
            SyncTransactionManager::begin_transaction_sql(conn, "BEGIN IMMEDIATE")
        })
        .await
    }

    async fn commit(&mut self) -> QueryResult<()> {
        AsyncManager::commit_transaction(self).await
    }

    async fn rollback(&mut self) -> QueryResult<()> {
        AsyncManager::rollback_transaction(self).await
    }
}

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Every connection's settings.
fn pragmas() -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
        BUSY_TIMEOUT.as_millis()
    )
}

/// Migrates the file (creating it if needed) and opens the store's pool.
pub(crate) async fn open(config: &DieselConfig) -> Result<SqlStore<Sqlite_>, OpenError> {
    let path = path_of(&config.url)?;
    let path = path.as_str();
    pool::migrate::<Sqlite, _>(
        Sqlite_::NAME,
        || establish_blocking(path.to_owned()).boxed(),
        || MIGRATIONS,
    )
    .await?;
    let pool = pool::build(config, path, Box::new(|path| setup(path.to_owned())))?;
    Ok(SqlStore::new(
        pool,
        StatementLimits::DEFAULT,
        config.conflict_retries,
        config.pool_size,
    ))
}

/// The file a `sqlite://path` (or `sqlite:path`) URL names.
pub(crate) fn path_of(url: &str) -> Result<String, OpenError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.contains(":memory:") || path.contains("mode=memory") {
        return Err(OpenError::InvalidUrl {
            reason: "an SQLite store needs a file (sqlite://path/to/offline.db): an in-memory \
                     SQLite database is one per connection; use the memory backend instead"
                .into(),
        });
    }
    Ok(path.to_owned())
}

/// A connection with the store's settings, opened on a blocking thread.
async fn establish_blocking(path: String) -> Result<SqliteConnection, OpenError> {
    tokio::task::spawn_blocking(move || {
        let mut conn = SqliteConnection::establish(&path)?;
        conn.batch_execute(&pragmas())
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
        Ok::<_, ConnectionError>(conn)
    })
    .await
    .map_err(|e| connect_error(e.into()))?
    .map_err(|e| connect_error(e.into()))
}

/// A pooled connection, with the store's settings.
fn setup(path: String) -> BoxFuture<'static, Result<LiteConnection, ConnectionError>> {
    async move {
        let mut conn = LiteConnection::establish(&path).await?;
        conn.batch_execute(&pragmas())
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
        Ok(conn)
    }
    .boxed()
}

fn connect_error(source: BoxError) -> OpenError {
    OpenError::Connect {
        dialect: Sqlite_::NAME,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file() {
        assert_eq!(
            path_of("sqlite://data/offline.db").unwrap(),
            "data/offline.db"
        );
        assert_eq!(
            path_of("sqlite:///var/lib/offline.db").unwrap(),
            "/var/lib/offline.db"
        );
        assert_eq!(path_of("sqlite:offline.db").unwrap(), "offline.db");
        assert!(path_of("sqlite://:memory:").is_err());
        assert!(path_of("sqlite://").is_err());
    }
}
