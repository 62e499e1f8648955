//! Moving from MongooseIM: read its `offline_message` table (PostgreSQL or MySQL/MariaDB)
//! page by page, in id order, and write every row through the contract into any backend.
//!
//! Each imported message carries the dedupe key `mongooseim:<id>`, so running the import
//! again (after an interruption, or to pick up rows written since) stores nothing twice while
//! the messages are held. The recipient is rebuilt from `username@server` and normalised as
//! every address is; MongooseIM's row has no `to`, so `to` is that bare JID. Rows the
//! contract refuses (an address that is not a JID, an empty or oversized packet) are
//! reported with their id and left where they are; rows already expired are counted and
//! skipped. The source table is only read.
//!
//! [`MongooseImport::dry_run`] reads and judges the rows as [`MongooseImport::run`] does, by
//! the same code, and writes nothing; both report, per recipient, the rows that are (or would
//! be) handed to the target ([`ImportReport::accepted`]), so a caller can check afterwards
//! that the target holds them.
//!
//! ```no_run
//! use offline_diesel::import::{ImportOptions, MongooseImport};
//! use offline_diesel::{DieselBackend, DieselConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let target = DieselBackend::connect(DieselConfig::new("postgres://offline@db/xmpp")).await?;
//! let mut source = MongooseImport::connect("postgres://mongooseim@db/mongooseim").await?;
//! let report = source
//!     .run(&target, &ImportOptions::default(), |progress| eprintln!("{progress}"))
//!     .await?;
//! println!("{report}");
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use offline_core::{NewMessage, OfflineBackend, OfflineError, Quota, UserKey};

use crate::error::OpenError;
use crate::{DatabaseKind, DieselConfig};

/// The prefix of the dedupe key an imported message carries, before MongooseIM's id.
pub const DEDUPE_PREFIX: &str = "mongooseim:";

/// How to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The table to read (default `offline_message`), optionally schema-qualified.
    pub table: String,
    /// Rows read per query (default 500).
    pub page_size: usize,
    /// Start after this id (default 0: from the beginning); an interrupted run says where
    /// to resume.
    pub after_id: i64,
    /// The instant rows are judged expired at, in microseconds since the Unix epoch
    /// (default: now).
    pub now: i64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            table: "offline_message".into(),
            page_size: 500,
            after_id: 0,
            now: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        }
    }
}

/// What an import did, or what a dry run found it would do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows read.
    pub rows: u64,
    /// Messages stored.
    pub stored: u64,
    /// Rows already stored by an earlier run.
    pub duplicates: u64,
    /// Rows already expired, not stored.
    pub expired: u64,
    /// Rows the contract refuses, with why; they are not stored.
    pub rejected: Vec<Rejected>,
    /// The rows read and handed to the target (neither expired nor refused), counted per
    /// recipient: what the target holds for each user afterwards, from this run. A dry run
    /// counts what it would hand over.
    pub accepted: BTreeMap<UserKey, u64>,
    /// The last id read: where a later run may resume.
    pub last_id: i64,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rows read up to id {}: {} stored, {} already there, {} expired, {} rejected",
            self.rows,
            self.last_id,
            self.stored,
            self.duplicates,
            self.expired,
            self.rejected.len()
        )
    }
}

/// A row left behind, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// MongooseIM's id of the row.
    pub id: i64,
    /// Why the row cannot be stored.
    pub reason: String,
}

/// An import stopped before the end.
#[derive(Debug, thiserror::Error)]
#[error("the import stopped; run it again with after_id = {resume_after} to go on")]
pub struct ImportError {
    /// Every row up to this id was imported (or reported).
    pub resume_after: i64,
    /// Why it stopped.
    #[source]
    pub source: OfflineError,
}

/// A connection to a MongooseIM database, to import its offline messages from.
pub struct MongooseImport {
    source: Source,
}

impl fmt::Debug for MongooseImport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongooseImport").finish_non_exhaustive()
    }
}

enum Source {
    #[cfg(feature = "postgres")]
    Postgres(Box<diesel_async::AsyncPgConnection>),
    #[cfg(feature = "mysql")]
    Mysql(Box<diesel_async::AsyncMysqlConnection>),
}

