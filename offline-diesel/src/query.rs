//! A statement with its bind values, and what each dialect's connection does with one.
//!
//! The store's SQL is plain text with `?` placeholders, the same for every dialect except
//! where a dialect module says otherwise; PostgreSQL's `$n` placeholders are numbered when
//! the statement is built. Values are borrowed from the caller, so a retried transaction
//! binds the same data again without copying packets.

use std::future::Future;

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Binary, HasSqlType, Nullable, Text};

/// One bind value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value<'a> {
    /// A `BIGINT`.
    Int(i64),
    /// A nullable `BIGINT`.
    OptInt(Option<i64>),
    /// Text.
    Text(&'a str),
    /// Nullable text.
    OptText(Option<&'a str>),
    /// Nullable bytes.
    OptBytes(Option<&'a [u8]>),
}

/// A statement and its binds.
#[derive(Debug)]
pub(crate) struct Query<'a> {
    sql: String,
    binds: Vec<Value<'a>>,
    numbered: bool,
}

impl<'a> Query<'a> {
    /// A statement in `?` placeholders bound to `binds`, in order. With `numbered` they
    /// become `$1`, `$2`, ... when the statement runs, as PostgreSQL wants. The store's SQL
    /// has no `?` outside placeholders.
    pub(crate) fn new(
        numbered: bool,
        sql: impl Into<String>,
        binds: impl IntoIterator<Item = Value<'a>>,
    ) -> Self {
        Self {
            sql: sql.into(),
            binds: binds.into_iter().collect(),
            numbered,
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn param(&mut self, value: Value<'a>) -> &mut Self {
        self.binds.push(value);
        self.push("?")
    }

    /// Appends `(?, ?, ...)`, one placeholder per value: an `IN` list.
    pub(crate) fn list(&mut self, values: impl IntoIterator<Item = Value<'a>>) -> &mut Self {
        self.push("(");
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.param(value);
        }
        self.push(")")
    }

    /// The statement as diesel runs it on backend `DB`.
    pub(crate) fn boxed<DB>(&self) -> BoxedSqlQuery<'a, DB, SqlQuery>
    where
        DB: Backend
            + HasSqlType<BigInt>
            + HasSqlType<Text>
            + HasSqlType<Binary>
            + HasSqlType<Nullable<BigInt>>
            + HasSqlType<Nullable<Text>>
            + HasSqlType<Nullable<Binary>>,
        i64: ToSql<BigInt, DB>,
        str: ToSql<Text, DB>,
        [u8]: ToSql<Binary, DB>,
    {
        let sql = if self.numbered {
            number_placeholders(&self.sql)
        } else {
            self.sql.clone()
        };
        let mut query = diesel::sql_query(sql).into_boxed::<DB>();
        for value in &self.binds {
            query = match *value {
                Value::Int(v) => query.bind::<BigInt, _>(v),
                Value::OptInt(v) => query.bind::<Nullable<BigInt>, _>(v),
                Value::Text(v) => query.bind::<Text, _>(v),
                Value::OptText(v) => query.bind::<Nullable<Text>, _>(v),
                Value::OptBytes(v) => query.bind::<Nullable<Binary>, _>(v),
            };
        }
        query
    }
}

/// `?` → `$1`, `$2`, ... in order.
fn number_placeholders(sql: &str) -> String {
    let mut numbered = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            numbered.push('$');
            numbered.push_str(&n.to_string());
        } else {
            numbered.push(c);
        }
    }
    numbered
}

/// What the store asks of a connection: run statements, load rows, and open and close
/// transactions that the pool can see (a transaction left open by a cancelled call makes
/// the pool drop the connection instead of reusing it).
pub(crate) trait Session: Send {
    /// Runs a statement; returns the rows it affected.
    fn execute(&mut self, query: &Query<'_>) -> impl Future<Output = QueryResult<usize>> + Send;

    /// Runs a statement and decodes its rows.
    fn load<R: Row>(
        &mut self,
        query: &Query<'_>,
    ) -> impl Future<Output = QueryResult<Vec<R>>> + Send;

    /// Opens a transaction that will write (SQLite takes its write lock here).
    fn begin(&mut self) -> impl Future<Output = QueryResult<()>> + Send;

    /// Commits the open transaction.
    fn commit(&mut self) -> impl Future<Output = QueryResult<()>> + Send;

    /// Rolls the open transaction back.
    fn rollback(&mut self) -> impl Future<Output = QueryResult<()>> + Send;
}

/// Implements [`Session`] for a diesel-async connection whose transactions its ANSI
/// transaction manager runs (PostgreSQL, MariaDB).
#[cfg(any(feature = "postgres", feature = "mysql"))]
macro_rules! ansi_session {
    ($conn:ty, $backend:ty) => {
        impl $crate::query::Session for $conn {
            async fn execute(
                &mut self,
                query: &$crate::query::Query<'_>,
            ) -> diesel::result::QueryResult<usize> {
                diesel_async::RunQueryDsl::execute(query.boxed::<$backend>(), self).await
            }

            async fn load<R: $crate::query::Row>(
                &mut self,
                query: &$crate::query::Query<'_>,
            ) -> diesel::result::QueryResult<Vec<R>> {
                diesel_async::RunQueryDsl::load(query.boxed::<$backend>(), self).await
            }

            async fn begin(&mut self) -> diesel::result::QueryResult<()> {
                use diesel_async::TransactionManager;
                diesel_async::AnsiTransactionManager::begin_transaction(self).await
            }

            async fn commit(&mut self) -> diesel::result::QueryResult<()> {
                use diesel_async::TransactionManager;
                diesel_async::AnsiTransactionManager::commit_transaction(self).await
            }

            async fn rollback(&mut self) -> diesel::result::QueryResult<()> {
                use diesel_async::TransactionManager;
                diesel_async::AnsiTransactionManager::rollback_transaction(self).await
            }
        }
    };
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) use ansi_session;

/// A row type every dialect built in can decode (see [`crate::rows`]).
pub(crate) trait Row: Send + 'static + PgRow + MysqlRow + SqliteRow {}

impl<T: Send + 'static + PgRow + MysqlRow + SqliteRow> Row for T {}

macro_rules! dialect_row {
    ($name:ident, $feature:literal, $backend:ty) => {
        /// Decodable on this dialect, when its feature is on.
        #[cfg(feature = $feature)]
        pub(crate) trait $name: diesel::QueryableByName<$backend> {}
        #[cfg(feature = $feature)]
        impl<T: diesel::QueryableByName<$backend>> $name for T {}
        /// Decodable on this dialect, when its feature is on.
        #[cfg(not(feature = $feature))]
        pub(crate) trait $name {}
        #[cfg(not(feature = $feature))]
        impl<T> $name for T {}
    };
}

dialect_row!(PgRow, "postgres", diesel::pg::Pg);
dialect_row!(MysqlRow, "mysql", diesel::mysql::Mysql);
dialect_row!(SqliteRow, "sqlite", diesel::sqlite::Sqlite);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_and_kept_otherwise() {
        for (numbered, expected) in [
            (true, "SELECT 1 WHERE a = $1 AND b IN ($2, $3)"),
            (false, "SELECT 1 WHERE a = ? AND b IN (?, ?)"),
        ] {
            let mut query = Query::new(numbered, "SELECT 1 WHERE a = ? AND b IN ", [Value::Int(1)]);
            query.list([Value::Int(2), Value::Int(3)]);
            let sql = if numbered {
                number_placeholders(&query.sql)
            } else {
                query.sql.clone()
            };
            assert_eq!(sql, expected);
            assert_eq!(query.binds.len(), 3);
        }
    }
}
