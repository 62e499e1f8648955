//! The SQL baseline: MongooseIM's statement sequences on MongooseIM's own table, through the
//! same drivers (diesel-async) and the same kind of pool (deadpool) as `offline-diesel`, each
//! statement prepared once per connection as MongooseIM prepares its queries.
//!
//! - write: `SELECT count(*)` of the user's rows, then one `INSERT` per message, in one
//!   transaction (the quota check MongooseIM makes before it stores);
//! - pop: `SELECT` the user's unexpired rows in `id` order, then `DELETE` all the user's rows,
//!   in one transaction (the sequence that loses a message written between the two);
//! - count: `SELECT count(*)`; fetch: the `SELECT` with a `LIMIT`;
//! - remove expired: `DELETE ... WHERE server = ? AND expire < ?`.
//!
//! The table is MongooseIM's `offline_message` (`priv/pg.sql`, `priv/mysql.sql`; SQLite gets
//! the PostgreSQL columns) under a name of its own, `offline_bench_mongooseim`, so a benchmark
//! never touches a real MongooseIM table. It is dropped and created again when the baseline
//! connects, and dropped by [`Subject::tear_down`].

use async_trait::async_trait;
use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl};
use diesel::{QueryResult, SqliteConnection};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{
    AsyncConnection, AsyncMysqlConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection,
};
use futures_util::FutureExt;
use offline_core::{Domain, NewMessage, Quota, UserKey};
use offline_diesel::DatabaseKind;
use offline_diesel::import::mongooseim_schema;

use crate::{Result, Subject};

type LiteConnection = SyncConnectionWrapper<SqliteConnection>;

/// MongooseIM's statements on its table, through a pool of `pool_size` connections.
pub struct MongooseSql {
    pools: Pools,
    label: String,
}

impl std::fmt::Debug for MongooseSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongooseSql")
            .field("label", &self.label)
            .finish()
    }
}

enum Pools {
    Postgres(Pool<AsyncPgConnection>),
    Mysql(Pool<AsyncMysqlConnection>),
    Sqlite(Pool<LiteConnection>),
}

diesel::table! {
    /// MongooseIM's `offline_message`, under the baseline's own name. The MariaDB table's
    /// unsigned and blob columns read and write through the same types.
    offline_bench_mongooseim (id) {
        id -> Integer,
        timestamp -> BigInt,
        expire -> Nullable<BigInt>,
        server -> Text,
        username -> Text,
        from_jid -> Text,
        packet -> Text,
        permanent_fields -> Nullable<Binary>,
    }
}

/// The baseline's table.
const TABLE: &str = "offline_bench_mongooseim";

/// MongooseIM has no SQLite schema: its PostgreSQL columns, in SQLite's types.
const SQLITE_DDL: &str = "DROP TABLE IF EXISTS offline_bench_mongooseim;
    CREATE TABLE offline_bench_mongooseim (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        timestamp BIGINT NOT NULL,
        expire BIGINT,
        server varchar(250) NOT NULL,
        username varchar(250) NOT NULL,
        from_jid varchar(250) NOT NULL,
        packet text NOT NULL,
        permanent_fields blob
    );
    CREATE INDEX i_offline_bench_mongooseim_su
        ON offline_bench_mongooseim (server, username, id);";

/// SQLite as the store sets it up: WAL, a commit on disk when acknowledged, a busy timeout.
const SQLITE_SETUP: &str =
    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;";

/// What MongooseIM's pop reads of each row.
type PoppedRow = (i64, String, String, Option<Vec<u8>>);

/// The operations on one dialect's connection type, written once.
macro_rules! dialect_operations {
    ($module:ident, $conn:ty) => {
        mod $module {
            use super::offline_bench_mongooseim::dsl::*;
            use super::*;

            fn of_user(
                user: &UserKey,
            ) -> diesel::dsl::And<diesel::dsl::Eq<server, &str>, diesel::dsl::Eq<username, &str>>
            {
                server.eq(user.server()).and(username.eq(user.user()))
            }

            pub(super) async fn write(
                conn: &mut $conn,
                user: &UserKey,
                messages: &[NewMessage],
                quota: Quota,
            ) -> QueryResult<u64> {
                conn.transaction(async |conn| {
                    let held: i64 = offline_bench_mongooseim
                        .filter(of_user(user))
                        .count()
                        .get_result(conn)
                        .await?;
                    let after = u64::try_from(held).unwrap_or(0) + messages.len() as u64;
                    if quota.max_messages.is_some_and(|max| after > max) {
                        return Ok(0);
                    }
                    for message in messages {
                        diesel::insert_into(offline_bench_mongooseim)
                            .values((
                                timestamp.eq(message.timestamp),
                                expire.eq(message.expire),
                                server.eq(user.server()),
                                username.eq(user.user()),
                                from_jid.eq(&message.from),
                                packet.eq(&message.packet),
                            ))
                            .execute(conn)
                            .await?;
                    }
                    Ok(messages.len() as u64)
                })
                .await
            }

            pub(super) async fn pop(
                conn: &mut $conn,
                user: &UserKey,
                now: i64,
            ) -> QueryResult<usize> {
                conn.transaction(async |conn| {
                    let rows: Vec<PoppedRow> = offline_bench_mongooseim
                        .filter(of_user(user))
                        .filter(expire.is_null().or(expire.gt(now)))
                        .order(id)
                        .select((timestamp, from_jid, packet, permanent_fields))
                        .load(conn)
                        .await?;
                    diesel::delete(offline_bench_mongooseim.filter(of_user(user)))
                        .execute(conn)
                        .await?;
                    Ok(rows.len())
                })
                .await
            }

            pub(super) async fn count(conn: &mut $conn, user: &UserKey) -> QueryResult<u64> {
                let held: i64 = offline_bench_mongooseim
                    .filter(of_user(user))
                    .count()
                    .get_result(conn)
                    .await?;
                Ok(u64::try_from(held).unwrap_or(0))
            }

            pub(super) async fn fetch(
                conn: &mut $conn,
                user: &UserKey,
                limit: usize,
                now: i64,
            ) -> QueryResult<usize> {
                let rows: Vec<PoppedRow> = offline_bench_mongooseim
                    .filter(of_user(user))
                    .filter(expire.is_null().or(expire.gt(now)))
                    .order(id)
                    .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                    .select((timestamp, from_jid, packet, permanent_fields))
                    .load(conn)
                    .await?;
                Ok(rows.len())
            }

            pub(super) async fn remove_expired(
                conn: &mut $conn,
                domain: &Domain,
                now: i64,
            ) -> QueryResult<u64> {
                let removed = diesel::delete(
                    offline_bench_mongooseim
                        .filter(server.eq(domain.as_str()))
                        .filter(expire.lt(now)),
                )
                .execute(conn)
                .await?;
                Ok(removed as u64)
            }

            pub(super) async fn clear(conn: &mut $conn, domain: &Domain) -> QueryResult<()> {
                diesel::delete(offline_bench_mongooseim.filter(server.eq(domain.as_str())))
                    .execute(conn)
                    .await?;
                Ok(())
            }
        }
    };
}

