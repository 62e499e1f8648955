//! Many clients writing and popping at once, with latency percentiles: the load behind the
//! concurrency bench and `offlinectl bench`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use offline_core::{Domain, Quota, UserKey};

use crate::{Payload, Result, Subject, bench_users, now_micros};

/// A mixed load, as a server puts it on the store: clients each writing messages to random
/// users of one domain and, every `pop_every`-th operation, popping a random user's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Clients running at once (tokio tasks).
    pub clients: usize,
    /// Operations (writes and pops) of all clients together.
    pub operations: u64,
    /// Users the clients pick from at random.
    pub users: usize,
    /// Every client writes to the first user only: the cost of contention on one queue.
    pub one_user: bool,
    /// Messages in one write call.
    pub messages_per_write: usize,
    /// Every `pop_every`-th operation of a client is a pop (0: never).
    pub pop_every: u64,
    /// Bytes of each message's packet.
    pub packet_bytes: usize,
    /// The quota every write is checked against.
    pub quota: Quota,
}

impl Default for Workload {
    /// One client, 100,000 operations over 10,000 users, one 250-byte message per write, a
    /// pop every fourth operation, MongooseIM's default quota of 100 messages.
    fn default() -> Self {
        Self {
            clients: 1,
            operations: 100_000,
            users: 10_000,
            one_user: false,
            messages_per_write: 1,
            pop_every: 4,
            packet_bytes: 250,
            quota: Quota::messages(100),
        }
    }
}

/// Latencies of one kind of operation.
#[derive(Clone, Debug)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Latency {
    fn new() -> Self {
        Self {
            // Nanoseconds, from 1 ns to an hour, three significant digits.
            // The bounds are constants hdrhistogram accepts.
            #[allow(clippy::expect_used)]
            histogram: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }

    fn record(&mut self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(nanos.max(1));
    }

    fn merge(&mut self, other: &Self) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Operations recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The latency at `quantile` (0.5 for the median), zero when nothing was recorded.
    pub fn quantile(&self, quantile: f64) -> Duration {
        if self.histogram.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.histogram.value_at_quantile(quantile))
    }
}

/// What a run of a [`Workload`] measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// The subject's label.
    pub label: String,
    /// Clients that ran at once.
    pub clients: usize,
    /// Operations done.
    pub operations: u64,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
    /// Latencies of writes.
    pub writes: Latency,
    /// Latencies of pops.
    pub pops: Latency,
    /// Writes the quota refused.
    pub refused: u64,
    /// Messages pops returned.
    pub popped: u64,
}

impl Report {
    /// Operations per second.
    pub fn throughput(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Runs `workload` on `nodes` (clients take them in turn: several nodes are a cluster) with
/// users of `domain`, adding each finished operation to `done` (for progress bars). Stops at
/// the first error.
pub async fn run(
    nodes: &[Arc<dyn Subject>],
    domain: &Domain,
    workload: &Workload,
    done: Arc<AtomicU64>,
) -> Result<Report> {
    let first = nodes.first().ok_or("a workload needs at least one store")?;
    let clients = workload.clients.max(1);
    let users: Arc<[UserKey]> = bench_users(domain, workload.users.max(1))?.into();
    let payload = Arc::new(Payload::new(domain, workload.packet_bytes));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let share = workload.operations / clients as u64
            + u64::from((client as u64) < workload.operations % clients as u64);
        let client = Client {
            subject: Arc::clone(&nodes[client % nodes.len()]),
            users: Arc::clone(&users),
            payload: Arc::clone(&payload),
            workload: workload.clone(),
            rng: fastrand::Rng::with_seed(client as u64),
            done: Arc::clone(&done),
        };
        tasks.push(tokio::spawn(client.run(share)));
    }
    let mut report = Report {
        label: first.label(),
        clients,
        operations: 0,
        elapsed: Duration::ZERO,
        writes: Latency::new(),
        pops: Latency::new(),
        refused: 0,
        popped: 0,
    };
    for task in tasks {
        let part = task.await??;
        report.operations += part.operations;
        report.writes.merge(&part.writes);
        report.pops.merge(&part.pops);
        report.refused += part.refused;
        report.popped += part.popped;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// How many operations a client does between two updates of the shared progress counter.
const PROGRESS_EVERY: u64 = 256;

/// One client of a run.
struct Client {
    subject: Arc<dyn Subject>,
    users: Arc<[UserKey]>,
    payload: Arc<Payload>,
    workload: Workload,
    rng: fastrand::Rng,
    done: Arc<AtomicU64>,
}

impl Client {
    async fn run(mut self, operations: u64) -> Result<Report> {
        let mut report = Report {
            label: String::new(),
            clients: 1,
            operations,
            elapsed: Duration::ZERO,
            writes: Latency::new(),
            pops: Latency::new(),
            refused: 0,
            popped: 0,
        };
        let workload = &self.workload;
        for n in 1..=operations {
            let user = if workload.one_user {
                &self.users[0]
            } else {
                &self.users[self.rng.usize(..self.users.len())]
            };
            let now = now_micros();
            let started = Instant::now();
            if workload.pop_every > 0 && n % workload.pop_every == 0 {
                report.popped += self.subject.pop(user, now).await? as u64;
                report.pops.record(started.elapsed());
            } else {
                let batch = self.payload.batch(user, workload.messages_per_write, now);
                let stored = self.subject.write(user, batch, workload.quota, now).await?;
                report.writes.record(started.elapsed());
                report.refused += u64::from(stored == 0);
            }
            // Progress is published now and then: a counter every client bumps on every
            // operation would make the clients contend on it.
            if n % PROGRESS_EVERY == 0 {
                self.done.fetch_add(PROGRESS_EVERY, Ordering::Relaxed);
            }
        }
        self.done
            .fetch_add(operations % PROGRESS_EVERY, Ordering::Relaxed);
        Ok(report)
    }
}
