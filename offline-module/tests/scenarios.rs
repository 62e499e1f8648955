//! MongooseIM's own `mod_offline` scenarios, run at the module level against `offline-mem`
//! with a test clock, every stanza checked exactly.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;

use offline_core::OfflineError;
use offline_mem::MemBackend;
use offline_module::jid::Jid;
use offline_module::minidom::Element;
use offline_module::{
    AccessConfig, Disposition, ManualClock, ModuleError, ModuleOptions, OfflineConfig,
    OfflineModule, OfflineStub, PERSONAL_DATA_FIELDS, PersonalDataRow,
};

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000_000;
const DAY_SECS: i64 = 86_400;

fn jid(s: &str) -> Jid {
    Jid::new(s).unwrap()
}

fn stanza(xml: &str) -> Element {
    xml.parse().unwrap_or_else(|e| panic!("{xml}: {e}"))
}

fn chat(from: &str, to: &str, id: &str, body: &str) -> Element {
    stanza(&format!(
        "<message xmlns='jabber:client' from='{from}' to='{to}' type='chat' id='{id}'>\
         <body>{body}</body></message>"
    ))
}

struct Server {
    module: OfflineModule,
    clock: Arc<ManualClock>,
}

impl Server {
    /// The module for `localhost` with these options and access rules, on a fresh store.
    async fn new(options: ModuleOptions, access: AccessConfig) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        let module = OfflineModule::builder("localhost", Arc::new(MemBackend::new()))
            .domains([
                "localhost".parse().unwrap(),
                "other.example".parse().unwrap(),
            ])
            .options(options)
            .access(access)
            .clock(clock.clone())
            .build()
            .await
            .unwrap();
        Self { module, clock }
    }

    async fn plain() -> Self {
        Self::new(ModuleOptions::default(), AccessConfig::default()).await
    }

    async fn trusting_sender_delays() -> Self {
        let options = ModuleOptions {
            trust_sender_delay: true,
            ..ModuleOptions::default()
        };
        Self::new(options, AccessConfig::default()).await
    }

    async fn send(&self, from: &str, to: &str, message: &Element) -> Disposition {
        self.module
            .offline_message(&jid(from), &jid(to), message)
            .await
    }

    async fn login(&self, user: &str) -> Vec<Element> {
        let deliveries = self
            .module
            .resend_offline_messages(&jid(user))
            .await
            .unwrap();
        deliveries.into_iter().map(|d| d.stanza).collect()
    }
}

fn stored() -> Disposition {
    Disposition::Stored {
        notify_sender: None,
        duplicate: false,
    }
}

