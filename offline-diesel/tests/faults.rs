//! Connections killed by the database in the middle of a workload, on PostgreSQL
//! (`pg_terminate_backend`) and MariaDB (`KILL`): calls fail with `Unavailable`, nothing
//! acknowledged is lost or stored twice, and the same store (its pool) serves again
//! afterwards without being reopened.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::ledger::{Ledger, Plan, workload};
use common::{MYSQL, POSTGRES, connect, required, unavailable};
use diesel_async::{
    AsyncConnection, AsyncMysqlConnection, AsyncPgConnection, SimpleAsyncConnection,
};
use offline_core::{OfflineBackend, Quota, UserKey};
use offline_diesel::DieselBackend;
use parking_lot::Mutex;

/// Runs writers and poppers on `store` while `kill` ends its connections 8 times, then
/// checks what was acknowledged against what is held and was delivered.
async fn survive_killed_connections(store: DieselBackend, kill: impl AsyncFn() -> usize) {
    let store = Arc::new(store);
    let domain = format!("f{:08x}.example.com", fastrand::u32(..));
    let users: Arc<Vec<UserKey>> = Arc::new(
        (0..5)
            .map(|i| format!("user{i}@{domain}").parse().unwrap())
            .collect(),
    );
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|worker| {
            tokio::spawn(workload(
                Arc::clone(&store),
                Arc::clone(&users),
                Plan {
                    worker,
                    pop_every: Some(5),
                    quota: Quota::UNLIMITED,
                    pause: Duration::ZERO,
                },
                Arc::clone(&ledger),
                Arc::clone(&stop),
            ))
        })
        .collect();
    let mut killed = 0;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        killed += kill().await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner();
    assert!(killed > 0, "the test killed no connection");
    ledger.assert_no_unexpected();
    assert!(
        ledger.unavailable > 0,
        "killing {killed} connections made no call fail: the test did not hit a call in flight"
    );
    eprintln!("{killed} connections killed; {}", ledger.summary());
    // The same store serves again: the pool replaced its dead connections.
    for user in users.iter() {
        let held = store.pop_messages(user, 1).await.unwrap();
        ledger.check(user, &held);
        assert_eq!(store.count_messages(user).await.unwrap().messages, 0);
    }
}

#[test]
fn postgres_connections_killed_mid_workload() {
    if let Some(reason) = unavailable(POSTGRES) {
        eprintln!("skipped: {reason}");
        return;
    }
    offline_testkit::runtime().block_on(async {
        let url = required(POSTGRES).unwrap();
        let tag = format!("offline_faults_{:08x}", fastrand::u32(..));
        let separator = if url.contains('?') { '&' } else { '?' };
        let store = connect(&format!("{url}{separator}application_name={tag}"))
            .await
            .unwrap();
        let admin = tokio::sync::Mutex::new(AsyncPgConnection::establish(&url).await.unwrap());
        survive_killed_connections(store, async || {
            let mut admin = admin.lock().await;
            let ids: Vec<Id> = diesel_async::RunQueryDsl::load(
                diesel::sql_query(format!(
                    "SELECT CAST(pid AS BIGINT) AS id FROM pg_stat_activity \
                     WHERE application_name = '{tag}'"
                )),
                &mut *admin,
            )
            .await
            .unwrap();
            for id in &ids {
                admin
                    .batch_execute(&format!("SELECT pg_terminate_backend({})", id.id))
                    .await
                    .unwrap();
            }
            ids.len()
        })
        .await;
    });
}

#[test]
fn mariadb_connections_killed_mid_workload() {
    if let Some(reason) = unavailable(MYSQL) {
        eprintln!("skipped: {reason}");
        return;
    }
    offline_testkit::runtime().block_on(async {
        let url = required(MYSQL).unwrap();
        // The store connects as a user of its own, so that only its connections are killed.
        let user = format!("faults{:08x}", fastrand::u32(..));
        let mut admin = AsyncMysqlConnection::establish(&url).await.unwrap();
        admin
            .batch_execute(&format!(
                "CREATE USER '{user}'@'127.0.0.1'; GRANT ALL ON *.* TO '{user}'@'127.0.0.1'"
            ))
            .await
            .unwrap();
        let (_, rest) = url.split_once('@').unwrap();
        let store = connect(&format!("mysql://{user}@{rest}")).await.unwrap();
        let admin = tokio::sync::Mutex::new(admin);
        survive_killed_connections(store, async || {
            let mut admin = admin.lock().await;
            let ids: Vec<Id> = diesel_async::RunQueryDsl::load(
                diesel::sql_query(format!(
                    "SELECT CAST(ID AS SIGNED) AS id FROM information_schema.PROCESSLIST \
                     WHERE USER = '{user}'"
                )),
                &mut *admin,
            )
            .await
            .unwrap();
            for id in &ids {
                // A connection may end by itself meanwhile.
                let _ = admin.batch_execute(&format!("KILL {}", id.id)).await;
            }
            ids.len()
        })
        .await;
        admin
            .lock()
            .await
            .batch_execute(&format!("DROP USER '{user}'@'127.0.0.1'"))
            .await
            .unwrap();
    });
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}
