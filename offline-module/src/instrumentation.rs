//! Metrics through the `metrics` facade; the library installs no recorder.
//!
//! Names follow MongooseIM's instrumentation: an event's metric `m` is `{event}_{m}` with labels
//! for Prometheus, or `{host_type|global}.{event}[.{label value}].{m}` for Exometer.
//!
//! | Prometheus name | type | labels | when |
//! |---|---|---|---|
//! | `mod_offline_{backend}_count` | counter | `host_type`, `function` | a `pop_messages` or `write_messages` backend call (MongooseIM's), or a `fetch_messages` or `remove_messages` one (the paged delivery, listings, exports) |
//! | `mod_offline_{backend}_time` | histogram (µs) | `host_type`, `function` | its duration |
//! | `sm_message_bounced_count` | counter | `host_type` | a 503 "Bounce offline message" reply |
//! | `mod_offline_stored_count` | counter | `host_type` | a message stored |
//! | `mod_offline_rejected_count` | counter | `host_type`, `reason` (`quota`, `too_large`, `too_deep`, `jid_malformed`, `malformed`, `backend`) | a message refused with an error reply |
//! | `mod_offline_expired_dropped_count` | counter | `host_type` | a message that had expired before it was stored, or between its pop and its delivery |
//! | `mod_offline_purged_count` | counter | `host_type`, `reason` (`expired`, `old`, `user`, `domain`) | messages removed by a purge or hook |
//! | `mod_offline_held_users`, `mod_offline_held_messages`, `mod_offline_held_bytes` | gauge | `host_type` | [`OfflineModule::count_held`](crate::OfflineModule::count_held): what the store holds for the module's domains |
//! | `mod_offline_held_failed_count` | counter | `host_type` | a `count_held` that failed (the gauges keep their last values) |
//!
//! A server exposes them by installing a recorder; for Prometheus, `metrics-exporter-prometheus`
//! with [`TIME_BUCKETS`] for the histograms, then [`describe_metrics`] for their help texts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jid::Jid;
use metrics::{Key, Label, Level, Metadata};
use minidom::Element;

use offline_core::{
    Domain, NewMessage, OfflineBackend, QueueStats, Quota, Result, StoredMessage, UserKey,
    WriteReport,
};

use crate::module::Held;
use crate::stanza::bounce_reply;

/// Histogram buckets for the `_time` metrics, in microseconds: 100 µs to 5 s.
pub const TIME_BUCKETS: &[f64] = &[
    100.0, 250.0, 500.0, 1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6,
];

/// The backend names that appear in metric names (`mod_offline_{backend}_…`).
const BACKENDS: [&str; 3] = ["mem", "rocksdb", "rdbms"];

// The events this module counts, each with the help text of its `count` metric.
const BOUNCED: (&str, &str) = ("sm_message_bounced", "Offline messages bounced with 503");
const STORED: (&str, &str) = ("mod_offline_stored", "Messages stored");
const REJECTED: (&str, &str) = (
    "mod_offline_rejected",
    "Messages refused with an error reply (label reason)",
);
const EXPIRED_DROPPED: (&str, &str) = (
    "mod_offline_expired_dropped",
    "Messages dropped because they had expired",
);
const PURGED: (&str, &str) = (
    "mod_offline_purged",
    "Messages removed by purges and hooks (label reason)",
);
const HELD_FAILED: (&str, &str) = (
    "mod_offline_held_failed",
    "Counts of what the store holds that failed",
);
// The event of the held gauges, and each gauge with its unit and help text.
const HELD: &str = "mod_offline_held";
const HELD_GAUGES: [(&str, metrics::Unit, &str); 3] = [
    (
        "users",
        metrics::Unit::Count,
        "Users with messages in the store, at the last count",
    ),
    (
        "messages",
        metrics::Unit::Count,
        "Messages in the store (expired ones not yet purged included), at the last count",
    ),
    (
        "bytes",
        metrics::Unit::Bytes,
        "Bytes of the packets in the store, at the last count",
    ),
];

/// The Prometheus name of an event's `metric`.
fn prometheus_name(event: &str, metric: &str) -> String {
    format!("{event}_{metric}")
}

/// The event of a backend's call metrics.
fn backend_event(backend: &str) -> String {
    format!("mod_offline_{backend}")
}

