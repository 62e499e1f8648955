//! The `mod_offline` front end: what a server calls when a message reaches a user with no
//! available resource, when that user sends available presence, and for administration.

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};

use jid::Jid;
use minidom::Element;
use minidom::rxml::xml_ncname;
use tracing::{debug, error, info, warn};

use offline_core::{
    Domain, MAX_DEDUPE_KEY_BYTES, MAX_PACKET_BYTES, NewMessage, OfflineBackend, OfflineError,
    StoredMessage, UserKey, canonical_jid,
};

use crate::stanza::{
    Classification, MAX_DEPTH_LIMIT, StanzaError, classify, delay_element, depth_within,
    error_reply, format_stamp_seconds, ns, offline_event, parse_packet, plain_copy, sender_stamp,
    serialize, set_attr, writable_copy,
};
use crate::{
    AccessConfig, BackendKind, Clock, ConfigError, FEATURE_MSGOFFLINE, Instrumentation,
    InstrumentedBackend, MetricNames, ModuleError, ModuleOptions, OfflineConfig, StorageConfig,
    SystemClock, open_backend,
};

/// One day in µs.
const DAY: i64 = 86_400 * 1_000_000;

/// What the server must do with a message it handed to the module.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub enum Disposition {
    /// Stored for delivery at the user's next available presence, or already held.
    Stored {
        /// A XEP-0022 `offline` event to route to the sender, when the sender asked for one
        /// and the message was newly stored.
        notify_sender: Option<Element>,
        /// The queue already held this message (same sender and XEP-0359 `origin-id`): the
        /// resend was skipped by dedupe and nothing new was stored.
        duplicate: bool,
    },
    /// Dropped silently (`error`, `headline`, or already expired): send nothing, bounce nothing.
    Dropped,
    /// Not stored: route this error reply back to the sender.
    Refused(Element),
    /// Not for offline storage: let the next handler decide (`mod_offline_stub`, or the 503
    /// bounce from [`Instrumentation::bounce`]).
    NotHandled,
}

/// A stored message ready to route to its recipient, stamped with a XEP-0203 `<delay/>`.
///
/// A delivery goes to the session whose available presence triggered
/// [`resend_offline_messages`](OfflineModule::resend_offline_messages), whatever resource its
/// stored `to` names: a message to a full JID whose resource was gone was stored for the bare
/// JID, and the resource it named may never come back.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The message's place in the user's queue: what [`OfflineModule::remove_delivered`]
    /// takes once the message reached the client.
    pub seq: u64,
    /// The original sender, as routed.
    pub from: Jid,
    /// The recipient as routed when the message was stored (the stanza's `to` when it had
    /// none); informative only, see above.
    pub to: Jid,
    /// The message with `<delay xmlns='urn:xmpp:delay' from='{domain}' stamp='…'>Offline
    /// Storage</delay>` appended.
    pub stanza: Element,
    /// The opaque fields stored with the message.
    pub permanent_fields: Option<Vec<u8>>,
}

/// A page of stored messages from [`OfflineModule::pending_messages`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PendingPage {
    /// The messages to write to the client, in arrival order.
    pub deliveries: Vec<Delivery>,
    /// Every seq the page covers, in order: the deliveries' and those of stored messages too
    /// corrupt to deliver (logged), which are removed with the rest. The next page starts
    /// after the last; an empty list means nothing more is held.
    pub seqs: Vec<u64>,
}

/// The GDPR export columns, in the order of [`PersonalDataRow`]'s fields.
pub const PERSONAL_DATA_FIELDS: [&str; 4] = ["timestamp", "from", "to", "packet"];

/// One stored message in a user's GDPR export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonalDataRow {
    /// When it was stored, RFC 3339 in UTC to the second.
    pub timestamp: String,
    /// The sender's full JID.
    pub from: String,
    /// The recipient's bare JID.
    pub to: String,
    /// The stanza's XML, without delay stamps.
    pub packet: String,
}

