//! One client connection: stream negotiation (STARTTLS, SASL, resource binding), then the
//! bound session's stanzas, and the delivery of its stored messages.

use std::io;
use std::sync::Arc;

use offline_module::OfflineModule;
use offline_module::jid::{BareJid, FullJid, Jid};
use offline_module::minidom::Element;
use offline_module::minidom::rxml::Namespace;
use offline_module::offline_core::Domain;
use offline_module::stanza::{StanzaError, error_reply};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};
use xmpp_parsers::sasl::{Auth, Mechanism};

use crate::auth::{MECHANISMS, Refusal};
use crate::router::{Availability, Outbound, Router};
use crate::xml::{self, JABBER_CLIENT, Read, Reader, Writer};

/// An attribute name.
macro_rules! name {
    ($name:literal) => {
        offline_module::minidom::rxml::xml_ncname!($name).to_owned()
    };
}

/// Stored messages written per round trip of delivery (see [`Session::next_page`]).
const DELIVERY_PAGE: usize = 50;
/// Failed logins before the connection is closed.
const LOGIN_ATTEMPTS: u32 = 3;

const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
const NS_PING: &str = "urn:xmpp:ping";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_ROSTER: &str = "jabber:iq:roster";

/// An iq the server does not answer.
const IQ_UNSUPPORTED: StanzaError = StanzaError {
    code: "503",
    kind: "cancel",
    condition: "service-unavailable",
    text: "This server does not answer this request.",
};
/// A `to` that is not a JID.
const BAD_ADDRESS: StanzaError = StanzaError {
    code: "400",
    kind: "modify",
    condition: "jid-malformed",
    text: "The recipient's address is not a JID.",
};
/// An iq whose type is not one of RFC 6120's four.
const BAD_IQ: StanzaError = StanzaError {
    code: "400",
    kind: "modify",
    condition: "bad-request",
    text: "An iq is of type get, set, result or error.",
};
/// A resource that is not a valid resourcepart.
const BAD_RESOURCE: StanzaError = StanzaError {
    code: "400",
    kind: "modify",
    condition: "bad-request",
    text: "The resource cannot be bound.",
};

/// Serves one client connection until it ends.
pub(crate) async fn serve(router: Arc<Router>, tls: TlsAcceptor, socket: TcpStream) {
    let login = match negotiate(&router, &tls, socket).await {
        Ok(Some(login)) => login,
        Ok(None) => return,
        Err(error) => {
            debug!(%error, "connection ended before login");
            return;
        }
    };
    let Some(module) = router.module(login.jid.domain().as_str()).cloned() else {
        // Negotiation only binds accounts of served domains.
        router.unbind(&login.jid, login.session).await;
        return;
    };
    let mut session = Session {
        router: &router,
        module,
        jid: login.jid,
        id: login.session,
        writer: login.writer,
        delivery: None,
        held: Vec::new(),
        pings: 0,
    };
    let mut rx = login.rx;
    let result = session.run(login.reader, &mut rx).await;
    router.unbind(&session.jid, session.id).await;
    // Unbound, the session gets nothing more: what reached it and was not written goes
    // where it would have gone without it.
    let mut left = std::mem::take(&mut session.held);
    while let Ok(outbound) = rx.try_recv() {
        if let Outbound::Stanza(stanza) = outbound {
            left.push(stanza);
        }
    }
    for stanza in left {
        router.reroute(stanza).await;
    }
    match result {
        Ok(()) => {
            let _ = session.writer.close().await;
        }
        Err(error) => debug!(jid = %session.jid, %error, "session ended"),
    }
}

/// A logged-in, bound client.
struct Login {
    reader: Reader,
    writer: Writer,
    jid: FullJid,
    session: u64,
    rx: mpsc::UnboundedReceiver<Outbound>,
}

