//! `offlinectl bench`: a workload against a store and its baseline.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use offline_benches::{BoxError, MongooseSql, NaiveMap, Ours, RawRocks, Report, Subject, Workload};
use offline_module::offline_core::{Domain, MAX_PACKET_BYTES, Quota};
use offline_module::{OfflineConfig, RocksDbSettings, StorageConfig, open_backend};
use tempfile::TempDir;

use crate::report::{Row, print_table, write_csv, write_plot};

/// The domain the benchmark's users belong to; removed from the store when the run ends.
const BENCH_DOMAIN: &str = "offlinectl-bench.invalid";

/// `offlinectl bench`'s options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    offlinectl bench                                   # RocksDB in a temporary directory\n  \
    offlinectl bench --backend memory --csv out.csv --plot out.svg\n  \
    offlinectl bench --config offline.toml --clients 8 # the store a MongooseIM TOML configures")]
pub(crate) struct BenchArgs {
    /// The store to measure when no `--config` is given, in a temporary directory.
    #[arg(long, value_enum, default_value_t = Embedded::Rocksdb)]
    backend: Embedded,
    /// A MongooseIM TOML file: measure the store it configures. The benchmark's users live in
    /// a domain of their own (offlinectl-bench.invalid), removed when the run ends.
    #[arg(long, value_name = "FILE", conflicts_with = "backend")]
    config: Option<PathBuf>,
    /// The host type whose store `--config` configures (default: the first of general.hosts).
    #[arg(long, requires = "config")]
    host: Option<String>,
    /// Client counts to run, one run each.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 8, 32],
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    clients: Vec<u64>,
    /// Operations per run, all clients together.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    operations: u64,
    /// Users the clients write to and pop, at random.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    users: u64,
    /// Every client writes to one user (contention on one queue).
    #[arg(long)]
    one_user: bool,
    /// Messages per write.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    messages: u64,
    /// Every N-th operation of a client is a pop (0: writes only).
    #[arg(long, default_value_t = 4)]
    pop_every: u64,
    /// Bytes of each message's packet.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(100..=MAX_PACKET_BYTES as u64))]
    packet_bytes: u64,
    /// The per-user message limit every write is checked against.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    quota: u64,
    /// The embedded RocksDB store (and raw RocksDB) do not wait for each write to be on disk.
    #[arg(long, conflicts_with = "config")]
    no_sync: bool,
    /// Measure the store alone, without its baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Also write the results as CSV to this file.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Also plot throughput by client count as SVG to this file.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// A store that needs no server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Embedded {
    /// RocksDB, the embedded persistent default.
    Rocksdb,
    /// The in-memory store.
    Memory,
}

/// The store under test, its baseline, and what keeps their files alive.
struct Target {
    store: Arc<dyn Subject>,
    baseline: Option<Arc<dyn Subject>>,
    /// What was measured, for the table's title.
    description: String,
    _dirs: Vec<TempDir>,
}