/// MongooseIM's `mod_offline` for one host type.
///
/// ```
/// use std::sync::Arc;
/// use offline_module::{Disposition, OfflineModule, jid::Jid, minidom::Element};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = Arc::new(offline_mem::MemBackend::new());
/// let module = OfflineModule::builder("localhost", store)
///     .domain("localhost".parse()?)
///     .build()
///     .await?;
/// let (romeo, juliet) = (Jid::new("romeo@localhost/orchard")?, Jid::new("juliet@localhost")?);
/// let message: Element = "<message xmlns='jabber:client' type='chat'><body>hi</body></message>".parse()?;
///
/// // Juliet has no available resource: the router hands the message to the module.
/// match module.offline_message(&romeo, &juliet, &message).await {
///     Disposition::Stored { .. } | Disposition::Dropped => {}
///     Disposition::Refused(reply) => { /* route `reply` to romeo */ }
///     Disposition::NotHandled => { /* next handler: the stub, or a 503 bounce */ }
/// }
/// // Juliet sends available presence: deliver her messages in order.
/// let deliveries = module.resend_offline_messages(&juliet).await?;
/// assert_eq!(deliveries.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct OfflineModule {
    host_type: String,
    domains: RwLock<BTreeSet<Domain>>,
    options: ModuleOptions,
    access: AccessConfig,
    clock: Arc<dyn Clock>,
    store: InstrumentedBackend,
    instrumentation: Instrumentation,
}

/// Builds an [`OfflineModule`], from code ([`OfflineModule::builder`]) or from a MongooseIM
/// configuration ([`OfflineModule::from_config`]); everything but the host type and the store
/// has a default.
#[derive(Debug)]
pub struct OfflineModuleBuilder {
    host_type: String,
    store: StoreSource,
    domains: BTreeSet<Domain>,
    options: ModuleOptions,
    access: AccessConfig,
    clock: Arc<dyn Clock>,
    metric_names: MetricNames,
}

/// Where the module's store comes from.
#[derive(Debug)]
enum StoreSource {
    /// Given in code.
    Given(Arc<dyn OfflineBackend>),
    /// Named by a configuration: opened at build time unless a store is given.
    Configured {
        storage: StorageConfig,
        given: Option<Arc<dyn OfflineBackend>>,
    },
}

impl OfflineModuleBuilder {
    /// Stores into `store`: for a server with a backend of its own, or a store it opened
    /// itself. On a builder from a configuration, a store of a built-in kind (`mem`,
    /// `rocksdb`, `rdbms`) must be the kind the configuration's `backend` names; a store of
    /// another name replaces the configured backend.
    #[must_use]
    pub fn store(mut self, store: Arc<dyn OfflineBackend>) -> Self {
        self.store = match self.store {
            StoreSource::Given(_) => StoreSource::Given(store),
            StoreSource::Configured { storage, .. } => StoreSource::Configured {
                storage,
                given: Some(store),
            },
        };
        self
    }

    /// A domain the module serves (admin purges refuse others).
    #[must_use]
    pub fn domain(mut self, domain: Domain) -> Self {
        self.domains.insert(domain);
        self
    }

    /// Domains the module serves.
    #[must_use]
    pub fn domains(mut self, domains: impl IntoIterator<Item = Domain>) -> Self {
        self.domains.extend(domains);
        self
    }

    /// The `[modules.mod_offline]` options (default: MongooseIM's defaults).
    #[must_use]
    pub fn options(mut self, options: ModuleOptions) -> Self {
        self.options = options;
        self
    }

    /// The `[acl]` and `[access]` sections the quota rule is evaluated against (default: none,
    /// so no limit).
    #[must_use]
    pub fn access(mut self, access: AccessConfig) -> Self {
        self.access = access;
        self
    }

    /// The clock (default: [`SystemClock`]); tests pass a [`ManualClock`](crate::ManualClock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How metrics are named (default: Prometheus).
    #[must_use]
    pub fn metric_names(mut self, names: MetricNames) -> Self {
        self.metric_names = names;
        self
    }