/// One row of MongooseIM's table.
#[derive(QueryableByName)]
struct MongooseRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    stamp: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    expire: Option<i64>,
    #[diesel(sql_type = Text)]
    server: String,
    #[diesel(sql_type = Text)]
    username: String,
    #[diesel(sql_type = Text)]
    from_jid: String,
    #[diesel(sql_type = Binary)]
    packet: Vec<u8>,
    #[diesel(sql_type = Nullable<Binary>)]
    permanent_fields: Option<Vec<u8>>,
}

impl MongooseImport {
    /// Connects to the MongooseIM database at `url` (PostgreSQL or MySQL/MariaDB).
    pub async fn connect(url: &str) -> Result<Self, OpenError> {
        let kind = DieselConfig::new(url).kind()?;
        let source = match kind {
            #[cfg(feature = "postgres")]
            DatabaseKind::Postgres => {
                Source::Postgres(Box::new(crate::postgres::establish(url).await?))
            }
            #[cfg(feature = "mysql")]
            DatabaseKind::Mysql => Source::Mysql(Box::new(
                crate::mysql::establish(&crate::mysql::driver_url(url)).await?,
            )),
            DatabaseKind::Sqlite => {
                return Err(OpenError::InvalidUrl {
                    reason: "MongooseIM keeps offline messages in PostgreSQL or MySQL, not SQLite"
                        .into(),
                });
            }
            #[allow(unreachable_patterns)]
            kind => {
                return Err(OpenError::NotBuilt {
                    dialect: kind.name(),
                    feature: kind.name(),
                });
            }
        };
        Ok(Self { source })
    }

    /// Imports every row after `options.after_id` into `target`, calling `progress` after
    /// each page.
    pub async fn run(
        &mut self,
        target: &dyn OfflineBackend,
        options: &ImportOptions,
        progress: impl FnMut(&ImportReport),
    ) -> Result<ImportReport, ImportError> {
        self.read(Some(target), options, progress).await
    }

    /// Reads and judges every row after `options.after_id` as [`run`](Self::run) does, and
    /// writes nothing anywhere, calling `progress` after each page. The report counts the
    /// rows read, expired and refused, and in [`accepted`](ImportReport::accepted) what
    /// `run` would hand to a target; `stored` and `duplicates` stay 0, as without a target
    /// nobody can tell which rows it holds already.
    pub async fn dry_run(
        &mut self,
        options: &ImportOptions,
        progress: impl FnMut(&ImportReport),
    ) -> Result<ImportReport, ImportError> {
        self.read(None, options, progress).await
    }

    /// Reads the rows page by page, judges each, and writes the accepted ones into `target`
    /// if there is one.
    async fn read(
        &mut self,
        target: Option<&dyn OfflineBackend>,
        options: &ImportOptions,
        mut progress: impl FnMut(&ImportReport),
    ) -> Result<ImportReport, ImportError> {
        let mut report = ImportReport {
            last_id: options.after_id,
            ..ImportReport::default()
        };
        let stop = |resume_after, source| ImportError {
            resume_after,
            source,
        };
        check_table(&options.table).map_err(|e| stop(report.last_id, e))?;
        let page_size = i64::try_from(options.page_size.max(1)).unwrap_or(i64::MAX);
        loop {
            let done = report.last_id;
            let rows = self
                .page(&options.table, done, page_size)
                .await
                .map_err(|e| stop(done, e))?;
            let Some(last) = rows.last().map(|row| row.id) else {
                return Ok(report);
            };
            let per_user = judge_page(rows, options.now, &mut report);
            if let Some(target) = target {
                write_page(target, per_user, options.now, &mut report)
                    .await
                    .map_err(|e| stop(done, e))?;
            }
            report.last_id = last;
            progress(&report);
        }
    }

