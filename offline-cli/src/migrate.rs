//! `offlinectl migrate`: every queue of one store copied into another, or MongooseIM's
//! `offline_message` table imported, safe to interrupt and run again.
//!
//! A message keeps its dedupe key; one without gets `offlinectl-migrate:<source>:<seq>` (the
//! source store's identity and the message's seq there), so a second run stores nothing twice
//! while the messages are held in the target, and two sources never mistake each other's
//! messages for their own. Each user's queue is copied in arrival order, a page at a time; the target numbers
//! the messages anew. At the end, the target must hold as many unexpired messages for each user
//! as were read from the source for them.
//!
//! From MongooseIM, `offline_diesel`'s importer reads and judges the rows; a dry run reads and
//! judges them with the same code and writes nothing. At the end, every user's rows the import
//! handed over (neither expired nor refused) are counted against what the target holds, as
//! between two stores.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use offline_diesel::import::{ImportError, ImportOptions, ImportReport, MongooseImport};
use offline_module::offline_core::{OfflineBackend, Quota, UserKey};
use offline_module::{OfflineConfig, StorageConfig, open_backend};
use sha2::{Digest, Sha256};

use crate::clock::now;
use crate::error::CliError;
use crate::output::{note, say};
use crate::target::usable;

/// Messages read and written per call.
const PAGE: usize = 500;
/// Users listed per call.
const USERS_PAGE: usize = 1000;
/// The prefix of the dedupe key given to a copied message that had none.
pub(crate) const DEDUPE_PREFIX: &str = "offlinectl-migrate:";

/// `migrate`'s options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    offlinectl migrate --from rocksdb.toml --to postgres.toml --dry-run\n  \
    offlinectl migrate --from rocksdb.toml --to postgres.toml\n  \
    offlinectl migrate --from-mongooseim postgres://mongooseim@db/mongooseim --to postgres.toml --dry-run\n  \
    offlinectl migrate --from-mongooseim postgres://mongooseim@db/mongooseim --to postgres.toml")]
pub(crate) struct MigrateArgs {
    /// A MongooseIM TOML file naming the store to copy from.
    #[arg(long, value_name = "FILE", required_unless_present = "from_mongooseim")]
    from: Option<PathBuf>,
    /// A MongooseIM database (postgres:// or mysql:// URL) whose offline_message table is
    /// imported instead.
    #[arg(long, value_name = "URL", conflicts_with = "from")]
    from_mongooseim: Option<String>,
    /// A MongooseIM TOML file naming the store to copy into.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Count what would be copied (or imported), and write nothing: the target is not
    /// opened.
    #[arg(long)]
    dry_run: bool,
}

/// `offlinectl migrate`.
pub(crate) async fn run(args: MigrateArgs) -> Result<(), CliError> {
    let to = storage(&args.to)?;
    usable(&to, &args.to, false)?;
    if let Some(url) = &args.from_mongooseim {
        return import(url, &to, args.dry_run).await;
    }
    let Some(from) = &args.from else {
        return Err(CliError::Usage(
            "--from or --from-mongooseim is needed".into(),
        ));
    };
    let from_storage = storage(from)?;
    if from_storage == to {
        return Err(CliError::Usage(format!(
            "{} and {} name the same store: nothing to migrate",
            from.display(),
            args.to.display()
        )));
    }
    usable(&from_storage, from, true)?;
    let source = open_backend(&from_storage).await?;
    let source_id = identity(&from_storage);
    let now = now();
    let users = all_users(source.as_ref()).await?;
    let mut total = 0;
    for user in &users {
        total += source.count_messages(user).await?.messages;
    }
    if args.dry_run {
        return say(format!(
            "Would copy up to {total} messages of {} users (expired ones are left behind)",
            users.len()
        ));
    }
    let target = open_backend(&to).await?;
    let progress = Progress::new(total);
    let (mut stored, mut already) = (0, 0);
    // Each user's unexpired messages read from the source: what the target must hold.
    let mut held = Vec::with_capacity(users.len());
    for user in &users {
        let (mut after, mut read) = (None, 0);
        loop {
            let page = source.fetch_messages(user, after, Some(PAGE), now).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            let count = page.len() as u64;
            read += count;
            let batch = page
                .into_iter()
                .map(|stored| {
                    let mut message = stored.message;
                    if message.dedupe_key.is_none() {
                        message.dedupe_key =
                            Some(format!("{DEDUPE_PREFIX}{source_id}:{}", stored.seq));
                    }
                    message
                })
                .collect();
            let report = target
                .write_messages(user, batch, Quota::UNLIMITED, now)
                .await?;
            stored += report.stored;
            already += report.duplicates;
            progress.advance(count);
        }
        held.push((user, read));
    }
    progress.finish();
    say(format!(
        "Copied {stored} messages of {} users ({already} were already there)",
        users.len()
    ))?;
    verify(target.as_ref(), held, now).await
}