    /// The module, on the store given, else on the configured backend, opened now
    /// ([`open_backend`]). Options out of range (a `max_stanza_depth` outside 2 to
    /// [`MAX_DEPTH_LIMIT`](crate::stanza::MAX_DEPTH_LIMIT)) are a configuration error.
    pub async fn build(self) -> Result<OfflineModule, ModuleError> {
        let depth = self.options.max_stanza_depth;
        if !(2..=MAX_DEPTH_LIMIT).contains(&depth) {
            return Err(ConfigError::new(
                "modules.mod_offline.max_stanza_depth",
                format!("{depth} is not a depth limit: expected 2 to {MAX_DEPTH_LIMIT}"),
            )
            .into());
        }
        let store = match self.store {
            StoreSource::Given(store) => store,
            StoreSource::Configured {
                given: Some(store), ..
            } => {
                let (name, backend) = (store.name(), self.options.backend);
                let built_in = ["mem", "rocksdb", "rdbms"].contains(&name);
                if built_in && !backend.store_names().contains(&name) {
                    return Err(ConfigError::new(
                        "modules.mod_offline.backend",
                        format!(
                            "`{}` is configured for backend `{}`, but the store given is `{name}`",
                            self.host_type,
                            backend.as_str(),
                        ),
                    )
                    .into());
                }
                store
            }
            StoreSource::Configured {
                storage,
                given: None,
            } => {
                // `mnesia` is disc-backed: RocksDB when it is built in, else memory.
                let storage = match self.options.backend {
                    BackendKind::Mnesia if !cfg!(feature = "rocksdb") && cfg!(feature = "mem") => {
                        StorageConfig::Memory
                    }
                    _ => storage,
                };
                open_backend(&storage).await.map_err(|err| match err {
                    // Name the backend as the configuration does.
                    ModuleError::BackendNotBuilt { feature, .. } => ModuleError::BackendNotBuilt {
                        backend: self.options.backend.as_str(),
                        feature,
                    },
                    other => other,
                })?
            }
        };
        match (self.options.backend, store.name()) {
            (BackendKind::Mnesia, "mem") => warn!(
                host_type = %self.host_type,
                "backend = \"mnesia\" is served in memory (offline-module is built without its \
                 `rocksdb` feature): offline messages will not survive a restart"
            ),
            (BackendKind::Memory, _) => info!(
                host_type = %self.host_type,
                "offline messages are kept in memory and lost on restart"
            ),
            _ => {}
        }
        let rule = self.options.access_max_user_messages.as_str();
        if !self.access.access.contains_key(rule) {
            warn!(
                rule,
                "the access rule for offline quotas is not defined: no limit applies"
            );
        }
        let instrumentation = Instrumentation::new(self.host_type.as_str(), self.metric_names);
        Ok(OfflineModule {
            store: InstrumentedBackend::new(store, instrumentation.clone()),
            host_type: self.host_type,
            domains: RwLock::new(self.domains),
            options: self.options,
            access: self.access,
            clock: self.clock,
            instrumentation,
        })
    }
}

impl OfflineModule {
    /// Starts building a module for `host_type` storing into `store`, with MongooseIM's default
    /// options and no access rules.
    pub fn builder(
        host_type: impl Into<String>,
        store: Arc<dyn OfflineBackend>,
    ) -> OfflineModuleBuilder {
        OfflineModuleBuilder {
            host_type: host_type.into(),
            store: StoreSource::Given(store),
            domains: BTreeSet::new(),
            options: ModuleOptions::default(),
            access: AccessConfig::default(),
            clock: Arc::new(SystemClock),
            metric_names: MetricNames::default(),
        }
    }

