//! Metrics through the `metrics` facade; the library installs no recorder.
//!
//! Names follow MongooseIM's instrumentation: an event's metric `m` is `{event}_{m}` with labels
//! for Prometheus, or `{host_type|global}.{event}[.{label value}].{m}` for Exometer.
//!
//! | Prometheus name | type | labels | when |
//! |---|---|---|---|
//! | `mod_offline_{backend}_count` | counter | `host_type`, `function` | a `pop_messages` or `write_messages` backend call |
//! | `mod_offline_{backend}_time` | histogram (µs) | `host_type`, `function` | its duration |
//! | `sm_message_bounced_count` | counter | `host_type` | a 503 "Bounce offline message" reply |
//! | `mod_offline_stored_count` | counter | `host_type` | a message stored |
//! | `mod_offline_rejected_count` | counter | `host_type`, `reason` (`quota`, `too_large`, `too_deep`, `jid_malformed`, `malformed`, `backend`) | a message refused with an error reply |
//! | `mod_offline_expired_dropped_count` | counter | `host_type` | a message that had expired before it was stored, or between its pop and its delivery |
//! | `mod_offline_purged_count` | counter | `host_type`, `reason` (`expired`, `old`, `user`, `domain`) | messages removed by a purge or hook |

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

use crate::stanza::bounce_reply;

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
        let stored = key(&host_type, names, "mod_offline_stored", None, "count");
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
        self.count("sm_message_bounced", None, 1);
        bounce_reply(from, to, message)
    }

    /// The count and time metrics of `function` calls to `backend`.
    fn backend_call(&self, backend: &str, function: &'static str) -> CallMetrics {
        let event = format!("mod_offline_{backend}");
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
        self.count("mod_offline_rejected", Some(("reason", reason)), 1);
    }

    pub(crate) fn expired_dropped(&self, messages: u64) {
        self.count("mod_offline_expired_dropped", None, messages);
    }

    pub(crate) fn purged(&self, reason: &'static str, messages: u64) {
        self.count("mod_offline_purged", Some(("reason", reason)), messages);
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
            Key::from_parts(format!("{event}_{metric}"), labels)
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
/// `pop_messages` and `write_messages`) around any backend. Their names and labels are built
/// when it is made.
#[derive(Debug)]
pub struct InstrumentedBackend {
    inner: Arc<dyn OfflineBackend>,
    writes: CallMetrics,
    pops: CallMetrics,
}

impl InstrumentedBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn OfflineBackend>, instrumentation: Instrumentation) -> Self {
        let backend = inner.name();
        Self {
            writes: instrumentation.backend_call(backend, "write_messages"),
            pops: instrumentation.backend_call(backend, "pop_messages"),
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
        self.inner.fetch_messages(user, after, limit, now).await
    }

    async fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        self.inner.remove_messages(user, seqs).await
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