/// RFC 6120 stream negotiation: STARTTLS (offered, not required), SASL, resource binding.
/// `None`: the client left or was refused (a stream error was sent).
async fn negotiate(
    router: &Router,
    tls: &TlsAcceptor,
    socket: TcpStream,
) -> io::Result<Option<Login>> {
    let mut transport: xml::Boxed = Box::new(socket);
    let mut encrypted = false;
    'transport: loop {
        let (mut read, mut writer) =
            xml::split(transport, router.max_stanza_size(), router.ping_timeout());
        let mut account: Option<BareJid> = None;
        let mut failures = 0;
        loop {
            let timeouts = xml::timeouts(account.is_some(), router.ping_timeout());
            let (mut reader, to) = xml::accept(read, timeouts).await?;
            let domain = to
                .and_then(|to| Domain::new(&to).ok())
                .filter(|d| router.module(d.as_str()).is_some());
            let Some(domain) = domain else {
                let any = router.domains().next().unwrap_or_default().to_owned();
                writer.header(&any).await?;
                writer
                    .stream_error("host-unknown", "This server does not serve that domain.")
                    .await?;
                return Ok(None);
            };
            writer.header(domain.as_str()).await?;
            if let Some(account) = &account {
                if account.domain().as_str() != domain.as_str() {
                    writer
                        .stream_error("not-authorized", "Restart the stream to your domain.")
                        .await?;
                    return Ok(None);
                }
                writer.features(&bind_features()).await?;
                return bind(router, account, reader, writer).await;
            }
            let offer_tls = !encrypted;
            writer.features(&login_features(offer_tls)).await?;
            loop {
                let element = match xml::next(&mut reader).await {
                    Read::Element(element) => element,
                    other => {
                        writer.end(other).await?;
                        return Ok(None);
                    }
                };
                if element.is("starttls", NS_TLS) {
                    if !offer_tls {
                        writer.send(&Element::bare("failure", NS_TLS)).await?;
                        writer.close().await?;
                        return Ok(None);
                    }
                    writer.send(&Element::bare("proceed", NS_TLS)).await?;
                    let plain = xml::join(xml::restart(reader), writer)?;
                    transport = Box::new(tls.accept(plain).await?);
                    encrypted = true;
                    continue 'transport;
                }
                if element.is("auth", NS_SASL) {
                    match login(router, domain.as_str(), element) {
                        Ok(user) => {
                            writer.send(&Element::bare("success", NS_SASL)).await?;
                            account = Some(user);
                            read = xml::restart(reader);
                            break;
                        }
                        Err(refusal) => {
                            writer.send(&sasl_failure(refusal.condition())).await?;
                            failures += 1;
                            if failures >= LOGIN_ATTEMPTS {
                                writer.close().await?;
                                return Ok(None);
                            }
                            continue;
                        }
                    }
                }
                if element.is("abort", NS_SASL) {
                    writer.send(&sasl_failure("aborted")).await?;
                    continue;
                }
                writer
                    .stream_error("not-authorized", "Log in first.")
                    .await?;
                return Ok(None);
            }
        }
    }
}

/// Checks an `<auth/>` against the accounts of `domain`.
fn login(router: &Router, domain: &str, element: Element) -> Result<BareJid, Refusal> {
    let auth = match Auth::try_from(element) {
        Ok(auth) => auth,
        Err(_) => return Err(Refusal::InvalidMechanism),
    };
    match auth.mechanism {
        Mechanism::Plain => router.accounts().plain(domain, &auth.data),
        _ => Err(Refusal::InvalidMechanism),
    }
}

/// A SASL `<failure/>` with `condition`.
fn sasl_failure(condition: &str) -> Element {
    Element::builder("failure", NS_SASL)
        .append(Element::bare(condition, NS_SASL))
        .build()
}

/// The features before login: STARTTLS when offered, and the SASL mechanisms.
fn login_features(offer_tls: bool) -> Vec<Element> {
    let mut features = Vec::new();
    if offer_tls {
        features.push(Element::bare("starttls", NS_TLS));
    }
    let mut mechanisms = Element::builder("mechanisms", NS_SASL);
    for name in MECHANISMS {
        mechanisms = mechanisms.append(Element::builder("mechanism", NS_SASL).append(name).build());
    }
    features.push(mechanisms.build());
    features
}

/// The features after login: resource binding, and the session RFC 3921 clients ask for
/// (optional, as RFC 6121 left it).
fn bind_features() -> Vec<Element> {
    vec![
        Element::bare("bind", NS_BIND),
        Element::builder("session", NS_SESSION)
            .append(Element::bare("optional", NS_SESSION))
            .build(),
    ]
}

