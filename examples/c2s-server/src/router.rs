//! Who is connected, and where a stanza goes: to a session, to `mod_offline`, or back to its
//! sender as an error.
//!
//! Each user has a gate (an async mutex) held while a message to them is routed or stored,
//! and while one of their sessions becomes available or unavailable. So a message either was
//! stored before the user became available, and the delivery that follows fetches it, or it
//! finds the available session and goes to it live.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use offline_module::jid::{BareJid, FullJid, Jid};
use offline_module::minidom::Element;
use offline_module::stanza::{StanzaError, error_reply, user_not_found_reply};
use offline_module::{Disposition, OfflineModule};
use tokio::sync::mpsc;

use crate::auth::Accounts;

/// Messages to a domain this server does not serve (it has no server-to-server links).
const REMOTE: StanzaError = StanzaError {
    code: "404",
    kind: "cancel",
    condition: "remote-server-not-found",
    text: "This server does not route to other domains.",
};

/// An iq to a session that ended before it could answer.
const GONE: StanzaError = StanzaError {
    code: "503",
    kind: "cancel",
    condition: "service-unavailable",
    text: "The session ended.",
};

/// What a session is sent by the router.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A stanza to write to the client.
    Stanza(Element),
    /// Deliver the stored messages: the session that was delivering them ended.
    Deliver,
}

/// A bound session, as the router sees it.
#[derive(Debug)]
struct Resource {
    /// Tells this session from a later one on the same resource.
    session: u64,
    /// The session's queue.
    tx: mpsc::UnboundedSender<Outbound>,
    /// The priority of the session's available presence; `None` while unavailable.
    priority: Option<i8>,
}

/// One user's sessions.
#[derive(Debug, Default)]
struct User {
    resources: BTreeMap<String, Resource>,
    /// The session delivering the stored messages, if one is.
    delivering: Option<u64>,
}

/// What happened to a session's available presence.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Availability {
    /// The session now delivers the user's stored messages: it alone, until it calls
    /// [`Router::delivered`].
    Deliver,
    /// Nothing to deliver on this session.
    Nothing,
}

/// The server's shared state.
pub(crate) struct Router {
    modules: BTreeMap<String, Arc<OfflineModule>>,
    accounts: Accounts,
    users: Mutex<HashMap<BareJid, Arc<tokio::sync::Mutex<User>>>>,
    next_session: std::sync::atomic::AtomicU64,
    max_stanza_size: usize,
    ping_timeout: Duration,
}

impl Router {
    /// A router for the domains of `modules`, whose clients send stanzas of up to
    /// `max_stanza_size` bytes and answer pings within `ping_timeout`.
    pub(crate) fn new(
        modules: BTreeMap<String, Arc<OfflineModule>>,
        accounts: Accounts,
        max_stanza_size: usize,
        ping_timeout: Duration,
    ) -> Self {
        Self {
            modules,
            accounts,
            users: Mutex::default(),
            next_session: 1.into(),
            max_stanza_size,
            ping_timeout,
        }
    }

    /// How long a client may take to answer a ping of the server's.
    pub(crate) fn ping_timeout(&self) -> Duration {
        self.ping_timeout
    }

    /// The largest stanza a client may send, in bytes.
    pub(crate) fn max_stanza_size(&self) -> usize {
        self.max_stanza_size
    }

    /// The served domains.
    pub(crate) fn domains(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }

    /// The module serving `domain`.
    pub(crate) fn module(&self, domain: &str) -> Option<&Arc<OfflineModule>> {
        self.modules.get(domain)
    }

    /// Every domain's module.
    pub(crate) fn modules(&self) -> impl Iterator<Item = &Arc<OfflineModule>> {
        self.modules.values()
    }

    /// The accounts.
    pub(crate) fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    fn user(&self, jid: &BareJid) -> Arc<tokio::sync::Mutex<User>> {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(users.entry(jid.clone()).or_default())
    }

    /// Binds a session to `jid`'s `resource` (another if that is taken); returns its full
    /// JID, its id and its queue.
    pub(crate) async fn bind(
        &self,
        jid: &BareJid,
        resource: Option<&str>,
    ) -> Option<(FullJid, u64, mpsc::UnboundedReceiver<Outbound>)> {
        let user = self.user(jid);
        let mut user = user.lock().await;
        let requested = resource.filter(|r| !r.is_empty());
        let taken = |name: &str| user.resources.contains_key(name);
        let name = match requested {
            Some(name) if !taken(name) => name.to_owned(),
            // RFC 6120 §7.7.2.2: the server may give the new session another resource.
            Some(name) => format!("{name}-{:08x}", fastrand::u32(..)),
            None => format!("{:016x}", fastrand::u64(..)),
        };
        let full = jid.with_resource_str(&name).ok()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let session = self
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        user.resources.insert(
            full.resource().to_string(),
            Resource {
                session,
                tx,
                priority: None,
            },
        );
        Some((full, session, rx))
    }