/// Gives the installed recorder the unit and help text of every metric of this module, under
/// its Prometheus name. Call it once, after installing the recorder.
pub fn describe_metrics() {
    use metrics::Unit;
    for backend in BACKENDS {
        let event = backend_event(backend);
        metrics::describe_counter!(
            prometheus_name(&event, "count"),
            Unit::Count,
            "Calls of the backend's functions (label function)"
        );
        metrics::describe_histogram!(
            prometheus_name(&event, "time"),
            Unit::Microseconds,
            "Duration of the backend's function calls (label function)"
        );
    }
    for (event, help) in [
        BOUNCED,
        STORED,
        REJECTED,
        EXPIRED_DROPPED,
        PURGED,
        HELD_FAILED,
    ] {
        metrics::describe_counter!(prometheus_name(event, "count"), Unit::Count, help);
    }
    for (metric, unit, help) in HELD_GAUGES {
        metrics::describe_gauge!(prometheus_name(HELD, metric), unit, help);
    }
}

/// How metric names are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricNames {
    /// `mod_offline_mem_count{host_type="localhost",function="pop_messages"}`.
    #[default]
    Prometheus,
    /// `localhost.mod_offline_mem.pop_messages.count`, or `global.…` when
    /// `all_metrics_are_global`.
    Exometer {
        /// Use `global` instead of the host type.
        all_metrics_are_global: bool,
    },
}

/// What every metric of this module is registered with, as the `metrics` macros would.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

fn increment(key: &Key, n: u64) {
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA).increment(n));
}

fn set(key: &Key, value: f64) {
    metrics::with_recorder(|recorder| recorder.register_gauge(key, &METADATA).set(value));
}

fn record(key: &Key, value: f64) {
    metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA).record(value));
}

/// Emits the metrics of one host type. The names and labels of the metrics emitted on every
/// message are built once, not on each call.
#[derive(Clone, Debug)]
pub struct Instrumentation {
    host_type: Arc<str>,
    names: MetricNames,
    /// `mod_offline_stored_count`.
    stored: Arc<Key>,
}

impl Instrumentation {
    /// Metrics for `host_type`, named as `names` says.
    pub fn new(host_type: impl Into<Arc<str>>, names: MetricNames) -> Self {
        let host_type = host_type.into();
        let stored = key(&host_type, names, STORED.0, None, "count");
        Self {
            host_type,
            names,
            stored: Arc::new(stored),
        }
    }

    /// The host type in the metrics' labels or names.
    pub fn host_type(&self) -> &str {
        &self.host_type
    }

    /// Builds the 503 "Bounce offline message" reply for a message nobody stored, and counts it
    /// in `sm_message_bounced`. For servers that route offline messages to no handler, or whose
    /// handlers all passed.
    pub fn bounce(&self, from: &Jid, to: &Jid, message: &Element) -> Element {
        self.count(BOUNCED.0, None, 1);
        bounce_reply(from, to, message)
    }

    /// The count and time metrics of `function` calls to `backend`.
    fn backend_call(&self, backend: &str, function: &'static str) -> CallMetrics {
        let event = backend_event(backend);
        let label = Some(("function", function));
        CallMetrics {
            count: key(&self.host_type, self.names, &event, label, "count"),
            time: key(&self.host_type, self.names, &event, label, "time"),
        }
    }

    pub(crate) fn stored(&self, messages: u64) {
        if messages > 0 {
            increment(&self.stored, messages);
        }
    }

    pub(crate) fn rejected(&self, reason: &'static str) {
        self.count(REJECTED.0, Some(("reason", reason)), 1);
    }

    pub(crate) fn expired_dropped(&self, messages: u64) {
        self.count(EXPIRED_DROPPED.0, None, messages);
    }

    pub(crate) fn purged(&self, reason: &'static str, messages: u64) {
        self.count(PURGED.0, Some(("reason", reason)), messages);
    }

    /// Sets the `mod_offline_held_*` gauges.
    pub(crate) fn held(&self, held: Held) {
        let values = [held.users, held.messages, held.bytes];
        for ((metric, _, _), value) in HELD_GAUGES.iter().zip(values) {
            // Gauges are floats; counts up to 2^53 are exact.
            set(
                &key(&self.host_type, self.names, HELD, None, metric),
                value as f64,
            );
        }
    }