    /// A builder set up as a MongooseIM configuration file sets the module up for `host_type`
    /// (with its `[[host_config]]`, if any): options, access rules, metric names and the
    /// configured backend, which [`build`](OfflineModuleBuilder::build) opens unless a store is
    /// given with [`store`](OfflineModuleBuilder::store). A static host (`general.hosts`)
    /// serves its own domain; a host type of `general.host_types` starts with none, to be
    /// added with [`add_domain`](Self::add_domain).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use offline_module::{ManualClock, OfflineConfig, OfflineModule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let config = OfflineConfig::from_toml_str(
    ///     "[general]\nhosts = [\"localhost\"]\n[modules.mod_offline]\nbackend = \"memory\"",
    /// )?;
    /// let module = OfflineModule::from_config("localhost", &config)?
    ///     .clock(Arc::new(ManualClock::new(1_700_000_000_000_000)))
    ///     .build()
    ///     .await?;
    /// assert_eq!(module.host_type(), "localhost");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn from_config(
        host_type: &str,
        config: &OfflineConfig,
    ) -> Result<OfflineModuleBuilder, ConfigError> {
        let host = config.hosts.iter().find(|host| host.as_str() == host_type);
        if host.is_none() && !config.host_types.iter().any(|t| t == host_type) {
            return Err(ConfigError::new(
                "general.hosts",
                format!(
                    "host type `{host_type}` is in neither general.hosts nor general.host_types"
                ),
            ));
        }
        let settings = config.for_host(host_type);
        let (Some(options), Some(storage)) = (&settings.module, &settings.storage) else {
            return Err(ConfigError::new(
                "modules.mod_offline",
                format!("not enabled for `{host_type}`"),
            ));
        };
        Ok(OfflineModuleBuilder {
            host_type: host_type.to_owned(),
            store: StoreSource::Configured {
                storage: storage.clone(),
                given: None,
            },
            domains: host.cloned().into_iter().collect(),
            options: options.clone(),
            access: settings.access.clone(),
            clock: Arc::new(SystemClock),
            metric_names: config.metric_names,
        })
    }

    /// The host type.
    pub fn host_type(&self) -> &str {
        &self.host_type
    }

    /// The module's metrics, also for bouncing what it did not store.
    pub fn instrumentation(&self) -> &Instrumentation {
        &self.instrumentation
    }

    /// Starts serving a domain added at run time.
    pub fn add_domain(&self, domain: Domain) {
        self.domains
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(domain);
    }

    /// Handles a message for a user with no available resource (MongooseIM's `offline_message`
    /// hook), classified as [`classify`] says; a message to a full JID is stored for the bare
    /// JID.
    ///
    /// Refused with an error reply, before anything is stored: a message nesting deeper than
    /// `max_stanza_depth` (checked without recursion), one whose sender or recipient has no
    /// stable normal form ([`canonical_jid`], `jid-malformed`), one over 1 MiB written, one the
    /// server built with what XML cannot carry. Every element returned writes with `minidom`
    /// and parses back, whatever the sender sent.
    #[tracing::instrument(level = "debug", skip_all, fields(host_type = %self.host_type, %from, %to))]
    pub async fn offline_message(&self, from: &Jid, to: &Jid, message: &Element) -> Disposition {
        match classify(message, self.options.store_groupchat_messages) {
            Classification::Drop => Disposition::Dropped,
            Classification::Pass => Disposition::NotHandled,
            Classification::Store { offline_event } => {
                self.store_message(from, to, message, offline_event).await
            }
        }
    }

    /// Handles a groupchat message for a user with no available resource (MongooseIM's
    /// `offline_groupchat_message` hook): stored only with `store_groupchat_messages`; a message
    /// of any other type is not this hook's and is [`NotHandled`](Disposition::NotHandled).
    pub async fn offline_groupchat_message(
        &self,
        from: &Jid,
        to: &Jid,
        message: &Element,
    ) -> Disposition {
        if message.attr("type") != Some("groupchat") {
            return Disposition::NotHandled;
        }
        self.offline_message(from, to, message).await
    }

    async fn store_message(
        &self,
        from: &Jid,
        to: &Jid,
        message: &Element,
        notify_sender: bool,
    ) -> Disposition {
        if to.node().is_none() {
            debug!("a JID without a localpart owns no offline queue");
            return Disposition::NotHandled;
        }
        if !depth_within(message, self.options.max_stanza_depth) {
            self.instrumentation.rejected("too_deep");
            return Disposition::Refused(error_reply(from, to, message, &StanzaError::TOO_DEEP));
        }
        // One JID, one queue, and what is stored is delivered as it was addressed: both
        // addresses must have a stable normal form.
        let (Ok(sender), Ok(recipient)) = (canonical_jid(from), canonical_jid(to)) else {
            self.instrumentation.rejected("jid_malformed");
            let reply = error_reply(from, to, message, &StanzaError::JID_MALFORMED);
            return Disposition::Refused(reply);
        };
        let Ok(user) = UserKey::try_from(&recipient) else {
            self.instrumentation.rejected("jid_malformed");
            let reply = error_reply(from, to, message, &StanzaError::JID_MALFORMED);
            return Disposition::Refused(reply);
        };
        let now = self.clock.now();
        let timestamp = match self.options.trust_sender_delay {
            // A stamp from the future would dodge purges by age: it counts as now.
            true => sender_stamp(message).map_or(now, |stamp| stamp.min(now)),
            false => now,
        };
        let Some(packet) = serialize(&plain_copy(message, &is_delay)) else {
            self.instrumentation.rejected("malformed");
            return Disposition::Refused(error_reply(from, to, message, &StanzaError::MALFORMED));
        };
        if packet.len() > MAX_PACKET_BYTES {
            self.instrumentation.rejected("too_large");
            return Disposition::Refused(error_reply(from, to, message, &StanzaError::TOO_LARGE));
        }
        let record = NewMessage {
            timestamp,
            expire: expiry(message, timestamp),
            from: sender.to_string(),
            to: recipient.to_string(),
            packet,
            dedupe_key: dedupe_key(&sender, message),
            permanent_fields: None,
        };
        let quota = self
            .access
            .quota(self.options.access_max_user_messages.as_str(), &user);
        match self
            .store
            .write_messages(&user, vec![record], quota, now)
            .await
        {
            Ok(report) if report.expired > 0 => {
                self.instrumentation.expired_dropped(report.expired);
                Disposition::Dropped
            }
            Ok(report) => {
                self.instrumentation.stored(report.stored);
                let event = notify_sender && report.stored > 0;
                Disposition::Stored {
                    notify_sender: event.then(|| offline_event(from, to, message)),
                    duplicate: report.duplicates > 0,
                }
            }
            Err(OfflineError::QuotaExceeded { .. }) => {
                self.instrumentation.rejected("quota");
                Disposition::Refused(error_reply(from, to, message, &StanzaError::QUEUE_FULL))
            }
            Err(err) => {
                error!(error = %err, source = ?std::error::Error::source(&err), "storing an offline message failed");
                self.instrumentation.rejected("backend");
                Disposition::Refused(error_reply(from, to, message, &StanzaError::STORE_FAILED))
            }
        }
    }

    /// Takes the user's stored messages for delivery after an available presence with a
    /// non-negative priority (MongooseIM's `resend_offline_messages`): in arrival order, the
    /// expired ones dropped, each with its delay stamp. If the store fails, nothing is delivered
    /// and nothing is lost.
    #[tracing::instrument(level = "debug", skip_all, fields(host_type = %self.host_type, %user))]
    pub async fn resend_offline_messages(&self, user: &Jid) -> Result<Vec<Delivery>, ModuleError> {
        let key = UserKey::try_from(user)?;
        let popped = self
            .store
            .pop_messages(&key, self.clock.now())
            .await
            .inspect_err(|err| warn!(error = %err, "popping offline messages failed"))?;
        let now = self.clock.now();
        let (live, expired): (Vec<_>, Vec<_>) =
            popped.into_iter().partition(|s| !s.message.is_expired(now));
        self.instrumentation.expired_dropped(expired.len() as u64);
        Ok(live
            .into_iter()
            .filter_map(|stored| delivery(&key, stored))
            .collect())
    }

    /// A page of the user's stored messages for at-least-once delivery, without removing
    /// them: up to `limit` messages after seq `after`, in arrival order, each with its delay
    /// stamp. The server writes them to the client and, once it knows they arrived, removes
    /// [`PendingPage::seqs`] with [`remove_delivered`](Self::remove_delivered), then asks for
    /// the next page after the last of those seqs. A connection lost on the way loses
    /// nothing: what was not removed is delivered at the next login.
    #[tracing::instrument(level = "debug", skip_all, fields(host_type = %self.host_type, %user))]
    pub async fn pending_messages(
        &self,
        user: &Jid,
        after: Option<u64>,
        limit: usize,
    ) -> Result<PendingPage, ModuleError> {
        let key = UserKey::try_from(user)?;
        let held = self
            .store
            .fetch_messages(&key, after, Some(limit), self.clock.now())
            .await
            .inspect_err(|err| warn!(error = %err, "fetching offline messages failed"))?;
        let seqs = held.iter().map(|stored| stored.seq).collect();
        Ok(PendingPage {
            deliveries: held
                .into_iter()
                .filter_map(|stored| delivery(&key, stored))
                .collect(),
            seqs,
        })
    }

    /// Removes messages of a [`PendingPage`] once they reached the client; returns how many
    /// were still held.
    #[tracing::instrument(level = "debug", skip_all, fields(host_type = %self.host_type, %user))]
    pub async fn remove_delivered(&self, user: &Jid, seqs: &[u64]) -> Result<u64, ModuleError> {
        let key = UserKey::try_from(user)?;
        Ok(self.store.remove_messages(&key, seqs).await?)
    }

    /// Removes a user's messages (the `remove_user` hook, also the GDPR removal); returns how
    /// many.
    #[tracing::instrument(level = "debug", skip(self), fields(host_type = %self.host_type))]
    pub async fn remove_user(&self, user: &Jid) -> Result<u64, ModuleError> {
        let removed = self.store.remove_user(&UserKey::try_from(user)?).await?;
        self.instrumentation.purged("user", removed);
        Ok(removed)
    }

    /// Removes a domain's messages and stops serving it (the `remove_domain` hook); returns
    /// how many messages were removed.
    #[tracing::instrument(level = "debug", skip(self), fields(host_type = %self.host_type))]
    pub async fn remove_domain(&self, domain: &Domain) -> Result<u64, ModuleError> {
        let removed = self.store.remove_domain(domain).await?;
        self.domains
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(domain);
        self.instrumentation.purged("domain", removed);
        Ok(removed)
    }

    /// Removes a served domain's expired messages; returns how many.
    #[tracing::instrument(level = "debug", skip(self), fields(host_type = %self.host_type))]
    pub async fn remove_expired_messages(&self, domain: &str) -> Result<u64, ModuleError> {
        let domain = self.served(domain)?;
        let removed = self
            .store
            .remove_expired_messages(&domain, self.clock.now())
            .await?;
        self.instrumentation.purged("expired", removed);
        Ok(removed)
    }

    /// Removes a served domain's messages stored more than `days` days ago (`days >= 1`);
    /// returns how many.
    #[tracing::instrument(level = "debug", skip(self), fields(host_type = %self.host_type))]
    pub async fn remove_old_messages(&self, domain: &str, days: u32) -> Result<u64, ModuleError> {
        if days < 1 {
            return Err(ModuleError::InvalidDays { days });
        }
        let domain = self.served(domain)?;
        let cutoff = self
            .clock
            .now()
            .saturating_sub(DAY.saturating_mul(days.into()));
        let removed = self.store.remove_old_messages(&domain, cutoff).await?;
        self.instrumentation.purged("old", removed);
        Ok(removed)
    }

    /// Counts what the store holds for the module's domains (users with messages, messages,
    /// bytes; expired messages not yet purged included) and sets the `mod_offline_held_*`
    /// gauges. It lists the users a page at a time and counts each queue, so its cost grows
    /// with the users holding messages: run it every minute or so, not per message. A failure
    /// counts in `mod_offline_held_failed` and leaves the gauges as they were.
    #[tracing::instrument(level = "debug", skip(self), fields(host_type = %self.host_type))]
    pub async fn count_held(&self) -> Result<Held, ModuleError> {
        let result = self.walk_held().await;
        match result {
            Ok(held) => self.instrumentation.held(held),
            Err(_) => self.instrumentation.held_failed(),
        }
        result
    }

    async fn walk_held(&self) -> Result<Held, ModuleError> {
        const PAGE: usize = 1000;
        let domains: Vec<Domain> = self
            .domains
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        let mut held = Held::default();
        for domain in &domains {
            let mut after = None;
            loop {
                let users = self
                    .store
                    .list_users(Some(domain), after.as_ref(), PAGE)
                    .await?;
                for user in &users {
                    let stats = self.store.count_messages(user).await?;
                    if stats.messages > 0 {
                        held.users += 1;
                    }
                    held.messages += stats.messages;
                    held.bytes += stats.bytes;
                }
                match users.into_iter().last() {
                    Some(last) => after = Some(last),
                    None => break,
                }
            }
        }
        Ok(held)
    }

    /// The user's GDPR export: every message held for them, in arrival order (columns
    /// [`PERSONAL_DATA_FIELDS`]).
    #[tracing::instrument(level = "debug", skip(self), fields(host_type = %self.host_type))]
    pub async fn personal_data(&self, user: &Jid) -> Result<Vec<PersonalDataRow>, ModuleError> {
        let key = UserKey::try_from(user)?;
        // At the earliest time nothing has expired: the export covers everything held.
        let held = self
            .store
            .fetch_messages(&key, None, None, i64::MIN)
            .await?;
        Ok(held
            .into_iter()
            .map(|stored| PersonalDataRow {
                timestamp: format_stamp_seconds(stored.message.timestamp),
                from: stored.message.from,
                to: key.to_string(),
                packet: stored.message.packet,
            })
            .collect())
    }

    /// Service discovery features of the server (`disco#info` to the domain) at `node`:
    /// `msgoffline` at the root node.
    pub fn disco_local_features(&self, node: &str) -> Vec<&'static str> {
        if node.is_empty() {
            vec![FEATURE_MSGOFFLINE]
        } else {
            Vec::new()
        }
    }

    /// Service discovery features of a user's bare JID at `node`, asked by someone who is
    /// (`presence_subscribed`) or is not subscribed to the user's presence: `msgoffline` at the
    /// root node for subscribers, as in MongooseIM.
    pub fn disco_sm_features(&self, node: &str, presence_subscribed: bool) -> Vec<&'static str> {
        if presence_subscribed {
            self.disco_local_features(node)
        } else {
            Vec::new()
        }
    }

    fn served(&self, domain: &str) -> Result<Domain, ModuleError> {
        let domain = Domain::new(domain)?;
        let domains = self.domains.read().unwrap_or_else(PoisonError::into_inner);
        if domains.contains(&domain) {
            Ok(domain)
        } else {
            Err(ModuleError::UnknownDomain {
                domain: domain.to_string(),
                host_type: self.host_type.clone(),
            })
        }
    }
}