fn bodies(stanzas: &[Element]) -> Vec<String> {
    stanzas
        .iter()
        .map(|s| {
            s.get_child("body", "jabber:client")
                .map(Element::text)
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn offline_message_is_stored_and_delivered_with_delay() {
    let server = Server::plain().await;
    let message = chat("alice@localhost/res1", "bob@localhost", "m1", "msgtxt");
    assert_eq!(
        server
            .send("alice@localhost/res1", "bob@localhost", &message)
            .await,
        stored()
    );
    server.clock.advance_secs(5);
    let delivered = server.login("bob@localhost/new-session").await;
    let expected = stanza(
        "<message xmlns='jabber:client' from='alice@localhost/res1' to='bob@localhost' \
         type='chat' id='m1'><body>msgtxt</body>\
         <delay xmlns='urn:xmpp:delay' from='localhost' stamp='2023-11-14T22:13:20.000000Z'>\
         Offline Storage</delay></message>",
    );
    assert_eq!(delivered, [expected]);
    assert!(
        server.login("bob@localhost").await.is_empty(),
        "delivered once"
    );
}

#[tokio::test]
async fn message_to_a_full_jid_is_kept_for_the_bare_jid() {
    let server = Server::plain().await;
    let message = chat("alice@localhost/res1", "Bob@LocalHost/gone", "m1", "hi");
    let _ = server
        .send("alice@localhost/res1", "Bob@LocalHost/gone", &message)
        .await;
    let delivered = server.login("bob@localhost/phone").await;
    assert_eq!(bodies(&delivered), ["hi"]);
}

#[tokio::test]
async fn error_message_is_not_delivered() {
    let server = Server::plain().await;
    let error = stanza("<message xmlns='jabber:client' type='error'><body>msgtxt</body></message>");
    let outcome = server
        .send("alice@localhost/res1", "bob@localhost", &error)
        .await;
    assert_eq!(outcome, Disposition::Dropped);
    assert!(server.login("bob@localhost").await.is_empty());
}

#[tokio::test]
async fn headline_message_is_not_delivered() {
    let server = Server::plain().await;
    let headline =
        stanza("<message xmlns='jabber:client' type='headline'><body>msgtxt</body></message>");
    let outcome = server
        .send("alice@localhost/res1", "bob@localhost", &headline)
        .await;
    assert_eq!(outcome, Disposition::Dropped);
    assert!(server.login("bob@localhost").await.is_empty());
}

#[tokio::test]
async fn groupchat_message_is_not_stored_by_default() {
    let server = Server::plain().await;
    let groupchat =
        stanza("<message xmlns='jabber:client' type='groupchat'><body>msgtxt</body></message>");
    let (room, bob) = (jid("room@muclight.localhost"), jid("bob@localhost"));
    let outcome = server
        .module
        .offline_groupchat_message(&room, &bob, &groupchat)
        .await;
    assert_eq!(outcome, Disposition::NotHandled);
    assert!(server.login("bob@localhost").await.is_empty());
}

#[tokio::test]
async fn groupchat_message_is_stored_with_the_option() {
    let options = ModuleOptions {
        store_groupchat_messages: true,
        ..ModuleOptions::default()
    };
    let server = Server::new(options, AccessConfig::default()).await;
    let groupchat = stanza(
        "<message xmlns='jabber:client' from='room@muclight.localhost/alice' \
         to='bob@localhost' type='groupchat'><body>msgtxt</body></message>",
    );
    let (room, bob) = (jid("room@muclight.localhost/alice"), jid("bob@localhost"));
    let outcome = server
        .module
        .offline_groupchat_message(&room, &bob, &groupchat)
        .await;
    assert_eq!(outcome, stored());
    let chat = chat(
        "alice@localhost/r",
        "bob@localhost",
        "c1",
        "not a groupchat",
    );
    let wrong_hook = server
        .module
        .offline_groupchat_message(&room, &bob, &chat)
        .await;
    assert_eq!(wrong_hook, Disposition::NotHandled);
    let delivered = server.login("bob@localhost").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].attr("type"), Some("groupchat"));
    assert_eq!(bodies(&delivered), ["msgtxt"]);
}

#[tokio::test]
async fn pending_pages_stay_until_removed_and_resume_after_the_last_seq() {
    let server = Server::plain().await;
    for i in 1..=5 {
        let message = chat(
            "alice@localhost/res1",
            "bob@localhost",
            &format!("m{i}"),
            &format!("b{i}"),
        );
        assert_eq!(
            server
                .send("alice@localhost/res1", "bob@localhost", &message)
                .await,
            stored()
        );
    }
    // An expiring message lapses before delivery: fetched pages leave it out.
    let lapsing = stanza(
        "<message xmlns='jabber:client' type='chat' id='x'><body>lapsed</body>\
         <x xmlns='jabber:x:expire' seconds='1'/></message>",
    );
    assert_eq!(
        server
            .send("alice@localhost/res1", "bob@localhost", &lapsing)
            .await,
        stored()
    );
    server.clock.advance_secs(2);
    let bob = jid("bob@localhost/phone");
    let first = server.module.pending_messages(&bob, None, 2).await.unwrap();
    let stanzas: Vec<Element> = first.deliveries.iter().map(|d| d.stanza.clone()).collect();
    assert_eq!(bodies(&stanzas), ["b1", "b2"]);
    assert_eq!(
        first.seqs,
        first.deliveries.iter().map(|d| d.seq).collect::<Vec<_>>()
    );
    assert!(
        stanzas
            .iter()
            .all(|s| s.get_child("delay", "urn:xmpp:delay").is_some())
    );
    // Not removed yet: a connection lost now loses nothing.
    let again = server.module.pending_messages(&bob, None, 2).await.unwrap();
    assert_eq!(again, first);
    let next = server
        .module
        .pending_messages(&bob, first.seqs.last().copied(), 2)
        .await
        .unwrap();
    let stanzas: Vec<Element> = next.deliveries.iter().map(|d| d.stanza.clone()).collect();
    assert_eq!(
        bodies(&stanzas),
        ["b3", "b4"],
        "the next page starts after the last seq"
    );
    assert_eq!(
        server
            .module
            .remove_delivered(&bob, &first.seqs)
            .await
            .unwrap(),
        2
    );
    let rest = server
        .module
        .pending_messages(&bob, first.seqs.last().copied(), 10)
        .await
        .unwrap();
    let stanzas: Vec<Element> = rest.deliveries.iter().map(|d| d.stanza.clone()).collect();
    assert_eq!(bodies(&stanzas), ["b3", "b4", "b5"]);
    assert_eq!(
        server
            .module
            .remove_delivered(&bob, &rest.seqs)
            .await
            .unwrap(),
        3
    );
    let after = rest.seqs.last().copied();
    assert!(
        server
            .module
            .pending_messages(&bob, after, 10)
            .await
            .unwrap()
            .seqs
            .is_empty()
    );
    // What was removed page by page is gone from a pop too.
    assert!(server.login("bob@localhost").await.is_empty());
}

#[tokio::test]
async fn expired_messages_are_not_delivered() {
    let server = Server::plain().await;
    let expiring = |id: &str, seconds: u32, body: &str| {
        stanza(&format!(
            "<message xmlns='jabber:client' type='chat' id='{id}'><body>{body}</body>\
             <x xmlns='jabber:x:expire' seconds='{seconds}'/></message>"
        ))
    };
    for (id, seconds, body) in [("long", 600_000, "long"), ("short", 1, "short")] {
        let outcome = server
            .send(
                "alice@localhost/res1",
                "bob@localhost",
                &expiring(id, seconds, body),
            )
            .await;
        assert_eq!(outcome, stored());
    }
    server.clock.advance_secs(2);
    let delivered = server.login("bob@localhost").await;
    assert_eq!(bodies(&delivered), ["long"]);
    assert!(server.login("bob@localhost").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_offline_messages_reached() {
    let module = Arc::new(example_module().await);
    let alice = jid("alice@localhost");
    let mut senders = tokio::task::JoinSet::new();
    for resource in 1..=4 {
        let (module, alice) = (Arc::clone(&module), alice.clone());
        senders.spawn(async move {
            let bob = jid(&format!("bob@localhost/res{resource}"));
            for i in 1..=25 {
                let body = format!("Hi, Offline {i} from res{resource}");
                let message = chat(
                    bob.as_str(),
                    "alice@localhost",
                    &format!("{resource}-{i}"),
                    &body,
                );
                let outcome = module.offline_message(&bob, &alice, &message).await;
                assert_eq!(outcome, stored(), "{body}");
            }
        });
    }
    senders.join_all().await;

    let bob1 = jid("bob@localhost/res1");
    let extra = chat(
        "bob@localhost/res1",
        "alice@localhost",
        "101",
        "Hi, Offline 101",
    );
    let Disposition::Refused(reply) = module.offline_message(&bob1, &alice, &extra).await else {
        panic!("the 101st message was not refused");
    };
    let expected = stanza(
        "<message xmlns='jabber:client' from='alice@localhost' to='bob@localhost/res1' \
         type='error' id='101'><error code='500' type='wait'>\
         <resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Your contact offline message queue \
         is full. The message has been discarded.</text></error>\
         <body>Hi, Offline 101</body></message>",
    );
    assert_eq!(reply, expected, "{}", String::from(&reply));

    let delivered = module.resend_offline_messages(&alice).await.unwrap();
    let got: BTreeSet<String> = delivered
        .iter()
        .map(|d| d.stanza.get_child("body", "jabber:client").unwrap().text())
        .collect();
    let sent: BTreeSet<String> = (1..=4)
        .flat_map(|r| (1..=25).map(move |i| format!("Hi, Offline {i} from res{r}")))
        .collect();
    assert_eq!(got, sent);
    assert_eq!(delivered.len(), 100);
    assert!(
        delivered
            .iter()
            .all(|d| d.stanza.has_child("delay", "urn:xmpp:delay"))
    );
}

/// The module for `localhost` as `docs/examples/mongooseim.toml` configures it, on `offline-mem`
/// (the file names the rdbms backend, whose options the in-memory store ignores).
async fn example_module() -> OfflineModule {
    let config =
        OfflineConfig::from_toml_str(include_str!("../../docs/examples/mongooseim.toml")).unwrap();
    let localhost = config.for_host("localhost");
    OfflineModule::builder("localhost", Arc::new(MemBackend::new()))
        .domain("localhost".parse().unwrap())
        .options(localhost.module.clone().unwrap())
        .access(localhost.access.clone())
        .clock(Arc::new(ManualClock::new(T0)))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn admins_get_the_larger_quota_of_the_example_configuration() {
    let module = example_module().await;
    let send = |to: &'static str, n: usize| {
        let message = chat("bob@localhost/r", to, &n.to_string(), "x");
        let module = &module;
        async move {
            module
                .offline_message(&jid("bob@localhost/r"), &jid(to), &message)
                .await
        }
    };
    for n in 0..150 {
        assert_eq!(
            send("admin@localhost", n).await,
            stored(),
            "admin message {n}"
        );
    }
    for n in 0..101 {
        assert_eq!(
            send("ops-anna@localhost", n).await,
            stored(),
            "ops-anna is an admin"
        );
    }
    for n in 0..100 {
        assert_eq!(send("carol@localhost", n).await, stored());
    }
    assert!(matches!(
        send("carol@localhost", 100).await,
        Disposition::Refused(_)
    ));
}

#[tokio::test]
async fn from_config_checks_host_and_backend() {
    let config =
        OfflineConfig::from_toml_str(include_str!("../../docs/examples/mongooseim.toml")).unwrap();
    let mem = || -> Arc<MemBackend> { Arc::new(MemBackend::new()) };
    let err = OfflineModule::from_config("localhost", &config)
        .unwrap()
        .store(mem())
        .build()
        .await
        .unwrap_err();
    let ModuleError::Config(err) = err else {
        panic!("expected a configuration error, got {err:?}");
    };
    assert_eq!(err.key, "modules.mod_offline.backend");
    assert!(
        err.message
            .contains("configured for backend `rdbms`, but the store given is `mem`"),
        "{err}"
    );
    let err = OfflineModule::from_config("localhost", &config)
        .unwrap()
        .build()
        .await
        .unwrap_err();
    if cfg!(feature = "postgres") {
        assert!(
            matches!(err, ModuleError::Open(_)),
            "the example's pgsql pool names a server that is not there: {err:?}"
        );
    } else {
        assert!(
            matches!(
                err,
                ModuleError::BackendNotBuilt {
                    backend: "rdbms",
                    feature: "postgres"
                }
            ),
            "the example's pgsql pool needs the postgres feature: {err:?}"
        );
    }
    let err = OfflineModule::from_config("unknown.example", &config).unwrap_err();
    assert_eq!(err.key, "general.hosts");
}

#[tokio::test]
async fn from_config_opens_its_store_and_takes_a_clock() {
    let config = OfflineConfig::from_toml_str(
        "[general]\nhosts = [\"localhost\"]\n[modules.mod_offline]\nbackend = \"memory\"",
    )
    .unwrap();
    let module = OfflineModule::from_config("localhost", &config)
        .unwrap()
        .clock(Arc::new(ManualClock::new(T0)))
        .build()
        .await
        .unwrap();
    assert_eq!(module.host_type(), "localhost");
    let message = chat("alice@localhost/r", "bob@localhost", "c1", "hi");
    let stored = module
        .offline_message(&jid("alice@localhost/r"), &jid("bob@localhost"), &message)
        .await;
    assert_eq!(stored, self::stored());
    let delivered = module
        .resend_offline_messages(&jid("bob@localhost/desk"))
        .await
        .unwrap();
    let delay = delivered[0].stanza.get_child("delay", "urn:xmpp:delay");
    assert_eq!(
        delay.and_then(|d| d.attr("stamp")),
        Some("2023-11-14T22:13:20.000000Z"),
        "the delay stamp comes from the clock given"
    );
    // The configured store was opened and the purges of the served domain reach it.
    assert_eq!(
        module.remove_expired_messages("localhost").await.unwrap(),
        0
    );
}

#[tokio::test]
async fn gdpr_export_then_removal() {
    let server = Server::plain().await;
    let sends = [
        ("alice@localhost/res1", "bob@localhost", "Hi Bob"),
        (
            "kate@localhost/phone",
            "bob@localhost/desk",
            "Hello from Kate",
        ),
        ("alice@localhost/res2", "bob@localhost", "Still there?"),
    ];
    let mut expected = Vec::new();
    for (n, (from, to, body)) in sends.into_iter().enumerate() {
        let mut message = chat(from, to, &format!("g{n}"), body);
        message.append_child(stanza(
            "<delay xmlns='urn:xmpp:delay' from='localhost' stamp='2002-09-10T23:08:25Z'/>",
        ));
        let _ = server.send(from, to, &message).await;
        expected.push(PersonalDataRow {
            timestamp: format!("2023-11-14T22:13:{:02}Z", 20 + n),
            from: from.to_owned(),
            to: "bob@localhost".to_owned(),
            packet: String::from(&chat(from, to, &format!("g{n}"), body)),
        });
        server.clock.advance_secs(1);
    }
    assert_eq!(PERSONAL_DATA_FIELDS, ["timestamp", "from", "to", "packet"]);
    let bob = jid("bob@localhost");
    assert_eq!(server.module.personal_data(&bob).await.unwrap(), expected);
    assert_eq!(server.module.remove_user(&bob).await.unwrap(), 3);
    assert!(server.module.personal_data(&bob).await.unwrap().is_empty());
}

#[tokio::test]
async fn domain_purges_report_their_counts() {
    let server = Server::plain().await;
    let day = DAY_SECS * 1_000_000;
    // Messages 7, 5 and 2 days old, for bob and for a user of another served domain.
    for (age, id) in [(7, "d7"), (5, "d5"), (2, "d2")] {
        server.clock.set(T0 - age * day);
        for to in ["bob@localhost", "bob@other.example"] {
            let message = chat("alice@localhost/r", to, id, id);
            assert_eq!(
                server.send("alice@localhost/r", to, &message).await,
                stored()
            );
        }
    }
    server.clock.set(T0);
    assert_eq!(
        server
            .module
            .remove_old_messages("localhost", 3)
            .await
            .unwrap(),
        2
    );
    assert_eq!(bodies(&server.login("bob@localhost").await), ["d2"]);
    assert_eq!(server.login("bob@other.example").await.len(), 3);

    let expiring = stanza(
        "<message xmlns='jabber:client' type='chat'><body>soon</body>\
         <x xmlns='jabber:x:expire' seconds='10'/></message>",
    );
    for to in ["bob@localhost", "carol@localhost", "bob@other.example"] {
        let _ = server.send("alice@localhost/r", to, &expiring).await;
    }
    let _ = server
        .send(
            "alice@localhost/r",
            "bob@localhost",
            &chat("a@localhost/r", "bob@localhost", "k", "kept"),
        )
        .await;
    server.clock.advance_secs(10);
    assert_eq!(
        server
            .module
            .remove_expired_messages("LocalHost")
            .await
            .unwrap(),
        2
    );
    assert_eq!(bodies(&server.login("bob@localhost").await), ["kept"]);
    assert_eq!(
        server
            .module
            .remove_expired_messages("other.example")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn admin_purges_refuse_bad_arguments() {
    let server = Server::plain().await;
    let err = server
        .module
        .remove_old_messages("localhost", 0)
        .await
        .unwrap_err();
    assert!(matches!(err, ModuleError::InvalidDays { days: 0 }), "{err}");
    assert!(err.to_string().contains("days >= 1"), "{err}");
    let err = server
        .module
        .remove_expired_messages("elsewhere.example")
        .await
        .unwrap_err();
    assert!(matches!(err, ModuleError::UnknownDomain { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "domain `elsewhere.example` is not served by host type `localhost`"
    );
    let err = server
        .module
        .remove_old_messages("not a domain", 3)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ModuleError::Store(OfflineError::InvalidInput { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn remove_domain_hook_removes_its_messages_and_stops_serving_it() {
    let server = Server::plain().await;
    for to in ["bob@other.example", "carol@other.example", "bob@localhost"] {
        let _ = server
            .send(
                "alice@localhost/r",
                to,
                &chat("alice@localhost/r", to, "1", "x"),
            )
            .await;
    }
    let domain = "other.example".parse().unwrap();
    assert_eq!(server.module.remove_domain(&domain).await.unwrap(), 2);
    assert_eq!(server.login("bob@localhost").await.len(), 1);
    let err = server
        .module
        .remove_expired_messages("other.example")
        .await
        .unwrap_err();
    assert!(matches!(err, ModuleError::UnknownDomain { .. }));
    server.module.add_domain(domain);
    assert_eq!(
        server
            .module
            .remove_expired_messages("other.example")
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn disco_features() {
    let server = Server::plain().await;
    assert_eq!(server.module.disco_local_features(""), ["msgoffline"]);
    assert!(server.module.disco_local_features("msgoffline").is_empty());
    assert_eq!(server.module.disco_sm_features("", true), ["msgoffline"]);
    assert!(server.module.disco_sm_features("", false).is_empty());
}

#[tokio::test]
async fn chat_states_fall_through_to_the_stub_or_a_bounce() {
    let server = Server::plain().await;
    let composing = stanza(
        "<message xmlns='jabber:client' type='chat' id='c1'>\
         <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    );
    let (alice, bob) = (jid("alice@localhost/res1"), jid("bob@localhost"));
    assert_eq!(
        server
            .module
            .offline_message(&alice, &bob, &composing)
            .await,
        Disposition::NotHandled
    );
    assert_eq!(
        OfflineStub.offline_message(&alice, &bob, &composing),
        Disposition::Dropped
    );
    let bounce = server
        .module
        .instrumentation()
        .bounce(&alice, &bob, &composing);
    let expected = stanza(
        "<message xmlns='jabber:client' from='bob@localhost' to='alice@localhost/res1' \
         type='error' id='c1'><error code='503' type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Bounce offline message</text>\
         </error><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    );
    assert_eq!(bounce, expected);
    assert!(server.login("bob@localhost").await.is_empty());
}

#[tokio::test]
async fn offline_event_is_sent_to_the_sender_who_asked() {
    let server = Server::plain().await;
    let message = stanza(
        "<message xmlns='jabber:client' type='chat' id='e1'><body>b</body>\
         <x xmlns='jabber:x:event'><offline/><delivered/></x></message>",
    );
    let outcome = server
        .send("alice@localhost/res1", "bob@localhost", &message)
        .await;
    let expected_event = stanza(
        "<message xmlns='jabber:client' from='bob@localhost' to='alice@localhost/res1' \
         type='chat' id='e1'><x xmlns='jabber:x:event'><id>e1</id><offline/></x></message>",
    );
    assert_eq!(
        outcome,
        Disposition::Stored {
            notify_sender: Some(expected_event),
            duplicate: false,
        }
    );
    assert_eq!(server.login("bob@localhost").await.len(), 1);
}

#[tokio::test]
async fn sender_delays_are_stripped_and_trusted_only_when_configured() {
    let with_stamps = stanza(
        "<message xmlns='jabber:client' type='chat' id='d1'><body>b</body>\
         <delay xmlns='urn:xmpp:delay' from='elsewhere' stamp='2023-11-14T21:00:00Z'/>\
         <x xmlns='jabber:x:delay' stamp='20231114T21:00:00'/></message>",
    );
    let delivered_stamp = |stanzas: &[Element]| {
        let delays: Vec<&Element> = stanzas[0]
            .children()
            .filter(|c| c.name() == "delay" || c.name() == "x")
            .collect();
        assert_eq!(delays.len(), 1, "only the module's own delay remains");
        delays[0].attr("stamp").unwrap().to_owned()
    };
    let plain = Server::plain().await;
    let _ = plain
        .send("alice@localhost/r", "bob@localhost", &with_stamps)
        .await;
    assert_eq!(
        delivered_stamp(&plain.login("bob@localhost").await),
        "2023-11-14T22:13:20.000000Z"
    );

    let trusting = Server::trusting_sender_delays().await;
    let _ = trusting
        .send("alice@localhost/r", "bob@localhost", &with_stamps)
        .await;
    assert_eq!(
        delivered_stamp(&trusting.login("bob@localhost").await),
        "2023-11-14T21:00:00.000000Z"
    );
}

#[tokio::test]
async fn resent_message_with_the_same_origin_id_is_stored_once() {
    let server = Server::plain().await;
    let message = stanza(
        "<message xmlns='jabber:client' type='chat'><body>once</body>\
         <origin-id xmlns='urn:xmpp:sid:0' id='de305d54'/></message>",
    );
    for resend in 0..3 {
        assert_eq!(
            server
                .send("alice@localhost/r1", "bob@localhost", &message)
                .await,
            Disposition::Stored {
                notify_sender: None,
                duplicate: resend > 0,
            }
        );
    }
    let _ = server
        .send("carol@localhost/r1", "bob@localhost", &message)
        .await;
    assert_eq!(
        bodies(&server.login("bob@localhost").await),
        ["once", "once"]
    );
}

#[tokio::test]
async fn oversized_message_is_refused_not_lost_silently() {
    let server = Server::plain().await;
    let body = "x".repeat(offline_core::MAX_PACKET_BYTES);
    let message = chat("alice@localhost/r", "bob@localhost", "big", &body);
    let Disposition::Refused(reply) = server
        .send("alice@localhost/r", "bob@localhost", &message)
        .await
    else {
        panic!("an oversized message was accepted");
    };
    let error = reply.get_child("error", "jabber:client").unwrap();
    assert_eq!(
        (error.attr("code"), error.attr("type")),
        (Some("406"), Some("modify"))
    );
    assert!(error.has_child("not-acceptable", "urn:ietf:params:xml:ns:xmpp-stanzas"));
}

#[tokio::test]
async fn redeclared_prefixes_are_stored_and_delivered() {
    let server = Server::plain().await;
    let message = stanza(
        "<message xmlns='jabber:client' xmlns:a='urn:one' type='chat'><body>b</body>\
         <a:x xmlns:a='urn:two'><a:y/></a:x></message>",
    );
    assert_eq!(
        server
            .send("alice@localhost/r", "bob@localhost", &message)
            .await,
        stored()
    );
    let delivered = server.login("bob@localhost").await;
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].has_child("x", "urn:two"));
}

#[tokio::test]
async fn message_that_cannot_be_written_as_xml_is_refused() {
    let server = Server::plain().await;
    // Built by a server, not parsed: XML cannot carry U+0001.
    let mut message = stanza("<message xmlns='jabber:client' type='chat'><body/></message>");
    message.append_text("\u{1}");
    let Disposition::Refused(reply) = server
        .send("alice@localhost/r", "bob@localhost", &message)
        .await
    else {
        panic!("an unwritable message was accepted");
    };
    let error = reply.get_child("error", "jabber:client").unwrap();
    assert!(error.has_child("bad-request", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    assert!(server.login("bob@localhost").await.is_empty());
}

#[tokio::test]
async fn trusted_sender_stamps_from_the_future_count_as_now() {
    let trusting = Server::trusting_sender_delays().await;
    let message = stanza(
        "<message xmlns='jabber:client' type='chat'><body>b</body>\
         <delay xmlns='urn:xmpp:delay' stamp='2099-01-01T00:00:00Z'/></message>",
    );
    let _ = trusting
        .send("alice@localhost/r", "bob@localhost", &message)
        .await;
    let rows = trusting
        .module
        .personal_data(&jid("bob@localhost"))
        .await
        .unwrap();
    assert_eq!(rows[0].timestamp, "2023-11-14T22:13:20Z");
}

#[tokio::test]
async fn only_the_xep_0023_x_element_sets_an_expiry() {
    let server = Server::plain().await;
    let other = stanza(
        "<message xmlns='jabber:client' type='chat'><body>b</body>\
         <other xmlns='jabber:x:expire' seconds='1'/></message>",
    );
    let _ = server
        .send("alice@localhost/r", "bob@localhost", &other)
        .await;
    server.clock.advance_secs(5);
    assert_eq!(server.login("bob@localhost").await.len(), 1);
}

/// What the module logs while `build` runs, at warning level and above, for a configuration
/// naming `backend`, opening its store or given `store`.
async fn warnings_while_building(backend: &str, store: Option<Arc<MemBackend>>) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let config = OfflineConfig::from_toml_str(&format!(
        "[general]\nhosts = [\"localhost\"]\n[modules.mod_offline]\nbackend = \"{backend}\"\n\
         rocksdb.path = \"{}\"\n\
         [access]\nmax_user_offline_messages = [{{acl = \"all\", value = 10}}]",
        dir.path().display()
    ))
    .unwrap();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut builder = OfflineModule::from_config("localhost", &config).unwrap();
    if let Some(store) = store {
        builder = builder.store(store);
    }
    builder.build().await.unwrap();
    String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
}

#[tokio::test]
async fn volatile_storage_for_mnesia_warns_that_messages_do_not_survive_a_restart() {
    let mnesia = warnings_while_building("mnesia", None).await;
    if cfg!(feature = "rocksdb") {
        assert!(
            mnesia.is_empty(),
            "mnesia opens the persistent store, nothing to warn about: {mnesia}"
        );
    } else {
        assert!(mnesia.contains("will not survive a restart"), "{mnesia}");
    }
    let given = warnings_while_building("mnesia", Some(Arc::new(MemBackend::new()))).await;
    assert!(
        given.contains("WARN") && given.contains("will not survive a restart"),
        "an in-memory store given for mnesia warns: {given}"
    );
    let memory = warnings_while_building("memory", None).await;
    assert!(
        memory.is_empty(),
        "backend = \"memory\" is chosen knowingly: {memory}"
    );
}
