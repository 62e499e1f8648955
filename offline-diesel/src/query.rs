//! A statement with its bind values, and what each dialect's connection does with one.
//!
//! The store's SQL is plain text with `?` placeholders, the same for every dialect except
//! where a dialect module says otherwise; each backend's query builder writes its own
//! placeholders (`$n` on PostgreSQL) when the statement runs. Values are borrowed from the
//! caller, so a retried transaction binds the same data again without copying packets.
//!
//! Statements of a fixed shape are kept prepared on their connection (diesel's statement
//! cache, keyed by the SQL text and bind types): a call then costs one round trip per
//! statement instead of a parse and an execution. Statements whose shape varies with the
//! data (an `IN` list of more than one value, an insert of more than one row) are prepared
//! per call, so that a connection keeps a handful of statements (MariaDB limits prepared
//! statements server-wide).

use std::future::Future;

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Binary, HasSqlType, Nullable, Text, Untyped};

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
    /// Rows appended with [`Query::row`].
    rows: usize,
    /// Whether its shape is fixed, so that keeping it prepared pays.
    fixed_shape: bool,
}

impl<'a> Query<'a> {
    /// A statement in `?` placeholders bound to `binds`, in order. The store's SQL has no
    /// `?` outside placeholders.
    pub(crate) fn new(sql: impl Into<String>, binds: impl IntoIterator<Item = Value<'a>>) -> Self {
        Self {
            sql: sql.into(),
            binds: binds.into_iter().collect(),
            rows: 0,
            fixed_shape: true,
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Puts SQL text before the statement.
    pub(crate) fn prepend(&mut self, sql: &str) -> &mut Self {
        self.sql.insert_str(0, sql);
        self
    }

    /// Appends another statement's SQL and values.
    pub(crate) fn append(&mut self, other: Query<'a>) -> &mut Self {
        self.sql.push_str(&other.sql);
        self.binds.extend(other.binds);
        self.fixed_shape &= other.fixed_shape;
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn param(&mut self, value: Value<'a>) -> &mut Self {
        self.binds.push(value);
        self.push("?")
    }

    /// Appends `(?, ?, ...)`, one placeholder per value: an `IN` list.
    pub(crate) fn list(&mut self, values: impl IntoIterator<Item = Value<'a>>) -> &mut Self {
        if self.parenthesised(values) > 1 {
            self.fixed_shape = false;
        }
        self
    }

    /// Appends `(?, ?, ...)` of one row's values, to a multi-row `INSERT` (the caller puts
    /// the commas between rows).
    pub(crate) fn row(&mut self, values: impl IntoIterator<Item = Value<'a>>) -> &mut Self {
        self.rows += 1;
        if self.rows > 1 {
            self.fixed_shape = false;
        }
        self.parenthesised(values);
        self
    }

    /// Appends `(?, ?, ...)`; returns how many values it bound.
    fn parenthesised(&mut self, values: impl IntoIterator<Item = Value<'a>>) -> usize {
        self.push("(");
        let mut count = 0;
        for value in values {
            if count > 0 {
                self.push(", ");
            }
            self.param(value);
            count += 1;
        }
        self.push(")");
        count
    }

    /// The statement as diesel runs it.
    pub(crate) fn statement(&self) -> Statement<'_, 'a> {
        Statement(self)
    }
}

/// A [`Query`] as diesel runs it: its SQL with each backend's placeholders, and its values.
#[derive(Debug)]
pub(crate) struct Statement<'q, 'a>(&'q Query<'a>);

impl<DB> QueryFragment<DB> for Statement<'_, '_>
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
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let query = self.0;
        if !query.fixed_shape {
            out.unsafe_to_cache_prepared();
        }
        let placeholders = query.sql.matches('?').count();
        if placeholders != query.binds.len() {
            return Err(diesel::result::Error::QueryBuilderError(
                format!(
                    "a statement has {placeholders} placeholders and {} values",
                    query.binds.len()
                )
                .into(),
            ));
        }
        let mut pieces = query.sql.split('?');
        if let Some(first) = pieces.next() {
            out.push_sql(first);
        }
        for (value, piece) in query.binds.iter().zip(pieces) {
            match value {
                Value::Int(v) => out.push_bind_param::<BigInt, i64>(v)?,
                Value::OptInt(v) => out.push_bind_param::<Nullable<BigInt>, _>(v)?,
                Value::Text(v) => out.push_bind_param::<Text, str>(v)?,
                Value::OptText(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                Value::OptBytes(v) => out.push_bind_param::<Nullable<Binary>, _>(v)?,
            }
            out.push_sql(piece);
        }
        Ok(())
    }
}

/// Cached by its SQL text, when it is cached.
impl QueryId for Statement<'_, '_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for Statement<'_, '_> {
    type SqlType = Untyped;
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
                diesel_async::RunQueryDsl::execute(query.statement(), self).await
            }

            async fn load<R: $crate::query::Row>(
                &mut self,
                query: &$crate::query::Query<'_>,
            ) -> diesel::result::QueryResult<Vec<R>> {
                diesel_async::RunQueryDsl::load(query.statement(), self).await
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
    fn lists_add_a_placeholder_per_value() {
        let mut query = Query::new("SELECT 1 WHERE a = ? AND b IN ", [Value::Int(1)]);
        query.list([Value::Int(2), Value::Int(3)]);
        assert_eq!(query.sql, "SELECT 1 WHERE a = ? AND b IN (?, ?)");
        assert_eq!(query.binds.len(), 3);
    }

    #[test]
    fn only_fixed_shapes_are_kept_prepared() {
        let mut one = Query::new("DELETE FROM t WHERE a = ? AND b IN ", [Value::Int(1)]);
        one.list([Value::Int(2)]);
        assert!(one.fixed_shape, "a one-value list has one shape");
        let mut two = Query::new("DELETE FROM t WHERE a = ? AND b IN ", [Value::Int(1)]);
        two.list([Value::Int(2), Value::Int(3)]);
        assert!(!two.fixed_shape, "longer lists vary with the data");
        let mut rows = Query::new("INSERT INTO t VALUES ", []);
        rows.row([Value::Int(1)]);
        assert!(rows.fixed_shape, "a one-row insert has one shape");
        rows.push(", ").row([Value::Int(2)]);
        assert!(!rows.fixed_shape, "multi-row inserts vary with the data");
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn a_statement_whose_values_do_not_match_its_placeholders_is_refused() {
        use diesel::pg::{Pg, PgQueryBuilder};
        let query = Query::new("SELECT 1 WHERE a = ? AND b = ?", [Value::Int(1)]);
        let built = query
            .statement()
            .to_sql(&mut PgQueryBuilder::default(), &Pg);
        assert!(built.is_err(), "the statement was built: {built:?}");
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_placeholders_are_numbered() {
        let mut query = Query::new("SELECT 1 WHERE a = ? AND b IN ", [Value::Int(1)]);
        query.list([Value::Text("x"), Value::OptBytes(None)]);
        let sql = diesel::debug_query::<diesel::pg::Pg, _>(&query.statement()).to_string();
        assert!(
            sql.starts_with("SELECT 1 WHERE a = $1 AND b IN ($2, $3)"),
            "{sql}"
        );
    }
}
