//! The importer against MongooseIM's own `offline_message` table, created with MongooseIM's
//! DDL and filled with plain SQL, on PostgreSQL and on MariaDB: rows come over in order with
//! every field, the recipient rebuilt from `username@server`; expired and invalid rows are
//! reported; a second run stores nothing twice; a run resumes after an id.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{MYSQL, POSTGRES, connect, required, unavailable};
use diesel_async::{
    AsyncConnection, AsyncMysqlConnection, AsyncPgConnection, SimpleAsyncConnection,
};
use offline_core::{OfflineBackend, UserKey};
use offline_diesel::DatabaseKind;
use offline_diesel::import::{DEDUPE_PREFIX, ImportOptions, MongooseImport, mongooseim_schema};

/// MongooseIM's table on `kind`, under a name of the test's own.
fn ddl(kind: DatabaseKind, table: &str) -> String {
    mongooseim_schema(kind, table).unwrap()
}

/// The rows, as MongooseIM writes them: microsecond stamps, bare usernames and servers.
fn rows(table: &str, domain: &str, bytes: &str) -> String {
    let future = 4_000_000_000_000_000_i64;
    format!(
        "INSERT INTO {table} (timestamp, expire, server, username, from_jid, packet, permanent_fields)
         VALUES
         (1700000000000001, NULL, '{domain}', 'juliet', 'romeo@example.net/orchard',
          '<message><body>one</body></message>', NULL),
         (1700000000000002, {future}, '{domain}', 'nurse', 'romeo@example.net/orchard',
          '<message><body>for the nurse</body></message>', {bytes}),
         (1700000000000003, 1700000000000004, '{domain}', 'juliet', 'romeo@example.net/orchard',
          '<message><body>expired</body></message>', NULL),
         (1700000000000005, NULL, '{domain}', 'bad user', 'romeo@example.net/orchard',
          '<message><body>nobody</body></message>', NULL),
         (1700000000000006, NULL, '{domain}', 'Juliet', 'tybalt@example.net/street',
          '<message><body>two, ünïcödé</body></message>', NULL);"
    )
}

async fn import_and_check(url: &str, table: &str, domain: &str) {
    let target = connect(url).await.unwrap();
    let juliet: UserKey = format!("juliet@{domain}").parse().unwrap();
    let nurse: UserKey = format!("nurse@{domain}").parse().unwrap();
    let mut source = MongooseImport::connect(url).await.unwrap();
    let options = ImportOptions {
        table: table.to_owned(),
        page_size: 2,
        now: 1_800_000_000_000_000,
        ..ImportOptions::default()
    };
    let mut pages = 0;
    let report = source.run(&target, &options, |_| pages += 1).await.unwrap();
    assert_eq!(pages, 3, "5 rows in pages of 2");
    assert_eq!(
        (report.rows, report.stored, report.expired),
        (5, 3, 1),
        "{report}"
    );
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert!(report.rejected[0].reason.contains("bad user"), "{report:?}");

    let held = target.fetch_messages(&juliet, None, None, 0).await.unwrap();
    let packets: Vec<&str> = held.iter().map(|m| m.message.packet.as_str()).collect();
    assert_eq!(
        packets,
        [
            "<message><body>one</body></message>",
            "<message><body>two, ünïcödé</body></message>"
        ],
        "Juliet's rows in id order, `Juliet` normalised to her queue"
    );
    let first = &held[0].message;
    assert_eq!(first.timestamp, 1_700_000_000_000_001);
    assert_eq!(first.from, "romeo@example.net/orchard");
    assert_eq!(first.to, format!("juliet@{domain}"));
    assert!(
        first
            .dedupe_key
            .as_deref()
            .is_some_and(|k| k.starts_with(DEDUPE_PREFIX))
    );
    let nurse_held = target.fetch_messages(&nurse, None, None, 0).await.unwrap();
    assert_eq!(nurse_held.len(), 1);
    assert_eq!(nurse_held[0].message.expire, Some(4_000_000_000_000_000));
    assert_eq!(
        nurse_held[0].message.permanent_fields.as_deref(),
        Some(&[0xde, 0xad, 0x00, 0xbe][..])
    );

    let again = source.run(&target, &options, |_| {}).await.unwrap();
    assert_eq!(
        (again.stored, again.duplicates),
        (0, 3),
        "a second run stores nothing twice"
    );

    let resumed = source
        .run(
            &target,
            &ImportOptions {
                after_id: report.last_id - 1,
                ..options.clone()
            },
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        resumed.rows, 1,
        "a run after an id reads only what follows it"
    );

    for user in [&juliet, &nurse] {
        target.remove_user(user).await.unwrap();
    }
}

fn names() -> (String, String) {
    let tag = fastrand::u32(..);
    (
        format!("offline_message_t{tag:08x}"),
        format!("import{tag:08x}.example.com"),
    )
}

/// Creates MongooseIM's table on the database `variable` names with `ddl`, fills it (blobs
/// written as `blob` spells them), imports it and checks the result, then drops the table.
fn import_from<C>(variable: &str, kind: DatabaseKind, blob: &str)
where
    C: AsyncConnection + SimpleAsyncConnection,
{
    if let Some(reason) = unavailable(variable) {
        eprintln!("skipped: {reason}");
        return;
    }
    offline_testkit::runtime().block_on(async {
        let url = required(variable).unwrap();
        let (table, domain) = names();
        let mut admin = C::establish(&url).await.unwrap();
        admin.batch_execute(&ddl(kind, &table)).await.unwrap();
        admin
            .batch_execute(&rows(&table, &domain, blob))
            .await
            .unwrap();
        import_and_check(&url, &table, &domain).await;
        admin
            .batch_execute(&format!("DROP TABLE {table}"))
            .await
            .unwrap();
    });
}

#[test]
fn imports_mongooseim_postgres_rows() {
    import_from::<AsyncPgConnection>(POSTGRES, DatabaseKind::Postgres, "'\\xdead00be'::bytea");
}

#[test]
fn imports_mongooseim_mysql_rows() {
    import_from::<AsyncMysqlConnection>(MYSQL, DatabaseKind::Mysql, "X'dead00be'");
}
