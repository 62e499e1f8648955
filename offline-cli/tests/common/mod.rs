//! What the process tests share.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

/// PostgreSQL's URL from `OFFLINE_TEST_POSTGRES_URL`, or `None` (the test is skipped) outside
/// CI; under CI a missing URL fails the test.
pub fn postgres_url() -> Option<String> {
    match std::env::var("OFFLINE_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") => {
            panic!("CI needs OFFLINE_TEST_POSTGRES_URL")
        }
        Err(_) => {
            eprintln!("skipped: OFFLINE_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// One hour in µs.
pub const HOUR: i64 = 3_600_000_000;

/// Now, in µs since the epoch.
pub fn now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_micros()).unwrap()
}

/// A domain of the test's own on a shared database, named after `prefix`.
pub fn own_domain(prefix: &str) -> String {
    format!("{prefix}{:08x}.example", fastrand::u32(..))
}

/// A configuration serving `domain` and `sub.{domain}` on the PostgreSQL database at `url`.
pub fn postgres_config(url: &str, domain: &str) -> String {
    format!(
        "[general]\nhosts = [\"{domain}\", \"sub.{domain}\"]\n\
         [modules.mod_offline]\nbackend = \"rdbms\"\n\
         [modules.mod_offline.rdbms]\nurl = {url:?}\n"
    )
}

/// A runtime for the library calls that seed and check the stores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A PostgreSQL database of the test's own, dropped when the test ends, passed or not.
pub struct Database {
    admin_url: String,
    name: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
        runtime().block_on(async {
            if let Ok(mut admin) = AsyncPgConnection::establish(&self.admin_url).await {
                let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                let _ = admin.batch_execute(&drop).await;
            }
        });
    }
}

impl Database {
    /// Creates a database of the test's own next to the one `url` names; returns it and its
    /// URL.
    pub fn create(runtime: &tokio::runtime::Runtime, url: &str) -> (Self, String) {
        use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
        let name = format!("offline_cli_{:08x}", fastrand::u32(..));
        runtime.block_on(async {
            let mut admin = AsyncPgConnection::establish(url).await.unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
        });
        let (base, _) = url.rsplit_once('/').unwrap();
        let database_url = format!("{base}/{name}");
        let database = Self {
            admin_url: url.to_owned(),
            name,
        };
        (database, database_url)
    }
}