/// Waits for the client to bind a resource.
async fn bind(
    router: &Router,
    account: &BareJid,
    mut reader: Reader,
    mut writer: Writer,
) -> io::Result<Option<Login>> {
    loop {
        let element = match xml::next(&mut reader).await {
            Read::Element(element) => element,
            other => {
                writer.end(other).await?;
                return Ok(None);
            }
        };
        let request = element
            .is("iq", JABBER_CLIENT)
            .then(|| element.get_child("bind", NS_BIND))
            .flatten()
            .filter(|_| element.attr("type") == Some("set"));
        let Some(request) = request else {
            writer
                .stream_error("not-authorized", "Bind a resource first.")
                .await?;
            return Ok(None);
        };
        let resource = request.get_child("resource", NS_BIND).map(Element::text);
        let Some((jid, session, rx)) = router.bind(account, resource.as_deref()).await else {
            let me = Jid::from(account.clone());
            let server = Jid::from(BareJid::from_parts(None, account.domain()));
            writer
                .send(&error_reply(&me, &server, &element, &BAD_RESOURCE))
                .await?;
            continue;
        };
        let bound = Element::builder("bind", NS_BIND)
            .append(
                Element::builder("jid", NS_BIND)
                    .append(jid.to_string())
                    .build(),
            )
            .build();
        writer.send(&iq_result(&element, None, Some(bound))).await?;
        return Ok(Some(Login {
            reader,
            writer,
            jid,
            session,
            rx,
        }));
    }
}

/// A bound session.
struct Session<'r> {
    router: &'r Router,
    module: Arc<OfflineModule>,
    jid: FullJid,
    /// The router's id of this session.
    id: u64,
    writer: Writer,
    /// While stored messages are delivered: the page written and not yet confirmed.
    delivery: Option<Delivery>,
    /// Live messages that came during the delivery of stored ones, written after them.
    held: Vec<Element>,
    /// Pings sent, to name them.
    pings: u64,
}

/// The delivery of stored messages in progress.
struct Delivery {
    /// The last seq removed.
    after: Option<u64>,
    /// The ping written after the current page: its id, the page's seqs, and when the answer
    /// is due.
    awaiting: Option<(String, Vec<u64>, Instant)>,
}

/// What a stanza from the client asks of the session.
enum Next {
    Continue,
    End,
}

