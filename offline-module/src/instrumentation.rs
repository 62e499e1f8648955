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
use metrics::Label;
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

/// Emits the metrics of one host type.
#[derive(Clone, Debug)]
pub struct Instrumentation {
    host_type: Arc<str>,
    names: MetricNames,
}

impl Instrumentation {
    /// Metrics for `host_type`, named as `names` says.
    pub fn new(host_type: impl Into<Arc<str>>, names: MetricNames) -> Self {
        Self {
            host_type: host_type.into(),
            names,
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

    /// A `pop_messages` or `write_messages` call to `backend` that took `elapsed`.
    pub(crate) fn backend_call(&self, backend: &str, function: &'static str, elapsed: Duration) {
        let event = format!("mod_offline_{backend}");
        let label = Some(("function", function));
        self.count(&event, label, 1);
        let micros = elapsed.as_secs_f64() * 1e6;
        match self.names {
            MetricNames::Prometheus => {
                metrics::histogram!(format!("{event}_time"), self.labels(label)).record(micros);
            }
            MetricNames::Exometer { .. } => {
                metrics::histogram!(self.flat_name(&event, label, "time")).record(micros);
            }
        }
    }

    pub(crate) fn stored(&self, messages: u64) {
        self.count("mod_offline_stored", None, messages);
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
        if n == 0 {
            return;
        }
        match self.names {
            MetricNames::Prometheus => {
                metrics::counter!(format!("{event}_count"), self.labels(label)).increment(n);
            }
            MetricNames::Exometer { .. } => {
                metrics::counter!(self.flat_name(event, label, "count")).increment(n);
            }
        }
    }

    fn labels(&self, label: Option<(&'static str, &'static str)>) -> Vec<Label> {
        let mut labels = vec![Label::new("host_type", self.host_type.to_string())];
        labels.extend(label.map(|(key, value)| Label::new(key, value)));
        labels
    }

    fn flat_name(&self, event: &str, label: Option<(&str, &str)>, metric: &str) -> String {
        let scope = match self.names {
            MetricNames::Exometer {
                all_metrics_are_global: true,
            } => "global",
            _ => &self.host_type,
        };
        match label {
            Some((_, value)) => format!("{scope}.{event}.{value}.{metric}"),
            None => format!("{scope}.{event}.{metric}"),
        }
    }
}

/// A backend decorator recording MongooseIM's backend metrics (count and time of
/// `pop_messages` and `write_messages`) around any backend.
#[derive(Debug)]
pub struct InstrumentedBackend {
    inner: Arc<dyn OfflineBackend>,
    instrumentation: Instrumentation,
}

impl InstrumentedBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn OfflineBackend>, instrumentation: Instrumentation) -> Self {
        Self {
            inner,
            instrumentation,
        }
    }

    fn record(&self, function: &'static str, started: Instant) {
        self.instrumentation
            .backend_call(self.inner.name(), function, started.elapsed());
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
        self.record("write_messages", started);
        result
    }

    async fn pop_messages(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>> {
        let started = Instant::now();
        let result = self.inner.pop_messages(user, now).await;
        self.record("pop_messages", started);
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