    async fn page(
        &mut self,
        table: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MongooseRow>, OfflineError> {
        use diesel_async::RunQueryDsl;
        let unavailable =
            |e: diesel::result::Error| OfflineError::unavailable(crate::error::BACKEND, e);
        match &mut self.source {
            #[cfg(feature = "postgres")]
            Source::Postgres(conn) => diesel::sql_query(format!(
                "SELECT CAST(id AS BIGINT) AS id, CAST(\"timestamp\" AS BIGINT) AS stamp, \
                 CAST(expire AS BIGINT) AS expire, server, username, from_jid, \
                 convert_to(packet, 'UTF8') AS packet, permanent_fields \
                 FROM {table} WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .bind::<BigInt, _>(after)
            .bind::<BigInt, _>(limit)
            .load(conn)
            .await
            .map_err(unavailable),
            #[cfg(feature = "mysql")]
            Source::Mysql(conn) => diesel::sql_query(format!(
                "SELECT CAST(id AS SIGNED) AS id, CAST(`timestamp` AS SIGNED) AS stamp, \
                 CAST(expire AS SIGNED) AS expire, server, username, from_jid, packet, \
                 permanent_fields FROM {table} WHERE id > ? ORDER BY id LIMIT ?"
            ))
            .bind::<BigInt, _>(after)
            .bind::<BigInt, _>(limit)
            .load(conn)
            .await
            .map_err(unavailable),
        }
    }
}

/// MongooseIM's `offline_message` table as its schema files create it (`priv/pg.sql`,
/// `priv/mysql.sql`), named `table`, with its `(server, username, id)` index: for tests,
/// benchmarks and rehearsals of a move that need MongooseIM's own table beside the store's.
/// SQLite, which MongooseIM does not run on, and a table name that is not an identifier are
/// `InvalidInput`.
///
/// ```
/// use offline_diesel::DatabaseKind;
/// use offline_diesel::import::mongooseim_schema;
///
/// let ddl = mongooseim_schema(DatabaseKind::Postgres, "offline_message").unwrap();
/// assert!(ddl.starts_with("CREATE TABLE offline_message ("));
/// assert!(mongooseim_schema(DatabaseKind::Postgres, "x; DROP TABLE y").is_err());
/// ```
pub fn mongooseim_schema(kind: DatabaseKind, table: &str) -> Result<String, OfflineError> {
    check_table(table)?;
    let index = format!("i_{}_su", table.rsplit('.').next().unwrap_or(table));
    match kind {
        DatabaseKind::Postgres => Ok(format!(
            "CREATE TABLE {table} (
                id SERIAL UNIQUE PRIMARY KEY,
                timestamp BIGINT NOT NULL,
                expire BIGINT,
                server varchar(250) NOT NULL,
                username varchar(250) NOT NULL,
                from_jid varchar(250) NOT NULL,
                packet text NOT NULL,
                permanent_fields bytea
            );
            CREATE INDEX {index} ON {table} USING btree (server, username, id);"
        )),
        DatabaseKind::Mysql => Ok(format!(
            "CREATE TABLE {table} (
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                timestamp BIGINT UNSIGNED NOT NULL,
                expire BIGINT UNSIGNED,
                server varchar(250) NOT NULL,
                username varchar(250) NOT NULL,
                from_jid varchar(250) NOT NULL,
                packet mediumblob NOT NULL,
                permanent_fields mediumblob
            ) ENGINE=InnoDB CHARACTER SET utf8mb4 ROW_FORMAT=DYNAMIC;
            CREATE INDEX {index} USING BTREE ON {table}(server, username, id);"
        )),
        DatabaseKind::Sqlite => Err(OfflineError::invalid_input(
            "MongooseIM has no SQLite schema",
        )),
    }
}

/// A table name: letters, digits and `_`, optionally after a schema and a dot.
fn check_table(table: &str) -> Result<(), OfflineError> {
    let valid = !table.is_empty()
        && table.split('.').count() <= 2
        && table.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !part.starts_with(|c: char| c.is_ascii_digit())
        });
    if valid {
        Ok(())
    } else {
        Err(OfflineError::invalid_input(format!(
            "`{table}` is not a table name (letters, digits and _, optionally schema.table)"
        )))
    }
}

