//! Connection pools (deadpool through diesel-async) and embedded migrations, shared by the
//! dialects.

use diesel::backend::Backend;
use diesel::migration::MigrationSource;
use diesel_async::AsyncConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError, RecyclingMethod, SetupCallback,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use futures_util::future::BoxFuture;
use offline_core::BoxError;

use crate::DieselConfig;
use crate::error::OpenError;

/// A pool of `C` connections sized and timed by `config`, each set up by `setup` when opened.
///
/// Connections are not checked with a query when checked out (that costs a round trip per
/// call); one that turns out to be lost is dropped by the store, and one left in a
/// transaction by a cancelled call is dropped by the pool.
pub(crate) fn build<C>(
    config: &DieselConfig,
    url: &str,
    setup: SetupCallback<C>,
) -> Result<Pool<C>, OpenError>
where
    C: AsyncConnection + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C, Error = PoolError>,
{
    let mut manager_config = ManagerConfig::default();
    manager_config.recycling_method = RecyclingMethod::Fast;
    manager_config.custom_setup = setup;
    let manager = AsyncDieselConnectionManager::new_with_config(url, manager_config);
    Pool::builder(manager)
        .max_size(config.pool_size)
        .create_timeout(Some(config.connect_timeout))
        .wait_timeout(Some(config.checkout_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| OpenError::InvalidSetting {
            key: "pool_size",
            reason: e.to_string(),
        })
}

/// Checks a connection out of `pool`.
pub(crate) async fn checkout<C>(pool: &Pool<C>) -> Result<Object<C>, BoxError>
where
    C: AsyncConnection + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C, Error = PoolError>,
{
    Ok(pool.get().await?)
}

/// Drops a connection instead of returning it to its pool.
pub(crate) fn discard<C>(conn: Object<C>)
where
    C: AsyncConnection + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C, Error = PoolError>,
{
    drop(Object::take(conn));
}

/// Creates or upgrades the store's tables on a connection of their own, off the async
/// workers (diesel's migration harness blocks). Two servers starting at once may race: a
/// failed run is tried again, and the migrations themselves only create what is missing.
pub(crate) async fn migrate<DB, H>(
    dialect: &'static str,
    open: impl Fn() -> BoxFuture<'static, Result<H, OpenError>>,
    migrations: fn() -> EmbeddedMigrations,
) -> Result<(), OpenError>
where
    DB: Backend,
    H: MigrationHarness<DB> + Send + 'static,
    EmbeddedMigrations: MigrationSource<DB>,
{
    const ATTEMPTS: u32 = 3;
    let mut attempt = 1;
    loop {
        let mut harness = open().await?;
        let result = tokio::task::spawn_blocking(move || {
            harness
                .run_pending_migrations(migrations())
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match result {
            Ok(()) => return Ok(()),
            Err(error) if attempt < ATTEMPTS => {
                tracing::info!(dialect, attempt, %error, "migrations failed; trying again");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(error) => {
                return Err(OpenError::Migrate {
                    dialect,
                    source: error.into(),
                });
            }
        }
    }
}