    pub(crate) fn held_failed(&self) {
        self.count(HELD_FAILED.0, None, 1);
    }

    fn count(&self, event: &str, label: Option<(&'static str, &'static str)>, n: u64) {
        if n > 0 {
            increment(&key(&self.host_type, self.names, event, label, "count"), n);
        }
    }
}

/// The key of an event's `metric` (`count`, `time`) for `host_type`, named as `names` says.
fn key(
    host_type: &str,
    names: MetricNames,
    event: &str,
    label: Option<(&'static str, &'static str)>,
    metric: &str,
) -> Key {
    match names {
        MetricNames::Prometheus => {
            let mut labels = vec![Label::new("host_type", host_type.to_owned())];
            labels.extend(label.map(|(key, value)| Label::new(key, value)));
            Key::from_parts(prometheus_name(event, metric), labels)
        }
        MetricNames::Exometer {
            all_metrics_are_global,
        } => {
            let scope = if all_metrics_are_global {
                "global"
            } else {
                host_type
            };
            Key::from_name(match label {
                Some((_, value)) => format!("{scope}.{event}.{value}.{metric}"),
                None => format!("{scope}.{event}.{metric}"),
            })
        }
    }
}

/// The count and time of one backend function's calls.
#[derive(Debug)]
struct CallMetrics {
    count: Key,
    time: Key,
}

impl CallMetrics {
    fn record(&self, started: Instant) {
        increment(&self.count, 1);
        record(&self.time, micros(started.elapsed()));
    }
}

fn micros(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e6
}

/// A backend decorator recording MongooseIM's backend metrics (count and time of
/// `pop_messages` and `write_messages`) around any backend, and the same of `fetch_messages`
/// and `remove_messages` (the paged, at-least-once delivery; listings and exports). Their names and labels are built
/// when it is made.
#[derive(Debug)]
pub struct InstrumentedBackend {
    inner: Arc<dyn OfflineBackend>,
    writes: CallMetrics,
    pops: CallMetrics,
    fetches: CallMetrics,
    removals: CallMetrics,
}

impl InstrumentedBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn OfflineBackend>, instrumentation: Instrumentation) -> Self {
        let backend = inner.name();
        Self {
            writes: instrumentation.backend_call(backend, "write_messages"),
            pops: instrumentation.backend_call(backend, "pop_messages"),
            fetches: instrumentation.backend_call(backend, "fetch_messages"),
            removals: instrumentation.backend_call(backend, "remove_messages"),
            inner,
        }
    }
}

#[async_trait]
impl OfflineBackend for InstrumentedBackend {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn write_messages(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<WriteReport> {
        let started = Instant::now();
        let result = self.inner.write_messages(user, messages, quota, now).await;
        self.writes.record(started);
        result
    }

    async fn pop_messages(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>> {
        let started = Instant::now();
        let result = self.inner.pop_messages(user, now).await;
        self.pops.record(started);
        result
    }

    async fn fetch_messages(
        &self,
        user: &UserKey,
        after: Option<u64>,
        limit: Option<usize>,
        now: i64,
    ) -> Result<Vec<StoredMessage>> {
        let started = Instant::now();
        let result = self.inner.fetch_messages(user, after, limit, now).await;
        self.fetches.record(started);
        result
    }

    async fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        let started = Instant::now();
        let result = self.inner.remove_messages(user, seqs).await;
        self.removals.record(started);
        result
    }

    async fn count_messages(&self, user: &UserKey) -> Result<QueueStats> {
        self.inner.count_messages(user).await
    }

    async fn list_users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Result<Vec<UserKey>> {
        self.inner.list_users(domain, after, limit).await
    }

    async fn remove_expired_messages(&self, domain: &Domain, now: i64) -> Result<u64> {
        self.inner.remove_expired_messages(domain, now).await
    }

    async fn remove_old_messages(&self, domain: &Domain, cutoff: i64) -> Result<u64> {
        self.inner.remove_old_messages(domain, cutoff).await
    }

    async fn remove_user(&self, user: &UserKey) -> Result<u64> {
        self.inner.remove_user(user).await
    }

    async fn remove_domain(&self, domain: &Domain) -> Result<u64> {
        self.inner.remove_domain(domain).await
    }
}