/// What the store holds for a module's domains: [`OfflineModule::count_held`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Users with at least one message.
    pub users: u64,
    /// Messages, expired ones not yet purged included.
    pub messages: u64,
    /// Bytes of their packets.
    pub bytes: u64,
}

/// `mod_offline_stub`: swallows offline messages the module did not store, so that no 503
/// bounce is sent (for servers where MAM keeps the history).
#[derive(Clone, Copy, Debug, Default)]
pub struct OfflineStub;

impl OfflineStub {
    /// Handles a message nothing stored: it is dropped silently.
    pub fn offline_message(&self, _from: &Jid, _to: &Jid, _message: &Element) -> Disposition {
        Disposition::Dropped
    }
}

/// Whether a top-level child is a XEP-0203 or XEP-0091 delay stamp, which storing strips.
fn is_delay(child: &Element) -> bool {
    child.is("delay", ns::DELAY) || child.is("x", ns::DELAY_LEGACY)
}

/// XEP-0023: `<x xmlns='jabber:x:expire' seconds='N'/>` with N > 0 expires the message N
/// seconds after `timestamp`; as in MongooseIM only the first such element counts.
fn expiry(message: &Element, timestamp: i64) -> Option<i64> {
    let expire = message.get_child("x", ns::EXPIRE)?;
    let seconds: i64 = expire.attr("seconds")?.trim().parse().ok()?;
    (seconds > 0).then(|| timestamp.saturating_add(seconds.saturating_mul(1_000_000)))
}

