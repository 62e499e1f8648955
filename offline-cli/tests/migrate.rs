//! `offlinectl migrate` as a process: several thousand messages from RocksDB to PostgreSQL
//! and back, each first run killed part-way and run again, then every queue compared.
//! PostgreSQL comes from `OFFLINE_TEST_POSTGRES_URL` (a database of its own is created and
//! dropped); without it the test is skipped outside CI.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use offline_diesel::DatabaseKind;
use offline_diesel::import::mongooseim_schema;
use offline_module::offline_core::{NewMessage, OfflineBackend, Quota, UserKey};
use offline_module::{OfflineConfig, open_backend};

use common::runtime;

const USERS: usize = 60;
const PER_USER: usize = 50;
const DAY: i64 = 86_400_000_000;

fn now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_micros()).unwrap()
}

async fn store(config: &Path) -> Arc<dyn OfflineBackend> {
    let parsed = OfflineConfig::from_file(config).unwrap();
    let storage = parsed
        .for_host(parsed.hosts[0].as_str())
        .storage
        .clone()
        .unwrap();
    open_backend(&storage).await.unwrap()
}

fn users() -> Vec<UserKey> {
    (0..USERS)
        .map(|i| UserKey::from_normalized("migrate.example", format!("user{i:03}")))
        .collect()
}

/// Every user's unexpired messages, as (timestamp, expire, from, to, packet, permanent fields).
type Queues = BTreeMap<String, Vec<(i64, Option<i64>, String, String, String, Option<Vec<u8>>)>>;

async fn queues(store: &dyn OfflineBackend) -> Queues {
    let mut all = Queues::new();
    for user in users() {
        let held = store
            .fetch_messages(&user, None, None, now())
            .await
            .unwrap();
        let rows = held
            .into_iter()
            .map(|m| {
                let m = m.message;
                (
                    m.timestamp,
                    m.expire,
                    m.from,
                    m.to,
                    m.packet,
                    m.permanent_fields,
                )
            })
            .collect();
        all.insert(user.to_string(), rows);
    }
    all
}

/// How many unexpired messages the store `config` names holds for the test's users.
fn held_in(runtime: &tokio::runtime::Runtime, config: &Path) -> usize {
    runtime.block_on(async {
        let store = store(config).await;
        queues(store.as_ref()).await.values().map(Vec::len).sum()
    })
}

/// Runs `migrate --from from --to to`, killing it at its first progress line; returns whether
/// it was cut off before it finished.
fn migrate_killed(dir: &Path, from: &str, to: &str) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_offlinectl"))
        .current_dir(dir)
        .args(["migrate", "--from", from, "--to", to])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let line = first.map(Result::unwrap).unwrap_or_default();
    assert!(line.starts_with("copied "), "no progress line: {line}");
    !status.success()
}

fn migrate(dir: &Path, from: &str, to: &str) -> String {
    offlinectl_ok(dir, &["migrate", "--from", from, "--to", to])
}

/// Runs offlinectl in `dir`; asserts it succeeded and returns its stdout.
fn offlinectl_ok(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_offlinectl"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A PostgreSQL database of the test's own, dropped when the test ends, passed or not.
struct Database {
    admin_url: String,
    name: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        runtime().block_on(async {
            if let Ok(mut admin) = AsyncPgConnection::establish(&self.admin_url).await {
                let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                let _ = admin.batch_execute(&drop).await;
            }
        });
    }
}

impl Database {
    /// Creates a database of the test's own next to the one `url` names.
    fn create(runtime: &tokio::runtime::Runtime, url: &str) -> (Self, String) {
        let name = format!("offline_migrate_{:08x}", fastrand::u32(..));
        runtime.block_on(async {
            let mut admin = AsyncPgConnection::establish(url).await.unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
        });
        let (base, _) = url.rsplit_once('/').unwrap();
        let db_url = format!("{base}/{name}");
        let database = Self {
            admin_url: url.to_owned(),
            name,
        };
        (database, db_url)
    }
}

#[test]
fn mongooseim_table_imported_twice_stores_every_row_once() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let runtime = runtime();
    let (_database, db_url) = Database::create(&runtime, &url);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.toml");
    std::fs::write(
        &target,
        format!(
            "[general]\nhosts = [\"migrate.example\"]\n[modules.mod_offline]\n\
             backend = \"rocksdb\"\n[modules.mod_offline.rocksdb]\npath = {:?}\n",
            dir.path().join("store").to_str().unwrap()
        ),
    )
    .unwrap();
    let future = now() + 30 * DAY;
    runtime.block_on(async {
        let mut mongooseim = AsyncPgConnection::establish(&db_url).await.unwrap();
        let ddl = mongooseim_schema(DatabaseKind::Postgres, "offline_message").unwrap();
        mongooseim.batch_execute(&ddl).await.unwrap();
        mongooseim
            .batch_execute(&format!(
                "INSERT INTO offline_message (timestamp, expire, server, username, from_jid, packet)
                 VALUES ({t}, NULL, 'migrate.example', 'user000', 'romeo@example.net/r',
                         '<message><body>one</body></message>'),
                        ({t}, {future}, 'migrate.example', 'user000', 'romeo@example.net/r',
                         '<message><body>two</body></message>'),
                        ({t}, NULL, 'migrate.example', 'user001', 'romeo@example.net/r',
                         '<message><body>three</body></message>')",
                t = now() - DAY
            ))
            .await
            .unwrap();
    });
    let import = || {
        let args = [
            "migrate",
            "--from-mongooseim",
            &db_url,
            "--to",
            "target.toml",
        ];
        offlinectl_ok(dir.path(), &args)
    };
    assert!(import().contains("3 rows read up to id 3: 3 stored, 0 already there"));
    assert!(import().contains("3 rows read up to id 3: 0 stored, 3 already there"));
    runtime.block_on(async {
        let store = store(&target).await;
        let held = queues(store.as_ref()).await;
        let bodies: Vec<&str> = held.values().flatten().map(|m| m.4.as_str()).collect();
        assert_eq!(bodies.len(), 3, "{bodies:?}");
        assert!(
            bodies[0].contains("one") && bodies[1].contains("two") && bodies[2].contains("three")
        );
    });
}

