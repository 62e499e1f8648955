//! `c2s-server`: the example XMPP server, on the configuration given or the built-in one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use c2s_server::{DEFAULT_CONFIG, Server, ServerConfig, self_signed_files};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Where the self-signed certificate is kept when the configuration names none.
const CERTIFICATE_DIR: &str = "data/c2s-server";

/// An XMPP server (client connections, one node) with offline messages from offline-module.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The configuration: MongooseIM's TOML with a `[c2s_server]` section (listen address,
    /// certificate, accounts). Without it: localhost on 127.0.0.1:5222, accounts
    /// alice@localhost (password alice) and bob@localhost (password bob), offline messages
    /// in RocksDB under ./data/offline.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => ServerConfig::from_file(path),
        None => ServerConfig::from_toml_str(DEFAULT_CONFIG),
    };
    let mut config = match config {
        Ok(config) => config,
        Err(error) => {
            eprintln!("c2s-server: configuration: {error}");
            return ExitCode::from(2);
        }
    };
    if config.tls_files.is_none() {
        // Made once and kept, so that clients accept it once.
        let domains = config
            .offline
            .hosts
            .iter()
            .map(ToString::to_string)
            .collect();
        match self_signed_files(Path::new(CERTIFICATE_DIR), domains) {
            Ok(files) => config.tls_files = Some(files),
            Err(error) => eprintln!("c2s-server: {error}; a new certificate at every start"),
        }
    }
    let server = match Server::bind(&config).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("c2s-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(listen) = config.metrics_listen {
        if let Err(error) = server.serve_metrics(listen) {
            eprintln!("c2s-server: {error}");
            return ExitCode::FAILURE;
        }
        eprintln!("c2s-server: metrics on http://{listen}/metrics");
    }
    if let Some(every) = config.purge_expired_every {
        server.purge_expired_every(every);
        eprintln!(
            "c2s-server: expired messages removed every {} s",
            every.as_secs()
        );
    }
    let address = server
        .local_addr()
        .map_or_else(|_| config.listen.to_string(), |a| a.to_string());
    eprintln!("c2s-server: listening on {address} (STARTTLS offered)");
    if let Some((certificate, _)) = &config.tls_files {
        eprintln!("c2s-server: TLS certificate {}", certificate.display());
    }
    for (jid, password) in &config.accounts {
        // The built-in accounts are documented; a configuration's passwords are not shown.
        match args.config {
            None => eprintln!("c2s-server: account {jid}, password {password}"),
            Some(_) => eprintln!("c2s-server: account {jid}"),
        }
    }
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    eprintln!("c2s-server: stopped");
    ExitCode::SUCCESS
}
