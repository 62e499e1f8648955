//! `offlinectl`: the operator's tool for the offline store.
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

mod bench;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The operator's tool for the offline message store.
#[derive(Debug, Parser)]
#[command(name = "offlinectl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measures a store beside its baseline: throughput and latency at several client counts.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            Command::Bench(args) => bench::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("offlinectl: {e}");
            ExitCode::FAILURE
        }
    }
}