/// Judges one page's rows, the only place that does (for a run and a dry run alike): counts
/// them, records the refused ones and counts the expired ones in `report`, and returns the
/// messages to hand over, grouped by recipient, each user's rows in id order, counted in
/// `report.accepted`.
fn judge_page(
    rows: Vec<MongooseRow>,
    now: i64,
    report: &mut ImportReport,
) -> BTreeMap<UserKey, Vec<NewMessage>> {
    report.rows += rows.len() as u64;
    let mut per_user: BTreeMap<UserKey, Vec<NewMessage>> = BTreeMap::new();
    for row in rows {
        let id = row.id;
        match message_of(row) {
            Ok((_, message)) if message.is_expired(now) => report.expired += 1,
            Ok((user, message)) => {
                *report.accepted.entry(user.clone()).or_default() += 1;
                per_user.entry(user).or_default().push(message);
            }
            Err(reason) => report.rejected.push(Rejected { id, reason }),
        }
    }
    per_user
}

/// Writes one page's judged messages, a batch per recipient.
async fn write_page(
    target: &dyn OfflineBackend,
    per_user: BTreeMap<UserKey, Vec<NewMessage>>,
    now: i64,
    report: &mut ImportReport,
) -> Result<(), OfflineError> {
    for (user, messages) in per_user {
        let written = target
            .write_messages(&user, messages, Quota::UNLIMITED, now)
            .await?;
        report.stored += written.stored;
        report.duplicates += written.duplicates;
    }
    Ok(())
}

/// The recipient and the message a row holds, or why the contract refuses it.
fn message_of(row: MongooseRow) -> Result<(UserKey, NewMessage), String> {
    let to = format!("{}@{}", row.username, row.server);
    let user: UserKey = to
        .parse()
        .map_err(|e: OfflineError| format!("recipient {to:?}: {e}"))?;
    let packet = String::from_utf8(row.packet).map_err(|_| "packet is not UTF-8".to_owned())?;
    let message = NewMessage {
        timestamp: row.stamp,
        expire: row.expire,
        from: row.from_jid,
        to,
        packet,
        dedupe_key: Some(format!("{DEDUPE_PREFIX}{}", row.id)),
        permanent_fields: row.permanent_fields,
    };
    message.validate().map_err(|e| e.to_string())?;
    Ok((user, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, username: &str, expire: Option<i64>, packet: &str) -> MongooseRow {
        MongooseRow {
            id,
            stamp: 10,
            expire,
            server: "example.com".into(),
            username: username.into(),
            from_jid: "romeo@example.net/r".into(),
            packet: packet.as_bytes().to_vec(),
            permanent_fields: None,
        }
    }

    #[test]
    fn a_page_is_judged_into_accepted_expired_and_refused_rows() {
        let rows = vec![
            row(1, "juliet", None, "<message/>"),
            row(2, "nurse", Some(100), "<message/>"),
            row(3, "Juliet", Some(101), "<message/>"),
            row(4, "juliet", Some(99), "<message/>"),
            row(5, "bad user", None, "<message/>"),
            row(6, "nurse", None, ""),
        ];
        let mut report = ImportReport::default();
        let per_user = judge_page(rows, 100, &mut report);
        let juliet = UserKey::from_normalized("example.com", "juliet");
        let ids = |user: &UserKey| -> Vec<Option<String>> {
            per_user[user]
                .iter()
                .map(|m| m.dedupe_key.clone())
                .collect()
        };
        assert_eq!(
            ids(&juliet),
            [
                Some("mongooseim:1".to_owned()),
                Some("mongooseim:3".to_owned())
            ]
        );
        assert_eq!(per_user.len(), 1, "the nurse's rows expired or are refused");
        assert_eq!((report.rows, report.expired), (6, 2));
        assert_eq!(report.accepted, BTreeMap::from([(juliet, 2)]));
        let refused: Vec<i64> = report.rejected.iter().map(|r| r.id).collect();
        assert_eq!(refused, [5, 6]);
    }

    #[test]
    fn table_names_are_identifiers() {
        for good in ["offline_message", "mim.offline_message", "t2"] {
            assert!(check_table(good).is_ok(), "{good}");
        }
        for bad in ["", "a;drop", "a.b.c", "2t", "x y", "a.", "\"q\""] {
            assert!(check_table(bad).is_err(), "{bad}");
        }
    }
}