impl Session<'_> {
    async fn run(
        &mut self,
        mut reader: Reader,
        rx: &mut mpsc::UnboundedReceiver<Outbound>,
    ) -> io::Result<()> {
        // Reading up to the next element is cancel-safe: the parser keeps its state.
        loop {
            tokio::select! {
                read = xml::next(&mut reader) => match read {
                    Read::Element(element) => {
                        if let Next::End = self.stanza(element).await? {
                            return Ok(());
                        }
                    }
                    Read::Silent => {
                        let ping = self.ping("keepalive");
                        self.writer.send(&ping).await?;
                    }
                    other => return self.writer.end(other).await,
                },
                () = until(self.answer_due()) => {
                    return self
                        .writer
                        .stream_error("connection-timeout", "The delivery ping was not answered.")
                        .await;
                }
                outbound = rx.recv() => match outbound {
                    Some(Outbound::Stanza(stanza)) if self.delivery.is_some() => {
                        self.held.push(stanza);
                    }
                    Some(Outbound::Stanza(stanza)) => self.writer.send(&stanza).await?,
                    Some(Outbound::Deliver) => self.deliver().await?,
                    None => return Ok(()),
                },
            }
        }
    }

    /// Handles a stanza the client sent.
    async fn stanza(&mut self, mut element: Element) -> io::Result<Next> {
        if element.ns() != JABBER_CLIENT {
            self.writer
                .stream_error("unsupported-stanza-type", "Not a client stanza.")
                .await?;
            return Ok(Next::End);
        }
        // RFC 6120 §8.1.2.1: the server stamps the sender's address.
        element.set_attr(Namespace::NONE, name!("from"), self.jid.to_string());
        match element.name() {
            "message" => self.message(element).await?,
            "presence" => self.presence(&element).await?,
            "iq" => self.iq(element).await?,
            _ => {
                self.writer
                    .stream_error("unsupported-stanza-type", "Not a stanza.")
                    .await?;
                return Ok(Next::End);
            }
        }
        Ok(Next::Continue)
    }

    async fn message(&mut self, message: Element) -> io::Result<()> {
        let to = match message.attr("to") {
            None => Jid::from(self.jid.to_bare()),
            Some(to) => match to.parse::<Jid>() {
                Ok(to) => to,
                Err(_) => {
                    let reply = error_reply(&self.server(), &self.me(), &message, &BAD_ADDRESS);
                    return self.writer.send(&reply).await;
                }
            },
        };
        self.router.message(self.me(), to, message).await;
        Ok(())
    }

    async fn presence(&mut self, presence: &Element) -> io::Result<()> {
        // Directed presence and subscriptions need rosters, which this server has not.
        if presence.attr("to").is_some() {
            return Ok(());
        }
        let priority = match presence.attr("type") {
            None => Some(
                presence
                    .get_child("priority", JABBER_CLIENT)
                    .and_then(|p| p.text().trim().parse::<i8>().ok())
                    .unwrap_or(0),
            ),
            Some("unavailable") => None,
            Some(_) => return Ok(()),
        };
        let availability = self.router.presence(&self.jid, self.id, priority).await;
        if availability == Availability::Deliver {
            self.deliver().await?;
        }
        Ok(())
    }

    /// Starts delivering the stored messages.
    async fn deliver(&mut self) -> io::Result<()> {
        if self.delivery.is_some() {
            return Ok(());
        }
        self.delivery = Some(Delivery {
            after: None,
            awaiting: None,
        });
        self.next_page().await
    }

    async fn iq(&mut self, iq: Element) -> io::Result<()> {
        let kind = iq.attr("type").unwrap_or_default().to_owned();
        let to = match iq.attr("to").map(str::parse::<Jid>) {
            None => None,
            Some(Ok(to)) => Some(to),
            Some(Err(_)) => {
                let reply = error_reply(&self.server(), &self.me(), &iq, &BAD_ADDRESS);
                return self.writer.send(&reply).await;
            }
        };
        // The server's (its domain) or the account's (no `to`, or the bare JID); a full JID
        // is a session's.
        let here = to.as_ref().is_none_or(|to| {
            to.resource().is_none()
                && (to.node().is_none() && to.domain() == self.jid.domain()
                    || to.to_bare() == self.jid.to_bare())
        });
        if !here {
            let Some(to) = to else { return Ok(()) };
            if let Err(iq) = self.router.iq(&to, iq).await
                && (kind == "get" || kind == "set")
            {
                let reply = error_reply(&self.me(), &to, &iq, &IQ_UNSUPPORTED);
                return self.writer.send(&reply).await;
            }
            return Ok(());
        }
        // Answered as if by the account when it has no `to` (RFC 6120 §10.3.3).
        let target = to.clone().unwrap_or_else(|| Jid::from(self.jid.to_bare()));
        match kind.as_str() {
            "get" | "set" => {}
            // An answer to one of the server's pings.
            "result" | "error" => return self.confirmed(iq.attr("id").unwrap_or_default()).await,
            _ => {
                let reply = error_reply(&self.me(), &target, &iq, &BAD_IQ);
                return self.writer.send(&reply).await;
            }
        }
        let account = target.node().is_some();
        let payload = iq.children().next();
        let answer = match payload {
            Some(p) if p.is("ping", NS_PING) => Some(None),
            Some(p) if p.is("session", NS_SESSION) => Some(None),
            Some(p) if p.is("query", NS_ROSTER) && kind == "get" && account => {
                Some(Some(Element::bare("query", NS_ROSTER)))
            }
            Some(p) if p.is("query", NS_DISCO_INFO) && kind == "get" => Some(Some(
                self.disco_info(p.attr("node").unwrap_or_default(), account),
            )),
            _ => None,
        };
        let reply = match answer {
            Some(payload) => iq_result(&iq, to.as_ref(), payload),
            None => error_reply(&self.me(), &target, &iq, &IQ_UNSUPPORTED),
        };
        self.writer.send(&reply).await
    }

    /// `disco#info` at `node` of the server (an IM server answering pings), or of the
    /// client's own account (a registered account), with `mod_offline`'s features
    /// (`msgoffline`).
    fn disco_info(&self, node: &str, account: bool) -> Element {
        let mut query = Element::builder("query", NS_DISCO_INFO);
        if !node.is_empty() {
            query = query.attr(name!("node"), node);
        }
        let mut features: Vec<&str> = Vec::new();
        if node.is_empty() {
            let (category, kind) = if account {
                ("account", "registered")
            } else {
                ("server", "im")
            };
            query = query.append(
                Element::builder("identity", NS_DISCO_INFO)
                    .attr(name!("category"), category)
                    .attr(name!("type"), kind)
                    .build(),
            );
            features.push(NS_DISCO_INFO);
            if !account {
                features.push(NS_PING);
            }
        }
        if account {
            // The account asking about itself is subscribed to its own presence.
            features.extend(self.module.disco_sm_features(node, true));
        } else {
            features.extend(self.module.disco_local_features(node));
        }
        features.sort_unstable();
        for feature in features {
            query = query.append(
                Element::builder("feature", NS_DISCO_INFO)
                    .attr(name!("var"), feature)
                    .build(),
            );
        }
        query.build()
    }

    /// Writes the next page of stored messages, then a ping: its answer tells that the client
    /// read the page (a stream is read in order), and the page is removed then. The stored
    /// messages are done when a page comes back empty, or the store fails (what is left is
    /// delivered at the next login).
    async fn next_page(&mut self) -> io::Result<()> {
        let Some(after) = self.delivery.as_ref().map(|d| d.after) else {
            return Ok(());
        };
        let user = self.me();
        let page = match self
            .module
            .pending_messages(&user, after, DELIVERY_PAGE)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                warn!(jid = %self.jid, %error, "stored messages not delivered");
                return self.delivery_done().await;
            }
        };
        if page.seqs.is_empty() {
            return self.delivery_done().await;
        }
        for delivery in &page.deliveries {
            self.writer.write(&delivery.stanza).await?;
        }
        let ping = self.ping("offline");
        let id = ping.attr("id").unwrap_or_default().to_owned();
        self.writer.send(&ping).await?;
        if let Some(delivery) = &mut self.delivery {
            delivery.awaiting = Some((id, page.seqs, Instant::now() + self.router.ping_timeout()));
        }
        Ok(())
    }

    /// The client answered an iq of ours with `id`.
    async fn confirmed(&mut self, id: &str) -> io::Result<()> {
        let Some(delivery) = &mut self.delivery else {
            return Ok(());
        };
        let Some((_, seqs, _)) = delivery.awaiting.take_if(|(awaited, ..)| awaited == id) else {
            return Ok(());
        };
        delivery.after = seqs.last().copied();
        let user = self.me();
        if let Err(error) = self.module.remove_delivered(&user, &seqs).await {
            warn!(jid = %self.jid, %error, "delivered messages not removed: they come again at the next login");
            return self.delivery_done().await;
        }
        self.next_page().await
    }

    /// Ends the delivery of stored messages; writes the live ones that came meanwhile.
    async fn delivery_done(&mut self) -> io::Result<()> {
        self.delivery = None;
        self.router.delivered(&self.jid, self.id).await;
        for stanza in std::mem::take(&mut self.held) {
            self.writer.write(&stanza).await?;
        }
        self.writer.flush().await
    }

    /// When the answer to the delivery's ping is due, if one is awaited.
    fn answer_due(&self) -> Option<Instant> {
        let delivery = self.delivery.as_ref()?;
        delivery.awaiting.as_ref().map(|(_, _, due)| *due)
    }

    /// A ping to the client, with an id naming its `purpose`.
    fn ping(&mut self, purpose: &str) -> Element {
        self.pings += 1;
        Element::builder("iq", JABBER_CLIENT)
            .attr(name!("type"), "get")
            .attr(name!("id"), format!("{purpose}-{}", self.pings))
            .attr(name!("from"), self.jid.domain().as_str())
            .attr(name!("to"), self.jid.to_string())
            .append(Element::bare("ping", NS_PING))
            .build()
    }

    fn me(&self) -> Jid {
        Jid::from(self.jid.clone())
    }

    fn server(&self) -> Jid {
        Jid::from(BareJid::from_parts(None, self.jid.domain()))
    }
}

/// Completes at `deadline`; never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The result of `iq`, from `from` (none: the reply comes from the account itself),
/// carrying `payload`.
fn iq_result(iq: &Element, from: Option<&Jid>, payload: Option<Element>) -> Element {
    let mut result = Element::builder("iq", JABBER_CLIENT)
        .attr(name!("type"), "result")
        .attr(name!("id"), iq.attr("id").unwrap_or_default());
    if let Some(from) = from {
        result = result.attr(name!("from"), from.to_string());
    }
    if let Some(to) = iq.attr("from") {
        result = result.attr(name!("to"), to);
    }
    if let Some(payload) = payload {
        result = result.append(payload);
    }
    result.build()
}
