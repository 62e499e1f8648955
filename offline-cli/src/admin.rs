//! The admin commands: a user's queue (count, list, pop, export, remove) and a domain's
//! purges, with MongooseIM's command names as aliases.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use offline_module::PERSONAL_DATA_FIELDS;
use offline_module::jid::Jid;
use offline_module::offline_core::{Domain, StoredMessage, UserKey};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::now;
use crate::error::CliError;
use crate::output::{note, say};
use crate::target::Target;

/// Where the commands find their store.
#[derive(Debug, clap::Args)]
pub(crate) struct Where {
    /// A MongooseIM TOML file (default: ./offline.toml if it exists; without one, the
    /// embedded RocksDB store under ./data).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The host type serving the domain, when it is one of general.host_types rather than
    /// general.hosts.
    #[arg(long, value_name = "HOST_TYPE")]
    pub(crate) host_type: Option<String>,
}

/// A user's bare JID, as an argument.
#[derive(Clone, Debug)]
pub(crate) struct User {
    jid: Jid,
    key: UserKey,
}

/// Parses a JID that can own a queue (it has a user part).
pub(crate) fn user(text: &str) -> Result<User, String> {
    let jid = Jid::new(text).map_err(|e| format!("not a JID: {e}"))?;
    let key = UserKey::try_from(&jid).map_err(|e| e.to_string())?;
    Ok(User {
        jid: Jid::from(jid.to_bare()),
        key,
    })
}

/// Parses a domain.
pub(crate) fn domain(text: &str) -> Result<Domain, String> {
    Domain::new(text).map_err(|e| format!("not a domain: {e}"))
}

/// A command on one user's queue: `count`, `pop`, `export`.
#[derive(Debug, clap::Args)]
pub(crate) struct UserArgs {
    /// The user, as a bare JID.
    #[arg(value_parser = user)]
    jid: User,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    at: Where,
}

/// `list`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: offlinectl list alice@localhost --limit 20 --after 40")]
pub(crate) struct ListArgs {
    /// The user, as a bare JID.
    #[arg(value_parser = user)]
    jid: User,
    /// Start after this seq (the last one of the previous page).
    #[arg(long, value_name = "SEQ")]
    after: Option<u64>,
    /// Messages per page.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    limit: u64,
    /// Print JSON: an array of {"seq", "timestamp", "expire", "from", "to", "packet"}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    at: Where,
}

/// `delete-expired`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: offlinectl delete-expired --domain localhost \
                        (MongooseIM: mongooseimctl offline deleteExpiredMessages --domain localhost)")]
pub(crate) struct DeleteExpiredArgs {
    /// The domain whose expired messages are removed.
    #[arg(long, value_parser = domain)]
    domain: Domain,
    #[command(flatten)]
    at: Where,
}

/// `delete-old`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: offlinectl delete-old --domain localhost --days 30 \
                        (MongooseIM: mongooseimctl offline deleteOldMessages --domain localhost --days 30)"
)]
pub(crate) struct DeleteOldArgs {
    /// The domain whose old messages are removed.
    #[arg(long, value_parser = domain)]
    domain: Domain,
    /// Remove messages stored more than this many days ago (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
    #[command(flatten)]
    at: Where,
}

/// `remove-user`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: offlinectl remove-user alice@localhost --yes")]
pub(crate) struct RemoveUserArgs {
    /// The user, as a bare JID.
    #[arg(value_parser = user)]
    jid: User,
    /// Do not ask for confirmation (needed when not run on a terminal).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    at: Where,
}

/// `remove-domain`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: offlinectl remove-domain example.com --yes")]
pub(crate) struct RemoveDomainArgs {
    /// The domain whose every message is removed.
    #[arg(value_parser = domain)]
    domain: Domain,
    /// Do not ask for confirmation (needed when not run on a terminal).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    at: Where,
}

/// `offlinectl count`.
pub(crate) async fn count(args: UserArgs) -> Result<(), CliError> {
    let opened = open(&args.at, &args.jid.key.domain()).await?;
    let held = opened.store.count_messages(&args.jid.key).await?;
    if args.json {
        say(
            json!({"jid": args.jid.key.to_string(), "messages": held.messages, "bytes": held.bytes}),
        )
    } else {
        say(format_args!(
            "{}: {} messages, {} bytes",
            args.jid.key, held.messages, held.bytes
        ))
    }
}

/// `offlinectl list`.
pub(crate) async fn list(args: ListArgs) -> Result<(), CliError> {
    let opened = open(&args.at, &args.jid.key.domain()).await?;
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let now = now();
    let page = opened
        .store
        .fetch_messages(&args.jid.key, args.after, Some(limit), now)
        .await?;
    print_messages(&page, args.json)?;
    if let Some(last) = page.last().filter(|_| !args.json && page.len() == limit) {
        note(format!("more may follow: --after {}", last.seq));
    }
    Ok(())
}

