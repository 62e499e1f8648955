//! `offline-diesel` against the whole testkit on every dialect: the conformance suite with
//! `reopen` and `peer` (a second pool on the same database, as a second server node has)
//! and the model-based property test.
//!
//! PostgreSQL and MariaDB are the local servers named by `OFFLINE_TEST_POSTGRES_URL` and
//! `OFFLINE_TEST_MYSQL_URL` (`scripts/test` sets them); each case works in its own domains so
//! cases run in parallel. PostgreSQL runs twice: on the `test` database, whose default
//! collation (C.UTF-8) is byte order anyway, and on a database whose default collation is
//! ICU `en-US`, where a column without `COLLATE "C"` would sort and compare differently.
//! SQLite runs on a temporary file per case.

mod common;

use common::{POSTGRES, Shared, connect, required, unavailable};
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use offline_core::{OfflineError, Result};
use offline_diesel::DieselBackend;
use offline_testkit::{Fixture, StoreFactory};
use tempfile::TempDir;

mod postgres {
    use super::*;

    offline_testkit::conformance_tests!(Shared::new(POSTGRES), capabilities = [reopen, peer]);
    offline_testkit::model_tests!(Shared::new(POSTGRES), cases = 32);
}

mod mysql {
    use super::*;
    use common::MYSQL;

    offline_testkit::conformance_tests!(Shared::new(MYSQL), capabilities = [reopen, peer]);
    offline_testkit::model_tests!(Shared::new(MYSQL), cases = 32);
}

mod postgres_icu {
    use super::*;

    offline_testkit::conformance_tests!(IcuPostgres, capabilities = [reopen, peer]);
    offline_testkit::model_tests!(IcuPostgres, cases = 16);
}

mod sqlite {
    use super::*;

    offline_testkit::conformance_tests!(Sqlite, capabilities = [reopen, peer]);
    offline_testkit::model_tests!(Sqlite, cases = 32);
}

/// The database PostgreSQL's ICU cases run in.
const ICU_DATABASE: &str = "offline_store_icu";

/// PostgreSQL on a database whose default collation is ICU `en-US`, not byte order.
struct IcuPostgres;

#[derive(QueryableByName)]
struct Answer {
    #[diesel(sql_type = Bool)]
    yes: bool,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    datname: String,
}

/// Creates the ICU database if it is missing (cases race to do so) and returns its URL.
async fn icu_database() -> Result<String> {
    let url = required(POSTGRES)?;
    let failed =
        |e: &dyn std::fmt::Display| OfflineError::invalid_input(format!("{ICU_DATABASE}: {e}"));
    let mut conn = AsyncPgConnection::establish(&url)
        .await
        .map_err(|e| failed(&e))?;
    let exists = async |conn: &mut AsyncPgConnection| {
        let found: Vec<Name> =
            diesel::sql_query("SELECT datname FROM pg_database WHERE datname = $1")
                .bind::<Text, _>(ICU_DATABASE)
                .load(conn)
                .await
                .map_err(|e| failed(&e))?;
        Ok::<_, OfflineError>(!found.is_empty())
    };
    if !exists(&mut conn).await? {
        let created = conn
            .batch_execute(&format!(
                "CREATE DATABASE {ICU_DATABASE} TEMPLATE template0 LOCALE_PROVIDER icu \
                 ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            ))
            .await;
        // Cases race to create it: losing the race is fine.
        if let Err(error) = created
            && !exists(&mut conn).await?
        {
            return Err(failed(&error));
        }
    }
    let (base, _) = url
        .rsplit_once('/')
        .ok_or_else(|| failed(&"no database in the URL"))?;
    let icu_url = format!("{base}/{ICU_DATABASE}");
    // The point of this database: its default order is not byte order ('a' < 'B' in en-US,
    // 'B' < 'a' in bytes).
    let mut conn = AsyncPgConnection::establish(&icu_url)
        .await
        .map_err(|e| failed(&e))?;
    let order: Vec<Answer> = diesel::sql_query("SELECT 'a' < 'B' AS yes")
        .load(&mut conn)
        .await
        .map_err(|e| failed(&e))?;
    if !order.iter().any(|a| a.yes) {
        return Err(failed(
            &"its default collation is byte order, so it would hide collation bugs",
        ));
    }
    Ok(icu_url)
}

impl StoreFactory for IcuPostgres {
    type Store = DieselBackend;

    fn unavailable(&self) -> Option<String> {
        unavailable(POSTGRES)
    }

    async fn create(&self) -> Result<Fixture<DieselBackend>> {
        Ok(Fixture::in_own_namespace(
            connect(&icu_database().await?).await?,
        ))
    }

    async fn reopen(&self, store: DieselBackend) -> Result<DieselBackend> {
        drop(store);
        connect(&icu_database().await?).await
    }

    async fn peer(&self, _store: &DieselBackend) -> Result<DieselBackend> {
        connect(&icu_database().await?).await
    }
}

/// SQLite on a temporary file per case.
struct Sqlite;

fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("offline.db").display())
}

impl StoreFactory for Sqlite {
    type Store = DieselBackend;

    async fn create(&self) -> Result<Fixture<DieselBackend>> {
        let dir = TempDir::new().map_err(|e| OfflineError::backend("rdbms", e))?;
        let store = connect(&sqlite_url(&dir)).await?;
        Ok(Fixture::fresh(store).with_guard(dir))
    }

    async fn reopen(&self, store: DieselBackend) -> Result<DieselBackend> {
        let url = store.config().url.clone();
        drop(store);
        connect(&url).await
    }

    async fn peer(&self, store: &DieselBackend) -> Result<DieselBackend> {
        connect(&store.config().url).await
    }
}