/// Imports MongooseIM's table at `url` into the store `to` names, then checks that the store
/// holds what was handed over; with `dry_run`, reads and judges the table the same way and
/// opens nothing of `to`.
async fn import(url: &str, to: &StorageConfig, dry_run: bool) -> Result<(), CliError> {
    let shown = redacted(url);
    let mut source = MongooseImport::connect(url)
        .await
        .map_err(|e| CliError::Failed(format!("{shown}: {e}")))?;
    let options = ImportOptions::default();
    let stopped = |e: ImportError| {
        let again = if dry_run {
            "nothing was written"
        } else {
            "run it again: what it imported is skipped"
        };
        CliError::Failed(format!(
            "{shown}: the import stopped after id {} ({again}): {}",
            e.resume_after, e.source
        ))
    };
    let progress = Progress::new(0);
    let read = |report: &ImportReport| progress.set(report.rows);
    let target = if dry_run {
        None
    } else {
        Some(open_backend(to).await?)
    };
    let report = match &target {
        Some(target) => source.run(target.as_ref(), &options, read).await,
        None => source.dry_run(&options, read).await,
    }
    .map_err(stopped)?;
    progress.finish();
    for rejected in &report.rejected {
        note(format!(
            "row {} left behind: {}",
            rejected.id, rejected.reason
        ));
    }
    let Some(target) = target else {
        return say(format!(
            "Would import up to {} messages of {} users from MongooseIM ({} rows read up to id \
             {}: {} expired, {} rejected; any the target already holds would be skipped)",
            report.accepted.values().sum::<u64>(),
            report.accepted.len(),
            report.rows,
            report.last_id,
            report.expired,
            report.rejected.len()
        ));
    };
    say(format!("Imported from MongooseIM: {report}"))?;
    let accepted = report.accepted.iter().map(|(user, rows)| (user, *rows));
    verify(target.as_ref(), accepted, options.now).await
}

/// The store `config` names: the one every configured host shares.
fn storage(config: &Path) -> Result<StorageConfig, CliError> {
    let parsed = OfflineConfig::from_file(config).map_err(|source| CliError::Config {
        path: config.to_path_buf(),
        source,
    })?;
    let mut storages = parsed
        .hosts
        .iter()
        .map(|h| h.as_str().to_owned())
        .chain(parsed.host_types.iter().cloned())
        .filter_map(|host| parsed.for_host(&host).storage.clone());
    let Some(storage) = storages.next() else {
        return Err(CliError::Usage(format!(
            "{}: no host with mod_offline enabled",
            config.display()
        )));
    };
    if storages.any(|other| other != storage) {
        return Err(CliError::Usage(format!(
            "{}: host types configure different stores; migrate from a file that names one",
            config.display()
        )));
    }
    Ok(storage)
}

/// A short name of a store that stays the same from run to run: of its directory or URL.
fn identity(storage: &StorageConfig) -> String {
    let name = match storage {
        StorageConfig::RocksDb(settings) => std::fs::canonicalize(&settings.path)
            .unwrap_or_else(|_| settings.path.clone())
            .display()
            .to_string(),
        StorageConfig::Rdbms(settings) => settings.connection.url(),
        StorageConfig::Memory => String::new(),
    };
    let digest = Sha256::digest(name.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// A database URL without its password, to show.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Every user holding messages in `store`.
async fn all_users(store: &dyn OfflineBackend) -> Result<Vec<UserKey>, CliError> {
    let mut users = Vec::new();
    loop {
        let page = store.list_users(None, users.last(), USERS_PAGE).await?;
        if page.is_empty() {
            return Ok(users);
        }
        users.extend(page);
    }
}

/// Checks a migration: `expected` pairs each user with the unexpired messages the source
/// holds for them (or the rows an import handed over), and `target` must hold as many
/// unexpired messages for that user at `now`, no fewer and no more (a message the target
/// held before counts too). A difference fails the command and names the users.
async fn verify<'a>(
    target: &dyn OfflineBackend,
    expected: impl IntoIterator<Item = (&'a UserKey, u64)>,
    now: i64,
) -> Result<(), CliError> {
    let mut mismatched = Vec::new();
    for (user, held) in expected {
        let copied = unexpired(target, user, now).await?;
        if held != copied {
            mismatched.push(format!(
                "{user} ({held} in the source, {copied} in the target)"
            ));
        }
    }
    if mismatched.is_empty() {
        return say("Verified: every user holds as many messages in the target as in the source");
    }
    let shown: Vec<String> = mismatched.iter().take(5).cloned().collect();
    Err(CliError::Failed(format!(
        "{} users hold a different number of messages in the target: {}",
        mismatched.len(),
        shown.join(", ")
    )))
}

/// How many unexpired messages `store` holds for `user`.
async fn unexpired(store: &dyn OfflineBackend, user: &UserKey, now: i64) -> Result<u64, CliError> {
    let (mut count, mut after) = (0, None);
    loop {
        let page = store.fetch_messages(user, after, Some(PAGE), now).await?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        after = Some(last.seq);
        count += page.len() as u64;
    }
}

/// A progress bar on a terminal; a line per page elsewhere (logs, pipes).
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: std::cell::Cell<u64>,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            // A copy knows how many messages there are; an import reads rows until the end.
            let (bar, template) = if total > 0 {
                (
                    ProgressBar::new(total),
                    "[{bar:30}] {pos}/{len} messages, {per_sec}, {elapsed_precise}, eta {eta}",
                )
            } else {
                (
                    ProgressBar::new_spinner(),
                    "{spinner} {pos} rows read, {per_sec}, {elapsed_precise}",
                )
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Self {
            bar,
            total,
            done: 0.into(),
        }
    }

    fn advance(&self, count: u64) {
        self.set(self.done.get() + count);
    }

    fn set(&self, done: u64) {
        self.done.set(done);
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None if self.total > 0 => note(format!("copied {done} of {} messages", self.total)),
            None => note(format!("read {done} rows")),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
            // The bar stays, and what follows starts on a line of its own.
            note("");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("postgres://admin:s3cret@db:5432/mim"),
            "postgres://admin:***@db:5432/mim"
        );
        assert_eq!(
            redacted("postgres://admin@db/mim"),
            "postgres://admin@db/mim"
        );
        assert_eq!(redacted("mysql://db/mim"), "mysql://db/mim");
    }
}