/// `offlinectl pop`: the unexpired messages printed, then everything that was held removed
/// (the expired ones silently); if the output cannot be written, nothing is removed, and what
/// arrived meanwhile stays.
pub(crate) async fn pop(args: UserArgs) -> Result<(), CliError> {
    let opened = open(&args.at, &args.jid.key.domain()).await?;
    // At the earliest time nothing has expired: every message held.
    let mut held = opened
        .store
        .fetch_messages(&args.jid.key, None, None, i64::MIN)
        .await?;
    let seqs: Vec<u64> = held.iter().map(|m| m.seq).collect();
    let now = now();
    held.retain(|m| !m.message.is_expired(now));
    print_messages(&held, args.json)?;
    opened.store.remove_messages(&args.jid.key, &seqs).await?;
    Ok(())
}

/// `offlinectl delete-expired`.
pub(crate) async fn delete_expired(args: DeleteExpiredArgs) -> Result<(), CliError> {
    let opened = open(&args.at, &args.domain).await?;
    let removed = opened
        .module
        .remove_expired_messages(args.domain.as_str())
        .await?;
    say(format!("Removed {removed} messages"))
}

/// `offlinectl delete-old`.
pub(crate) async fn delete_old(args: DeleteOldArgs) -> Result<(), CliError> {
    let opened = open(&args.at, &args.domain).await?;
    let removed = opened
        .module
        .remove_old_messages(args.domain.as_str(), args.days)
        .await?;
    say(format!("Removed {removed} messages"))
}

/// `offlinectl remove-user`.
pub(crate) async fn remove_user(args: RemoveUserArgs) -> Result<(), CliError> {
    let opened = open(&args.at, &args.jid.key.domain()).await?;
    if !args.yes {
        let held = opened.store.count_messages(&args.jid.key).await?;
        confirm(&format!(
            "Remove the {} messages held for {}?",
            held.messages, args.jid.key
        ))?;
    }
    let removed = opened.module.remove_user(&args.jid.jid).await?;
    say(format!("Removed {removed} messages"))
}

/// `offlinectl remove-domain`.
pub(crate) async fn remove_domain(args: RemoveDomainArgs) -> Result<(), CliError> {
    let opened = open(&args.at, &args.domain).await?;
    if !args.yes {
        confirm(&format!(
            "Remove every message held for users of {}?",
            args.domain
        ))?;
    }
    let removed = opened.module.remove_domain(&args.domain).await?;
    say(format!("Removed {removed} messages"))
}

/// `offlinectl export`.
pub(crate) async fn export(args: UserArgs) -> Result<(), CliError> {
    let opened = open(&args.at, &args.jid.key.domain()).await?;
    let rows = opened.module.personal_data(&args.jid.jid).await?;
    if args.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| json!({"timestamp": r.timestamp, "from": r.from, "to": r.to, "packet": r.packet}))
            .collect();
        return say(serde_json::Value::Array(rows));
    }
    let stdout = std::io::stdout().lock();
    let mut csv = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(stdout);
    csv.write_record(PERSONAL_DATA_FIELDS)
        .map_err(std::io::Error::from)?;
    for row in &rows {
        csv.write_record([&row.timestamp, &row.from, &row.to, &row.packet])
            .map_err(std::io::Error::from)?;
    }
    csv.flush()?;
    Ok(())
}

async fn open(at: &Where, domain: &Domain) -> Result<crate::target::Opened, CliError> {
    Target::load(at.config.as_deref())?
        .open(domain, at.host_type.as_deref())
        .await
}

/// Asks `question` on the terminal; refuses without one (`--yes` is then needed).
fn confirm(question: &str) -> Result<(), CliError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::Usage(format!(
            "{question} Not on a terminal to ask: pass --yes to confirm"
        )));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CliError::Usage("not confirmed: nothing removed".into()))
    }
}

/// Prints messages one per line (seq, time, sender, packet) or as a JSON array.
fn print_messages(messages: &[StoredMessage], json: bool) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<_> = messages
            .iter()
            .map(|m| {
                json!({
                    "seq": m.seq,
                    "timestamp": m.message.timestamp,
                    "expire": m.message.expire,
                    "from": m.message.from,
                    "to": m.message.to,
                    "packet": m.message.packet,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
        out.flush()?;
        return Ok(());
    }
    for m in messages {
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            m.seq,
            stamp(m.message.timestamp),
            m.message.from,
            one_line(&m.message.packet)
        )?;
    }
    out.flush()?;
    Ok(())
}

/// A packet on one line of the text output: tabs, line breaks and backslashes escaped
/// (`--json` gives packets exactly).
fn one_line(packet: &str) -> String {
    packet
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// A time in µs as RFC 3339 UTC, or the number if it is out of range.
fn stamp(micros: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| micros.to_string())
}