pub(crate) async fn run(args: BenchArgs) -> Result<(), BoxError> {
    let domain: Domain = BENCH_DOMAIN.parse()?;
    let target = open(&args).await?;
    println!("{}", target.description);
    let mut rows = Vec::new();
    let result = measure(&args, &target, &domain, &mut rows).await;
    // What the runs left behind goes, whether they finished or not.
    target.store.clear(&domain).await?;
    if let Some(baseline) = &target.baseline {
        baseline.clear(&domain).await?;
        baseline.tear_down().await?;
    }
    result?;
    print_table(&rows);
    if let Some(path) = &args.csv {
        write_csv(path, &rows).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("CSV written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        write_plot(path, &target.description, &rows)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("plot written to {}", path.display());
    }
    Ok(())
}

async fn measure(
    args: &BenchArgs,
    target: &Target,
    domain: &Domain,
    rows: &mut Vec<Row>,
) -> Result<(), BoxError> {
    let subjects: Vec<&Arc<dyn Subject>> = std::iter::once(&target.store)
        .chain(&target.baseline)
        .collect();
    for subject in &subjects {
        subject.clear(domain).await?;
    }
    for &clients in &args.clients {
        let workload = Workload {
            clients: usize::try_from(clients)?,
            operations: args.operations,
            users: usize::try_from(args.users)?,
            one_user: args.one_user,
            messages_per_write: usize::try_from(args.messages)?,
            pop_every: args.pop_every,
            packet_bytes: usize::try_from(args.packet_bytes)?,
            quota: Quota::messages(args.quota),
        };
        let mut reports = Vec::new();
        for subject in &subjects {
            reports.push(run_with_progress(subject, domain, &workload).await?);
            subject.clear(domain).await?;
        }
        // The store's row carries its ratio to the baseline's; the baseline's row none.
        let baseline = reports.get(1).map(Report::throughput);
        for (n, report) in reports.into_iter().enumerate() {
            rows.push(Row::new(report, baseline.filter(|_| n == 0)));
        }
    }
    Ok(())
}

/// Runs one workload on one subject behind a progress bar.
async fn run_with_progress(
    subject: &Arc<dyn Subject>,
    domain: &Domain,
    workload: &Workload,
) -> Result<Report, BoxError> {
    let bar = ProgressBar::new(workload.operations);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:32} [{bar:30}] {pos}/{len} ops, {per_sec}, {elapsed_precise}",
        )?
        .progress_chars("=> "),
    );
    bar.set_message(format!("{}, {} clients", subject.label(), workload.clients));
    let done = Arc::new(AtomicU64::new(0));
    let ticker = {
        let (bar, done) = (bar.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            loop {
                bar.set_position(done.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let report = offline_benches::run(&[Arc::clone(subject)], domain, workload, done).await;
    ticker.abort();
    bar.finish_and_clear();
    report
}

/// Opens the store the options name, and its baseline.
async fn open(args: &BenchArgs) -> Result<Target, BoxError> {
    let Some(path) = &args.config else {
        return open_embedded(args).await;
    };
    let config = OfflineConfig::from_file(path)?;
    let host = match &args.host {
        Some(host) if !is_configured(&config, host) => {
            return Err(format!(
                "--host {host}: not a host or host type of {} (general.hosts, general.host_types)",
                path.display()
            )
            .into());
        }
        Some(host) => host.clone(),
        None => config
            .hosts
            .first()
            .map(|domain| domain.as_str().to_owned())
            .ok_or_else(|| {
                format!(
                    "{}: general.hosts is empty; name one with --host",
                    path.display()
                )
            })?,
    };
    let storage = config.for_host(&host).storage.clone().ok_or_else(|| {
        format!(
            "{}: mod_offline is not enabled for host type {host}",
            path.display()
        )
    })?;
    let store = Arc::new(Ours(open_backend(&storage).await?));
    let mut dirs = Vec::new();
    let baseline: Option<Arc<dyn Subject>> = if args.no_baseline {
        None
    } else {
        Some(match &storage {
            StorageConfig::Memory => Arc::new(NaiveMap::new()),
            StorageConfig::RocksDb(settings) => {
                let dir = tempfile::tempdir()?;
                let raw = RawRocks::open(dir.path(), settings.sync_writes)?;
                dirs.push(dir);
                Arc::new(raw)
            }
            StorageConfig::Rdbms(settings) => {
                let pool = settings.pool_size.map_or(10, |n| n as usize);
                Arc::new(MongooseSql::connect(&settings.connection.url(), pool).await?)
            }
        })
    };
    Ok(Target {
        description: format!(
            "{} from {} (host type {host})",
            store.label(),
            path.display()
        ),
        store,
        baseline,
        _dirs: dirs,
    })
}

/// Whether `host` is one of the configuration's hosts or host types.
fn is_configured(config: &OfflineConfig, host: &str) -> bool {
    config.hosts.iter().any(|domain| domain.as_str() == host)
        || config.host_types.iter().any(|host_type| host_type == host)
}

async fn open_embedded(args: &BenchArgs) -> Result<Target, BoxError> {
    let sync = !args.no_sync;
    let (storage, baseline, dirs, description): (_, Arc<dyn Subject>, _, _) = match args.backend {
        Embedded::Memory => (
            StorageConfig::Memory,
            Arc::new(NaiveMap::new()),
            Vec::new(),
            "memory store (offline-mem)".to_owned(),
        ),
        Embedded::Rocksdb => {
            let (ours, raw) = (tempfile::tempdir()?, tempfile::tempdir()?);
            let settings = RocksDbSettings {
                path: ours.path().join("offline"),
                sync_writes: sync,
                ..RocksDbSettings::default()
            };
            let baseline = RawRocks::open(raw.path(), sync)?;
            let description = format!(
                "RocksDB store (offline-rocksdb) in a temporary directory, sync_writes = {sync}"
            );
            (
                StorageConfig::RocksDb(settings),
                Arc::new(baseline),
                vec![ours, raw],
                description,
            )
        }
    };
    Ok(Target {
        store: Arc::new(Ours(open_backend(&storage).await?)),
        baseline: (!args.no_baseline).then_some(baseline),
        description,
        _dirs: dirs,
    })
}