    /// Removes a session that ended.
    pub(crate) async fn unbind(&self, jid: &FullJid, session: u64) {
        let user = self.user(&jid.to_bare());
        let mut user = user.lock().await;
        let resource = jid.resource().as_str();
        if user
            .resources
            .get(resource)
            .is_some_and(|r| r.session == session)
        {
            user.resources.remove(resource);
        }
        if user.delivering == Some(session) {
            // The available session of the highest priority takes the delivery over.
            let next = user
                .resources
                .values()
                .filter(|r| available(r.priority))
                .max_by_key(|r| r.priority)
                .map(|r| (r.session, r.tx.clone()));
            user.delivering = next.as_ref().map(|(session, _)| *session);
            if let Some((_, tx)) = next {
                let _ = tx.send(Outbound::Deliver);
            }
        }
    }

    /// The session sent presence: available with `priority`, or unavailable (`None`).
    pub(crate) async fn presence(
        &self,
        jid: &FullJid,
        session: u64,
        priority: Option<i8>,
    ) -> Availability {
        let user = self.user(&jid.to_bare());
        let mut user = user.lock().await;
        let Some(resource) = user.resources.get_mut(jid.resource().as_str()) else {
            return Availability::Nothing;
        };
        let was_available = available(resource.priority);
        resource.priority = priority;
        let now_available = available(priority);
        if now_available && !was_available && user.delivering.is_none() {
            user.delivering = Some(session);
            Availability::Deliver
        } else {
            Availability::Nothing
        }
    }

    /// The session that was delivering the stored messages is done.
    pub(crate) async fn delivered(&self, jid: &FullJid, session: u64) {
        let user = self.user(&jid.to_bare());
        let mut user = user.lock().await;
        if user.delivering == Some(session) {
            user.delivering = None;
        }
    }

    /// Routes a message from a local session; replies to the sender go where they belong.
    pub(crate) async fn message(&self, from: Jid, to: Jid, message: Element) {
        let mut work = vec![(from, to, message)];
        while let Some((from, to, message)) = work.pop() {
            if let Some(reply) = self.route_message(&from, &to, message).await {
                // Replies go back to the sender: a local session, or nowhere.
                if let Ok(back) = reply.attr("to").unwrap_or_default().parse::<Jid>() {
                    work.push((to, back, reply));
                }
            }
        }
    }

    /// Routes one message; returns a reply for its sender, if any.
    async fn route_message(&self, from: &Jid, to: &Jid, message: Element) -> Option<Element> {
        // Never an error in reply to an error (RFC 6120 §8.3.1).
        let error = message.attr("type") == Some("error");
        let Some(module) = self.modules.get(to.domain().as_str()) else {
            return (!error).then(|| error_reply(from, to, &message, &REMOTE));
        };
        let Some(node) = to.node() else {
            // Messages to the server itself: nothing here answers them.
            return None;
        };
        let bare = BareJid::from_parts(Some(node), to.domain());
        if !self.accounts.exists(&bare) {
            return (!error).then(|| user_not_found_reply(from, to, &message));
        }
        let user = self.user(&bare);
        let user = user.lock().await;
        // To a full JID whose session is bound: to it, available or not.
        if let Some(session) = to.resource().and_then(|r| user.resources.get(r.as_str())) {
            let _ = session.tx.send(Outbound::Stanza(message));
            return None;
        }
        // Otherwise to the available sessions of the highest non-negative priority.
        let best = user.resources.values().filter_map(|r| r.priority).max();
        if let Some(best) = best.filter(|p| available(Some(*p))) {
            for session in user.resources.values().filter(|r| r.priority == Some(best)) {
                let _ = session.tx.send(Outbound::Stanza(message.clone()));
            }
            return None;
        }
        // No available resource: mod_offline decides, with the user's gate held (see the
        // module's documentation).
        match module.offline_message(from, to, &message).await {
            Disposition::Stored { notify_sender, .. } => notify_sender,
            Disposition::Dropped => None,
            Disposition::Refused(reply) => Some(reply),
            Disposition::NotHandled => Some(module.instrumentation().bounce(from, to, &message)),
        }
    }

    /// Routes again what reached a session that ended before writing it: a message goes
    /// where it would have gone without that session (another one, or offline storage); an
    /// iq request gets its error reply.
    pub(crate) async fn reroute(&self, stanza: Element) {
        let address = |name: &str| stanza.attr(name).and_then(|a| a.parse::<Jid>().ok());
        let (Some(from), Some(to)) = (address("from"), address("to")) else {
            return;
        };
        match stanza.name() {
            "message" => self.message(from, to, stanza).await,
            "iq" if matches!(stanza.attr("type"), Some("get" | "set")) => {
                let reply = error_reply(&from, &to, &stanza, &GONE);
                let _ = self.iq(&from, reply).await;
            }
            _ => {}
        }
    }

    /// Routes an iq from a local session to another user's session; returns the error reply
    /// if there is no such session.
    pub(crate) async fn iq(&self, to: &Jid, iq: Element) -> Result<(), Element> {
        if let (Some(node), Some(resource)) = (to.node(), to.resource()) {
            let bare = BareJid::from_parts(Some(node), to.domain());
            if !self.accounts.exists(&bare) {
                return Err(iq);
            }
            let user = self.user(&bare);
            let user = user.lock().await;
            if let Some(session) = user.resources.get(resource.as_str()) {
                let _ = session.tx.send(Outbound::Stanza(iq));
                return Ok(());
            }
        }
        Err(iq)
    }
}

/// Whether a session with this presence priority is available (RFC 6121: sent available
/// presence with a non-negative priority); `None`: no available presence sent.
fn available(priority: Option<i8>) -> bool {
    priority.is_some_and(|p| p >= 0)
}
