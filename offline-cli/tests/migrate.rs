//! `offlinectl migrate` as a process: several thousand messages from RocksDB to PostgreSQL
//! and back, each first run killed part-way and run again, then every queue compared; and
//! MongooseIM's table imported: twice, as a dry run that opens no target, and into a target
//! that loses a message (and then holds one more than the import's), which the verification
//! names.
//! PostgreSQL comes from `OFFLINE_TEST_POSTGRES_URL` (each test creates databases of its own
//! and drops them); without it the tests are skipped outside CI.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use offline_diesel::DatabaseKind;
use offline_diesel::import::mongooseim_schema;
use offline_module::offline_core::{NewMessage, OfflineBackend, Quota, UserKey};
use offline_module::{OfflineConfig, open_backend};

use common::{Database, now, runtime};

const USERS: usize = 60;
const PER_USER: usize = 50;
const DAY: i64 = 86_400_000_000;

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

/// Runs offlinectl in `dir` to its end.
fn offlinectl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offlinectl"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// Runs offlinectl in `dir`; asserts it succeeded and returns its stdout.
fn offlinectl_ok(dir: &Path, args: &[&str]) -> String {
    let output = offlinectl(dir, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Writes `dir/name`: a configuration of the domain `migrate.example` whose `mod_offline`
/// section ends with `section`.
fn write_config(dir: &Path, name: &str, section: &str) {
    let text =
        format!("[general]\nhosts = [\"migrate.example\"]\n[modules.mod_offline]\n{section}");
    std::fs::write(dir.join(name), text).unwrap();
}

/// The `mod_offline` section of a RocksDB store at `path`.
fn rocksdb_section(path: &Path) -> String {
    format!(
        "backend = \"rocksdb\"\n[modules.mod_offline.rocksdb]\npath = {:?}\n",
        path.to_str().unwrap()
    )
}

/// The `mod_offline` section of an RDBMS store at `url`.
fn rdbms_section(url: &str) -> String {
    format!("backend = \"rdbms\"\n[modules.mod_offline.rdbms]\nurl = {url:?}\n")
}

/// A row of MongooseIM's `offline_message` for `username` of `migrate.example`, stamped a day
/// ago, expiring at `expire`, with `body`.
fn mongooseim_row(username: &str, expire: Option<i64>, body: &str) -> String {
    let expire = expire.map_or_else(|| "NULL".to_owned(), |e| e.to_string());
    format!(
        "({}, {expire}, 'migrate.example', '{username}', 'romeo@example.net/r', \
         '<message><body>{body}</body></message>')",
        now() - DAY
    )
}

/// Creates MongooseIM's `offline_message` in the database at `db_url` and inserts `rows`
/// (ids 1, 2, ... in their order).
fn mongooseim_table(runtime: &tokio::runtime::Runtime, db_url: &str, rows: &[String]) {
    runtime.block_on(async {
        let mut mongooseim = AsyncPgConnection::establish(db_url).await.unwrap();
        let ddl = mongooseim_schema(DatabaseKind::Postgres, "offline_message").unwrap();
        mongooseim.batch_execute(&ddl).await.unwrap();
        mongooseim
            .batch_execute(&format!(
                "INSERT INTO offline_message \
                 (timestamp, expire, server, username, from_jid, packet) VALUES {}",
                rows.join(", ")
            ))
            .await
            .unwrap();
    });
}

/// Runs `statement` (SQL, plpgsql blocks included) on the database at `db_url`.
fn execute(runtime: &tokio::runtime::Runtime, db_url: &str, statement: &str) {
    runtime.block_on(async {
        let mut conn = AsyncPgConnection::establish(db_url).await.unwrap();
        conn.batch_execute(statement).await.unwrap();
    });
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
    write_config(
        dir.path(),
        "target.toml",
        &rocksdb_section(&dir.path().join("store")),
    );
    let future = now() + 30 * DAY;
    let rows = [
        mongooseim_row("user000", None, "one"),
        mongooseim_row("user000", Some(future), "two"),
        mongooseim_row("user001", None, "three"),
    ];
    mongooseim_table(&runtime, &db_url, &rows);
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
    let first = import();
    assert!(
        first.contains("3 rows read up to id 3: 3 stored, 0 already there"),
        "{first}"
    );
    assert!(first.contains("Verified"), "{first}");
    let second = import();
    assert!(
        second.contains("3 rows read up to id 3: 0 stored, 3 already there"),
        "{second}"
    );
    assert!(second.contains("Verified"), "{second}");
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
    let config = |name: &str, section: String| write_config(dir.path(), name, &section);
    let rocks = |path: &str| {
        format!(
            "backend = \"rocksdb\"\n[modules.mod_offline.rocksdb]\npath = {:?}\nsync_writes = false\n",
            dir.path().join(path).to_str().unwrap()
        )
    };
    config("first.toml", rocks("first"));
    config("second.toml", rocks("second"));
    config("pg.toml", rdbms_section(&db_url));
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
    let output = offlinectl(
        dir.path(),
        &["migrate", "--from", "first.toml", "--to", "memory.toml"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("memory.toml"));
    // Nor can a store be migrated into itself.
    let output = offlinectl(
        dir.path(),
        &["migrate", "--from", "first.toml", "--to", "first.toml"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("the same store"));
    let dry = offlinectl(
        dir.path(),
        &[
            "migrate",
            "--from",
            "first.toml",
            "--to",
            "pg.toml",
            "--dry-run",
        ],
    );
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

#[test]
fn mongooseim_dry_run_reports_what_would_move_and_opens_no_target() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let runtime = runtime();
    let (_mongooseim, mongooseim_url) = Database::create(&runtime, &url);
    let (_target, target_url) = Database::create(&runtime, &url);
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "pg.toml", &rdbms_section(&target_url));
    let rocksdb_path = dir.path().join("store");
    write_config(dir.path(), "rocksdb.toml", &rocksdb_section(&rocksdb_path));
    write_config(dir.path(), "memory.toml", "backend = \"memory\"\n");
    // Ids 1-6 for user000 (unexpired), 7-8 expired, 9 refused (a space in the localpart),
    // 10-14 for user001 (unexpired).
    let (future, past) = (now() + 30 * DAY, now() - DAY / 2);
    let mut rows: Vec<String> = (0..6)
        .map(|i| mongooseim_row("user000", (i % 2 == 0).then_some(future), &format!("a{i}")))
        .collect();
    rows.push(mongooseim_row("user001", Some(past), "expired"));
    rows.push(mongooseim_row("user000", Some(past), "expired"));
    rows.push(mongooseim_row("bad user", None, "nobody"));
    rows.extend((0..5).map(|i| mongooseim_row("user001", None, &format!("b{i}"))));
    mongooseim_table(&runtime, &mongooseim_url, &rows);
    let expected = "Would import up to 11 messages of 2 users from MongooseIM (14 rows read up \
                    to id 14: 2 expired, 1 rejected; any the target already holds would be \
                    skipped)\n";

    let dry = |config: &str| {
        let args = [
            "migrate",
            "--from-mongooseim",
            &mongooseim_url,
            "--to",
            config,
            "--dry-run",
        ];
        offlinectl(dir.path(), &args)
    };
    let output = dry("pg.toml");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, expected);
    assert!(stderr.contains("row 9 left behind"), "{stderr}");
    // Nothing was created in the target's database, not even the store's tables; the
    // MongooseIM table keeps every row.
    execute(
        &runtime,
        &target_url,
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM information_schema.tables \
         WHERE table_schema = 'public') THEN RAISE EXCEPTION 'a dry run created tables'; \
         END IF; END $$",
    );
    execute(
        &runtime,
        &mongooseim_url,
        "DO $$ BEGIN IF (SELECT count(*) FROM offline_message) <> 14 THEN \
         RAISE EXCEPTION 'rows went missing'; END IF; END $$",
    );
    // Nor is a RocksDB target's directory created.
    let output = dry("rocksdb.toml");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    assert!(
        !rocksdb_path.exists(),
        "a dry run created the RocksDB store"
    );
    // The target's configuration is checked all the same.
    let output = dry("memory.toml");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("memory.toml"));

    // The real import moves what the dry run announced, and verifies it.
    let args = [
        "migrate",
        "--from-mongooseim",
        &mongooseim_url,
        "--to",
        "pg.toml",
    ];
    let report = offlinectl_ok(dir.path(), &args);
    assert!(
        report.contains(
            "14 rows read up to id 14: 11 stored, 0 already there, 2 expired, 1 rejected"
        ),
        "{report}"
    );
    assert!(report.contains("Verified"), "{report}");
    assert_eq!(held_in(&runtime, &dir.path().join("pg.toml")), 11);
}

