//! `offlinectl`: the operator's tool for the offline store.
//!
//! Admin commands act on the store a MongooseIM TOML configures (`--config`, default
//! `./offline.toml`; without one, the embedded RocksDB store under `./data`):
//!
//! ```text
//! offlinectl count alice@localhost
//! offlinectl list alice@localhost --json
//! offlinectl pop alice@localhost
//! offlinectl delete-expired --domain localhost          # deleteExpiredMessages
//! offlinectl delete-old --domain localhost --days 30    # deleteOldMessages
//! offlinectl remove-user alice@localhost --yes
//! offlinectl remove-domain localhost --yes
//! offlinectl export alice@localhost > alice.csv
//! offlinectl migrate --from rocksdb.toml --to postgres.toml
//! offlinectl serve-metrics --listen 127.0.0.1:9125 --purge-expired
//! ```
//!
//! Exit codes: 0 success, 2 usage error, 1 failure; an error is one line on stderr.
//!
//! `offlinectl bench` runs a mixed workload (writes, and a pop every few operations) against a
//! store and the baseline that does the same work without our code, at several client counts,
//! and prints throughput, p50 and p99 latency and the ratio to the baseline:
//!
//! ```text
//! offlinectl bench                          # RocksDB in a temporary directory, no server
//! offlinectl bench --backend memory
//! offlinectl bench --config offline.toml    # the store a MongooseIM TOML configures
//! ```
// A command-line tool prints its results.
#![allow(clippy::print_stdout)]

mod admin;
mod bench;
mod clock;
mod error;
mod metrics;
mod migrate;
mod output;
mod report;
mod target;

use std::process::ExitCode;

use clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
use clap::{CommandFactory, Parser, Subcommand};

use crate::error::CliError;

/// The operator's tool for the offline message store.
#[derive(Debug, Parser)]
#[command(
    name = "offlinectl",
    version,
    about,
    after_help = "Example: offlinectl count alice@localhost --config offline.toml\n\
                  Every command's --help has its own (offlinectl help migrate)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Counts the messages held for a user, and their bytes (JSON: {"jid", "messages",
    /// "bytes"}).
    #[command(after_help = "Example: offlinectl count alice@localhost --config offline.toml")]
    Count(admin::UserArgs),
    /// Lists a user's messages without removing them, a page at a time.
    List(admin::ListArgs),
    /// Takes a user's messages out of the store and prints them as `list` does.
    #[command(after_help = "Example: offlinectl pop alice@localhost --json")]
    Pop(admin::UserArgs),
    /// Removes a domain's expired messages and prints how many.
    #[command(alias = "deleteExpiredMessages")]
    DeleteExpired(admin::DeleteExpiredArgs),
    /// Removes a domain's messages stored more than N days ago and prints how many.
    #[command(alias = "deleteOldMessages")]
    DeleteOld(admin::DeleteOldArgs),
    /// Removes every message held for a user (asks first, unless --yes).
    RemoveUser(admin::RemoveUserArgs),
    /// Removes every message held for a domain's users (asks first, unless --yes).
    RemoveDomain(admin::RemoveDomainArgs),
    /// Prints a user's data (GDPR): CSV with timestamp,from,to,packet (RFC 4180), or JSON.
    #[command(after_help = "Example: offlinectl export alice@localhost > alice.csv")]
    Export(admin::UserArgs),
    /// Copies every queue of one store into another (or imports MongooseIM's
    /// offline_message table); safe to interrupt and run again.
    Migrate(migrate::MigrateArgs),
    /// Serves the Prometheus metrics of the store: what it holds per domain, counted on a
    /// schedule, and the purges run on that schedule (runs until interrupted).
    ServeMetrics(metrics::ServeMetricsArgs),
    /// Measures a store beside its baseline: throughput and latency at several client counts.
    Bench(bench::BenchArgs),
}

/// clap's error as one line: its first, without the `error: ` prefix, and the command whose
/// `--help` tells more (the subcommand named on the command line, if any).
fn usage_error(rendered: &str) -> String {
    let mut lines = rendered.lines();
    let first = lines.next().unwrap_or_default();
    let mut what = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    // "the following required arguments were not provided:" names them on the lines below.
    if what.ends_with(':') {
        for named in lines.take_while(|line| line.starts_with(' ')) {
            what.push(' ');
            what.push_str(named.trim());
        }
    }
    let command = std::env::args_os()
        .nth(1)
        .and_then(|name| {
            let name = name.into_string().ok()?;
            let cli = Cli::command();
            let sub = cli.find_subcommand(&name)?;
            Some(format!("offlinectl {}", sub.get_name()))
        })
        .unwrap_or_else(|| "offlinectl".to_owned());
    format!("offlinectl: {what} (see {command} --help)")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() || e.kind() == DisplayHelpOnMissingArgumentOrSubcommand => {
            e.exit()
        }
        Err(e) => {
            output::note(usage_error(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("offlinectl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Count(args) => admin::count(args).await,
            Command::List(args) => admin::list(args).await,
            Command::Pop(args) => admin::pop(args).await,
            Command::DeleteExpired(args) => admin::delete_expired(args).await,
            Command::DeleteOld(args) => admin::delete_old(args).await,
            Command::RemoveUser(args) => admin::remove_user(args).await,
            Command::RemoveDomain(args) => admin::remove_domain(args).await,
            Command::Export(args) => admin::export(args).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::ServeMetrics(args) => metrics::run(args).await,
            Command::Bench(args) => bench::run(args).await.map_err(CliError::Bench),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain of causes, on one line.
            let mut line = format!("offlinectl: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !line.contains(&cause_text) {
                    line.push_str(": ");
                    line.push_str(&cause_text);
                }
                source = cause.source();
            }
            output::note(line.replace('\n', " "));
            e.exit_code()
        }
    }
}
