//! An example XMPP server built on `offline-module`: client-to-server connections on one
//! node, with offline messages stored, refused, bounced and delivered as MongooseIM's
//! `mod_offline` does.
//!
//! What it does: RFC 6120 stream negotiation (STARTTLS with the configured certificate or a
//! self-signed one made at start; SASL PLAIN against the accounts of the configuration;
//! resource binding), presence (available with a priority, unavailable), routing of messages
//! between local users, `disco#info` with `msgoffline`, and pings. It has no rosters,
//! subscriptions, server-to-server links or stream management: it shows where the module
//! goes in a server, not a server to deploy.
//!
//! # Where `mod_offline` comes in
//!
//! - A message to an account with no available session (none, or only negative priorities)
//!   goes to [`OfflineModule::offline_message`](offline_module::OfflineModule::offline_message)
//!   and every [`Disposition`](offline_module::Disposition) is acted on: a stored message
//!   may send the sender a XEP-0022 event, a refusal (queue full, store failed) goes back to
//!   the sender, a message the module does not handle gets the 503 bounce, a dropped one
//!   nothing. A message to a user without an account gets MongooseIM's 503 "User not found".
//! - A session's first available presence with a non-negative priority starts the delivery
//!   of the stored messages on that session: a page of them is fetched
//!   ([`pending_messages`](offline_module::OfflineModule::pending_messages)) and written,
//!   followed by a ping. Its answer proves the client read the page, since a stream is read
//!   in order; only then is the page removed
//!   ([`remove_delivered`](offline_module::OfflineModule::remove_delivered)) and the next one
//!   fetched. A connection that drops during delivery loses nothing: what was not confirmed
//!   is delivered again at the next login (at least once: a client that read a page and left
//!   before answering the ping gets that page twice).
//!
//! # Metrics
//!
//! With `c2s_server.metrics_listen = "127.0.0.1:9125"`, the binary installs a Prometheus
//! recorder serving `http://127.0.0.1:9125/metrics`: what the modules record as messages pass
//! (`mod_offline_{backend}_count` and `_time` per `write_messages`/`pop_messages`,
//! `sm_message_bounced_count`, stored, rejected, purged), under MongooseIM's names, and the
//! `mod_offline_held_*` gauges counted every minute
//! ([`count_held`](offline_module::OfflineModule::count_held)). The library installs no
//! recorder: that is the binary's choice, as it is any server's.
//!
//! With `c2s_server.purge_expired_every = 3600`, every domain's expired messages are removed
//! every hour by the server itself
//! ([`Server::purge_expired_every`]): a RocksDB store admits no second process, so an
//! `offlinectl delete-expired` run beside the server would find it locked.
//!
//! # Order of stored and live messages
//!
//! A user's gate (see `router`) makes a message either stored before the session became
//! available, or routed live to it. While the stored messages are delivered, the live
//! messages that reach the session wait in it and are written after the last stored page:
//! on the session that delivers, stored messages come first, in arrival order, then live
//! ones in the order they came. If the session ends first, what waited in it is routed
//! again (to another session, or to storage), so it is not lost either.
//!
//! A live message can overtake stored ones:
//! - on another session of the same user that became available meanwhile (only one session
//!   delivers; it gets the live messages of its priority at once);
//! - when it is sent to the full JID of a bound session: it goes to that session at once,
//!   available or not, so before the stored messages if the session has not sent available
//!   presence yet or has a negative priority;
//! - when the store fails during delivery: what is left waits for the next login, and live
//!   messages flow at once.
//!
//! A delivery that started goes on to the end even if its session then sends unavailable
//! presence or a negative priority: messages to the bare JID sent meanwhile are stored, and
//! delivered on that session as the delivery reaches them.
//!
//! # Limits
//!
//! A stanza may be `c2s_server.max_stanza_size` bytes and nest 256 levels (the module's
//! highest `max_stanza_depth`); both are checked on the bytes before the parser builds the
//! element, and a larger or deeper one ends the stream with `policy-violation`. A client
//! must answer the server's pings, and read what it is sent, within `c2s_server.ping_timeout`.
//! Live messages waiting behind a delivery, and each session's queue, are not bounded: a
//! client that never confirms a page is disconnected after `ping_timeout`, which bounds them
//! in time.