/// XEP-0359: a message's `<origin-id/>` with its sender's bare JID identifies resends.
fn dedupe_key(from: &Jid, message: &Element) -> Option<String> {
    let id = message.get_child("origin-id", ns::SID)?.attr("id")?;
    let key = format!("{} {id}", from.to_bare());
    (!id.is_empty() && key.len() <= MAX_DEDUPE_KEY_BYTES).then_some(key)
}

/// A stored message as a stanza to route, or `None` (logged) if the stored data is corrupt,
/// which the module's own checks on arrival rule out (addresses in canonical form, a packet
/// the module wrote itself, within the depth limit).
fn delivery(user: &UserKey, stored: StoredMessage) -> Option<Delivery> {
    let message = stored.message;
    let parsed = (|| {
        let from = Jid::new(&message.from).map_err(|e| format!("sender: {e}"))?;
        let to = Jid::new(&message.to).map_err(|e| format!("recipient: {e}"))?;
        let parsed = parse_packet(&message.packet).map_err(|e| format!("packet: {e}"))?;
        // Without the prefix declarations the stored text carries, so that it writes back.
        let stanza = writable_copy(&parsed, MAX_DEPTH_LIMIT).ok_or_else(|| {
            format!("packet: nested deeper than {MAX_DEPTH_LIMIT} levels, or not writable")
        })?;
        Ok::<_, String>((from, to, stanza))
    })();
    match parsed {
        Ok((from, to, mut stanza)) => {
            if stanza.attr("from").is_none() {
                set_attr(&mut stanza, xml_ncname!("from"), from.as_str());
            }
            if stanza.attr("to").is_none() {
                set_attr(&mut stanza, xml_ncname!("to"), to.as_str());
            }
            stanza.append_child(delay_element(user.server(), message.timestamp));
            Some(Delivery {
                seq: stored.seq,
                from,
                to,
                stanza,
                permanent_fields: message.permanent_fields,
            })
        }
        Err(reason) => {
            error!(%user, seq = stored.seq, bytes = message.packet.len(), %reason, "dropping a corrupt offline message");
            None
        }
    }
}
