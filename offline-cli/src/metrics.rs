//! `offlinectl serve-metrics`: a long-running process that serves the Prometheus exposition
//! of what `mod_offline` records in it, under MongooseIM's names: how much the store holds
//! for each domain (counted every `--every`), and the purges it runs on that schedule.
//!
//! The module's per-message metrics (`mod_offline_{backend}_count`, bounces, stored,
//! rejected) are recorded where messages pass: in the server's process, which exposes them
//! itself (`docs/operations.md`, "Metrics").

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use offline_module::offline_core::Domain;
use offline_module::{OfflineModule, TIME_BUCKETS, describe_metrics};

use crate::admin::{Where, domain};
use crate::error::CliError;
use crate::output::{note, say};
use crate::target::Target;

/// `serve-metrics`' options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    offlinectl serve-metrics --listen 127.0.0.1:9125 --config offline.toml\n  \
    offlinectl serve-metrics --listen 0.0.0.0:9125 --every 5m --purge-expired --delete-old-days 30\n  \
    offlinectl serve-metrics --listen 127.0.0.1:9125 --domain localhost    # no configuration\n\n\
    Prometheus scrapes http://ADDR/metrics; the process runs until interrupted (Ctrl-C, SIGTERM).")]
pub(crate) struct ServeMetricsArgs {
    /// The address and port Prometheus scrapes.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The domains to cover (repeat it; default: every domain of general.hosts with
    /// mod_offline; required without a configuration).
    #[arg(long = "domain", value_name = "DOMAIN", value_parser = domain)]
    domains: Vec<Domain>,
    /// How often the store is counted and purged: 30s, 5m, 1h...
    #[arg(long, default_value = "1m", value_parser = interval)]
    every: Duration,
    /// Remove the expired messages each round (as delete-expired does).
    #[arg(long)]
    purge_expired: bool,
    /// Remove the messages stored more than N days ago each round (as delete-old does).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    delete_old_days: Option<u32>,
    #[command(flatten)]
    at: Where,
}

/// Parses a positive duration.
fn interval(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than zero".into()),
        Ok(duration) => Ok(duration),
        Err(e) => Err(format!("{e} (for instance 30s, 5m, 1h)")),
    }
}

/// `offlinectl serve-metrics`.
pub(crate) async fn run(args: ServeMetricsArgs) -> Result<(), CliError> {
    let mut target = Target::load(args.at.config.as_deref())?;
    let domains = if args.domains.is_empty() {
        target.hosts()
    } else {
        args.domains.clone()
    };
    if domains.is_empty() {
        return Err(CliError::Usage(
            "no domain to cover: name them with --domain, or configure general.hosts".into(),
        ));
    }
    // One module per host type, serving its domains: the gauges are per host type.
    let mut modules: Vec<(OfflineModule, Vec<Domain>)> = Vec::new();
    for domain in domains {
        let opened = target.open(&domain, args.at.host_type.as_deref()).await?;
        let host_type = opened.module.host_type();
        match modules.iter_mut().find(|(m, _)| m.host_type() == host_type) {
            Some((module, served)) => {
                module.add_domain(domain.clone());
                served.push(domain);
            }
            None => modules.push((opened.module, vec![domain])),
        }
    }
    // The listener is bound now, but answers only once the first round is done: a scrape,
    // however early, finds the store counted.
    let failed = |e: &dyn std::fmt::Display| {
        CliError::Failed(format!("serving metrics on {}: {e}", args.listen))
    };
    let (recorder, exporter) = PrometheusBuilder::new()
        .with_http_listener(args.listen)
        .set_buckets_for_metric(Matcher::Suffix("_time".into()), TIME_BUCKETS)
        .and_then(PrometheusBuilder::build)
        .map_err(|e| failed(&e))?;
    metrics::set_global_recorder(recorder).map_err(|e| failed(&e))?;
    describe_metrics();
    let mut rounds = tokio::time::interval(args.every);
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    rounds.tick().await;
    round(&args, &modules).await;
    tokio::spawn(exporter);
    say(format!(
        "Serving metrics on http://{}/metrics, counting every {}",
        args.listen,
        humantime::format_duration(args.every)
    ))?;
    loop {
        tokio::select! {
            _ = rounds.tick() => round(&args, &modules).await,
            () = shutdown() => return Ok(()),
        }
    }
}

/// One round: for each host type, the purges asked for on each of its domains, then the
/// count. A failure is a line on stderr (and, for the count, `mod_offline_held_failed`); the
/// next round tries again.
async fn round(args: &ServeMetricsArgs, modules: &[(OfflineModule, Vec<Domain>)]) {
    for (module, domains) in modules {
        for domain in domains {
            purge(args, domain, module).await;
        }
        if let Err(e) = module.count_held().await {
            note(format!(
                "offlinectl: {}: counting the store: {e}",
                module.host_type()
            ));
        }
    }
}

async fn purge(args: &ServeMetricsArgs, domain: &Domain, module: &OfflineModule) {
    if args.purge_expired
        && let Err(e) = module.remove_expired_messages(domain.as_str()).await
    {
        note(format!(
            "offlinectl: {domain}: removing expired messages: {e}"
        ));
    }
    if let Some(days) = args.delete_old_days
        && let Err(e) = module.remove_old_messages(domain.as_str(), days).await
    {
        note(format!("offlinectl: {domain}: removing old messages: {e}"));
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