mod auth;
mod config;
mod depth;
mod router;
mod session;
mod tls;
mod xml;

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use offline_module::offline_core::OfflineBackend;
use offline_module::{
    ConfigError, ModuleError, OfflineModule, StorageConfig, TIME_BUCKETS, describe_metrics,
    open_once,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

pub use config::{DEFAULT_CONFIG, ServerConfig};
pub use tls::self_signed_files;

use auth::Accounts;
use router::Router;

/// How often what the stores hold is counted for the `mod_offline_held_*` gauges.
const COUNT_HELD_EVERY: Duration = Duration::from_secs(60);

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration error, naming the key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `mod_offline` or its store cannot start.
    #[error("mod_offline: {0}")]
    Module(#[from] ModuleError),
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The metrics endpoint cannot be served.
    #[error("metrics on {listen}: {source}")]
    Metrics {
        /// The configured address.
        listen: SocketAddr,
        /// What went wrong.
        source: BuildError,
    },
    /// The listening socket cannot be opened.
    #[error("listening on {address}: {source}")]
    Listen {
        /// The configured address.
        address: SocketAddr,
        /// What the system said.
        source: io::Error,
    },
}

/// A server listening for clients.
pub struct Server {
    listener: TcpListener,
    router: Arc<Router>,
    tls: TlsAcceptor,
}

impl Server {
    /// Opens `mod_offline` for every domain of `config` (one store for the domains that
    /// share a storage configuration), sets TLS up and listens.
    pub async fn bind(config: &ServerConfig) -> Result<Self, Error> {
        let mut stores: Vec<(StorageConfig, Arc<dyn OfflineBackend>)> = Vec::new();
        let mut modules = BTreeMap::new();
        for domain in &config.offline.hosts {
            let host = domain.as_str();
            let mut builder = OfflineModule::from_config(host, &config.offline)?;
            if let Some(storage) = &config.offline.for_host(host).storage {
                builder = builder.store(open_once(&mut stores, storage).await?);
            }
            modules.insert(host.to_owned(), Arc::new(builder.build().await?));
        }
        let tls = match &config.tls_files {
            Some((certificate, key)) => tls::from_files(certificate, key)?,
            None => tls::self_signed(modules.keys().cloned().collect())?,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Listen {
                address: config.listen,
                source,
            })?;
        let accounts = Accounts::new(config.accounts.clone());
        Ok(Self {
            listener,
            router: Arc::new(Router::new(
                modules,
                accounts,
                config.max_stanza_size,
                config.ping_timeout,
            )),
            tls,
        })
    }

    /// The address clients connect to (the port chosen when the configuration says 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The `mod_offline` serving `domain`.
    pub fn module(&self, domain: &str) -> Option<Arc<OfflineModule>> {
        self.router.module(domain).cloned()
    }

    /// Installs a Prometheus recorder as the process's metrics recorder, serving at `listen`:
    /// every metric the modules record, and their `mod_offline_held_*` gauges counted every
    /// minute. Once per process: a second recorder is refused.
    pub fn serve_metrics(&self, listen: SocketAddr) -> Result<(), Error> {
        PrometheusBuilder::new()
            .with_http_listener(listen)
            .set_buckets_for_metric(Matcher::Suffix("_time".into()), TIME_BUCKETS)
            .and_then(PrometheusBuilder::install)
            .map_err(|source| Error::Metrics { listen, source })?;
        describe_metrics();
        let modules: Vec<Arc<OfflineModule>> = self.router.modules().cloned().collect();
        tokio::spawn(async move {
            let mut rounds = tokio::time::interval(COUNT_HELD_EVERY);
            loop {
                rounds.tick().await;
                for module in &modules {
                    if let Err(error) = module.count_held().await {
                        tracing::warn!(host_type = module.host_type(), %error, "counting the store");
                    }
                }
            }
        });
        Ok(())
    }

    /// Removes every domain's expired messages every `every`, on a task of its own: the
    /// scheduled purge, inside the process that holds the store (a RocksDB store admits no
    /// second process). A failure is logged; the next round tries again.
    pub fn purge_expired_every(&self, every: Duration) {
        let domains: Vec<(String, Arc<OfflineModule>)> = self
            .router
            .domains()
            .filter_map(|domain| Some((domain.to_owned(), Arc::clone(self.router.module(domain)?))))
            .collect();
        tokio::spawn(async move {
            let mut rounds = tokio::time::interval(every);
            loop {
                rounds.tick().await;
                for (domain, module) in &domains {
                    match module.remove_expired_messages(domain).await {
                        Ok(0) => {}
                        Ok(removed) => info!(%domain, removed, "expired messages removed"),
                        Err(error) => warn!(%domain, %error, "removing expired messages"),
                    }
                }
            }
        });
    }

    /// Serves clients until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        info!(%peer, "client connected");
                        let _ = socket.set_nodelay(true);
                        let router = Arc::clone(&self.router);
                        tokio::spawn(session::serve(router, self.tls.clone(), socket));
                    }
                    Err(error) => {
                        // Out of file descriptors, say: let sessions end before trying again.
                        warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                () = &mut shutdown => return,
            }
        }
    }
}