#[test]
fn rocksdb_to_postgres_and_back_killed_part_way_and_run_again() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let runtime = runtime();
    let (_database, db_url) = Database::create(&runtime, &url);
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, section: String| {
        let text =
            format!("[general]\nhosts = [\"migrate.example\"]\n[modules.mod_offline]\n{section}");
        std::fs::write(dir.path().join(name), text).unwrap();
    };
    let rocks = |path: &str| {
        format!(
            "backend = \"rocksdb\"\n[modules.mod_offline.rocksdb]\npath = {:?}\nsync_writes = false\n",
            dir.path().join(path).to_str().unwrap()
        )
    };
    config("first.toml", rocks("first"));
    config("second.toml", rocks("second"));
    config(
        "pg.toml",
        format!("backend = \"rdbms\"\n[modules.mod_offline.rdbms]\nurl = {db_url:?}\n"),
    );
    config("memory.toml", "backend = \"memory\"\n".into());

    runtime.block_on(async {
        // The first store: messages with and without dedupe keys, expiring later or never,
        // with opaque fields, unicode and SQL metacharacters.
        let first = store(&dir.path().join("first.toml")).await;
        let now = now();
        for (u, user) in users().iter().enumerate() {
            let batch = (0..PER_USER)
                .map(|i| {
                    let mut m = NewMessage::new(
                        now - DAY + i64::try_from(i).unwrap(),
                        format!("sender{u}@example.net/r'; DROP TABLE x; --"),
                        user.to_string(),
                        format!("<message><body>{u}-{i} é ✓</body></message>"),
                    );
                    if i % 3 == 0 {
                        m = m.dedupe_key(format!("origin {u}-{i}"));
                    }
                    if i % 5 == 0 {
                        m.expire = Some(now + 30 * DAY);
                    }
                    if i % 7 == 0 {
                        m = m.permanent_fields(vec![0, 1, 2, u8::try_from(i).unwrap()]);
                    }
                    m
                })
                .collect();
            first
                .write_messages(user, batch, Quota::UNLIMITED, now - DAY)
                .await
                .unwrap();
        }
    });
    let total = USERS * PER_USER;

    // The memory store cannot take part; a dry run moves nothing.
    let output = Command::new(env!("CARGO_BIN_EXE_offlinectl"))
        .current_dir(dir.path())
        .args(["migrate", "--from", "first.toml", "--to", "memory.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("memory.toml"));
    // Nor can a store be migrated into itself.
    let output = Command::new(env!("CARGO_BIN_EXE_offlinectl"))
        .current_dir(dir.path())
        .args(["migrate", "--from", "first.toml", "--to", "first.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("the same store"));
    let dry = Command::new(env!("CARGO_BIN_EXE_offlinectl"))
        .current_dir(dir.path())
        .args([
            "migrate",
            "--from",
            "first.toml",
            "--to",
            "pg.toml",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert!(dry.status.success());
    let dry = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert_eq!(
        dry,
        format!(
            "Would copy up to {total} messages of {USERS} users (expired ones are left behind)\n"
        )
    );
    let held = held_in(&runtime, &dir.path().join("pg.toml"));
    assert_eq!(held, 0, "a dry run copied messages");

    // RocksDB to PostgreSQL, cut off, then run again.
    assert!(
        migrate_killed(dir.path(), "first.toml", "pg.toml"),
        "the first run was not cut off"
    );
    let held = held_in(&runtime, &dir.path().join("pg.toml"));
    assert!(held < total, "the killed run copied everything ({held})");
    let report = migrate(dir.path(), "first.toml", "pg.toml");
    assert!(report.contains("Verified"), "{report}");
    runtime.block_on(async {
        let first = store(&dir.path().join("first.toml")).await;
        let pg = store(&dir.path().join("pg.toml")).await;
        let expected = queues(first.as_ref()).await;
        assert_eq!(expected.values().map(Vec::len).sum::<usize>(), total);
        assert_eq!(queues(pg.as_ref()).await, expected, "RocksDB to PostgreSQL");
    });

    // And back, into a new RocksDB store.
    assert!(
        migrate_killed(dir.path(), "pg.toml", "second.toml"),
        "the first run was not cut off"
    );
    let report = migrate(dir.path(), "pg.toml", "second.toml");
    assert!(report.contains("Verified"), "{report}");
    runtime.block_on(async {
        let first = store(&dir.path().join("first.toml")).await;
        let expected = queues(first.as_ref()).await;
        drop(first);
        let second = store(&dir.path().join("second.toml")).await;
        assert_eq!(
            queues(second.as_ref()).await,
            expected,
            "PostgreSQL to RocksDB"
        );
    });
}