dialect_operations!(on_postgres, AsyncPgConnection);
dialect_operations!(on_mysql, AsyncMysqlConnection);
dialect_operations!(on_sqlite, LiteConnection);

/// Calls one operation on whichever dialect the baseline is connected to.
macro_rules! on_dialect {
    ($self:ident, $operation:ident ( $($arg:expr),* )) => {
        match &$self.pools {
            Pools::Postgres(pool) => {
                Ok(on_postgres::$operation(&mut *pool.get().await?, $($arg),*).await?)
            }
            Pools::Mysql(pool) => {
                Ok(on_mysql::$operation(&mut *pool.get().await?, $($arg),*).await?)
            }
            Pools::Sqlite(pool) => {
                Ok(on_sqlite::$operation(&mut *pool.get().await?, $($arg),*).await?)
            }
        }
    };
}

impl MongooseSql {
    /// Connects to the database `url` names (`postgres://`, `mysql://`, `sqlite://path`)
    /// through a pool of `pool_size` connections, and creates the baseline's table afresh.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self> {
        let (pools, dialect) = if url.starts_with("postgres") {
            let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
            let pool = Pool::builder(manager).max_size(pool_size).build()?;
            let ddl = mongooseim_schema(DatabaseKind::Postgres, TABLE)?;
            let mut conn = pool.get().await?;
            conn.batch_execute(&format!("DROP TABLE IF EXISTS {TABLE}; {ddl}"))
                .await?;
            drop(conn);
            (Pools::Postgres(pool), "postgres")
        } else if url.starts_with("mysql") {
            let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(url);
            let pool = Pool::builder(manager).max_size(pool_size).build()?;
            let ddl = mongooseim_schema(DatabaseKind::Mysql, TABLE)?;
            let mut conn = pool.get().await?;
            conn.batch_execute(&format!("DROP TABLE IF EXISTS {TABLE}; {ddl}"))
                .await?;
            drop(conn);
            (Pools::Mysql(pool), "mariadb")
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            let mut config = ManagerConfig::default();
            config.custom_setup = Box::new(|path: &str| {
                let path = path.to_owned();
                async move {
                    let mut conn = LiteConnection::establish(&path).await?;
                    conn.batch_execute(SQLITE_SETUP)
                        .await
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    Ok(conn)
                }
                .boxed()
            });
            let manager = AsyncDieselConnectionManager::new_with_config(path, config);
            let pool = Pool::builder(manager).max_size(pool_size).build()?;
            pool.get().await?.batch_execute(SQLITE_DDL).await?;
            (Pools::Sqlite(pool), "sqlite")
        } else {
            return Err(format!("not a PostgreSQL, MySQL or SQLite URL: {url}").into());
        };
        Ok(Self {
            pools,
            label: format!("MongooseIM SQL ({dialect})"),
        })
    }
}

#[async_trait]
impl Subject for MongooseSql {
    fn label(&self) -> String {
        self.label.clone()
    }

    async fn write(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        _now: i64,
    ) -> Result<u64> {
        on_dialect!(self, write(user, &messages, quota))
    }

    async fn pop(&self, user: &UserKey, now: i64) -> Result<usize> {
        on_dialect!(self, pop(user, now))
    }

    async fn count(&self, user: &UserKey) -> Result<u64> {
        on_dialect!(self, count(user))
    }

    async fn fetch_page(&self, user: &UserKey, limit: usize, now: i64) -> Result<usize> {
        on_dialect!(self, fetch(user, limit, now))
    }

    async fn remove_expired(&self, domain: &Domain, now: i64) -> Result<u64> {
        on_dialect!(self, remove_expired(domain, now))
    }

    async fn clear(&self, domain: &Domain) -> Result<()> {
        on_dialect!(self, clear(domain))
    }

    async fn tear_down(&self) -> Result<()> {
        let drop_table = format!("DROP TABLE IF EXISTS {TABLE}");
        match &self.pools {
            Pools::Postgres(pool) => pool.get().await?.batch_execute(&drop_table).await?,
            Pools::Mysql(pool) => pool.get().await?.batch_execute(&drop_table).await?,
            Pools::Sqlite(pool) => pool.get().await?.batch_execute(&drop_table).await?,
        }
        Ok(())
    }
}