#[test]
fn mongooseim_import_into_a_target_that_loses_a_message_fails_naming_the_user() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let runtime = runtime();
    let (_mongooseim, mongooseim_url) = Database::create(&runtime, &url);
    let (_target, target_url) = Database::create(&runtime, &url);
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "pg.toml", &rdbms_section(&target_url));
    let rows = [
        mongooseim_row("user000", None, "kept"),
        mongooseim_row("user000", None, "lost"),
        mongooseim_row("user000", None, "kept too"),
        mongooseim_row("user001", None, "kept"),
        mongooseim_row("user001", None, "kept too"),
    ];
    mongooseim_table(&runtime, &mongooseim_url, &rows);
    // The target's tables, then a trigger that silently drops every insert of a packet
    // saying "lost": the store believes it wrote what the database does not hold.
    runtime.block_on(async {
        store(&dir.path().join("pg.toml")).await;
    });
    execute(
        &runtime,
        &target_url,
        "CREATE FUNCTION lose_a_message() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.packet LIKE '%lost%' THEN RETURN NULL; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER lose_a_message BEFORE INSERT ON offline_store_message \
         FOR EACH ROW EXECUTE FUNCTION lose_a_message();",
    );

    let args = [
        "migrate",
        "--from-mongooseim",
        &mongooseim_url,
        "--to",
        "pg.toml",
    ];
    let output = offlinectl(dir.path(), &args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("5 rows read up to id 5"), "{stdout}");
    assert!(!stdout.contains("Verified"), "{stdout}");
    assert!(
        stderr.contains(
            "1 users hold a different number of messages in the target: \
             user000@migrate.example (3 in the source, 2 in the target)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("user001"), "{stderr}");

    // Once the target keeps what it is given, a second run brings the lost row over; a
    // message the target holds besides the import's is a difference too, as between two
    // stores.
    execute(
        &runtime,
        &target_url,
        "DROP TRIGGER lose_a_message ON offline_store_message",
    );
    runtime.block_on(async {
        let target = store(&dir.path().join("pg.toml")).await;
        let user001 = UserKey::from_normalized("migrate.example", "user001");
        let extra = NewMessage::new(
            now(),
            "tybalt@example.net/r",
            "user001@migrate.example",
            "<message/>",
        );
        target
            .write_messages(&user001, vec![extra], Quota::UNLIMITED, now())
            .await
            .unwrap();
    });
    let output = offlinectl(dir.path(), &args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("5 rows read up to id 5: 1 stored, 4 already there"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "1 users hold a different number of messages in the target: \
             user001@migrate.example (2 in the source, 3 in the target)"
        ),
        "{stderr}"
    );
}
