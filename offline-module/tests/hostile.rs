//! Hostile input: stanzas and JIDs from the network cannot crash the server, lose a message or
//! strand a queue.
//!
//! The property tests draw stanzas from a grammar of XMPP pieces (every message type, chat
//! states, receipts, markers, XEP-0022 events, expiry with odd values, sender delays,
//! origin-ids, hints, foreign and redeclared namespaces, reserved prefixes, deep nesting, long
//! text, astral characters), byte mutations of them that still parse, stanzas a server built
//! with characters XML forbids, and tricky JIDs. For each: nothing panics; every element the
//! module hands back writes and parses back; what was stored is delivered; the quota is never
//! exceeded; one JID keys one queue. `PROPTEST_CASES` sets how many cases run (64 by default,
//! each up to seven messages); `scripts/fuzz` runs many more.
//!
//! The tests below them are the reproducers of the bugs the first fuzzing run found.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use offline_core::{OfflineBackend, UserKey, canonical_jid};
use offline_mem::MemBackend;
use offline_module::jid::Jid;
use offline_module::minidom::Element;
use offline_module::minidom::rxml::{Namespace, xml_ncname};
use offline_module::stanza::{StanzaError, depth_within, parse_packet, user_not_found_reply};
use offline_module::{AccessConfig, Disposition, ManualClock, ModuleOptions, OfflineModule};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000_000;
/// Every user's message limit in these tests.
const QUOTA: u64 = 3;

/// Escapes text for XML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 .,!?]{0,24}",
        2 => "[\u{10000}-\u{10FFFF}\u{E000}-\u{FFFD}]{1,8}",
        1 => "[&<>'\"]{1,6}",
        1 => (1usize..4).prop_map(|kib| "x".repeat(kib * 1024)),
        1 => Just("x".repeat(1024 * 1024 + 1)),
    ]
}

/// Values of an expiry's `seconds`, sane and not.
const EXPIRES: &[&str] = &[
    "0",
    "-1",
    "10",
    " 5 ",
    "abc",
    "99999999999999999999",
    "1e3",
    "",
    "9223372036854775807",
];

/// Sender delay stamps, valid, invalid, past, future and at the edges.
const STAMPS: &[&str] = &[
    "2023-11-14T21:00:00Z",
    "2023-11-14T21:00:00.123456+02:00",
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "9999-12-31T23:59:59Z",
    "2099-01-01T00:00:00Z",
    "yesterday",
    "",
];

/// One child of a message, as XML text.
fn child() -> impl Strategy<Value = String> {
    let state = prop::sample::select(&["active", "composing", "paused", "inactive", "gone"][..]);
    let hint = prop::sample::select(&["store", "no-store", "no-permanent-store", "no-copy"][..]);
    prop_oneof![
        4 => text().prop_map(|t| format!("<body>{}</body>", escape(&t))),
        2 => state.prop_map(|s| format!("<{s} xmlns='http://jabber.org/protocol/chatstates'/>")),
        1 => Just("<request xmlns='urn:xmpp:receipts'/>".to_owned()),
        1 => Just("<received xmlns='urn:xmpp:receipts' id='r1'/>".to_owned()),
        1 => Just("<markable xmlns='urn:xmpp:chat-markers:0'/>".to_owned()),
        1 => Just("<displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/>".to_owned()),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(offline, id)| format!(
            "<x xmlns='jabber:x:event'>{}{}</x>",
            if offline { "<offline/>" } else { "" },
            if id { "<id>e1</id>" } else { "" }
        )),
        2 => prop::sample::select(EXPIRES)
            .prop_map(|s| format!("<x xmlns='jabber:x:expire' seconds='{}'/>", escape(s))),
        2 => prop::sample::select(STAMPS).prop_map(|s| format!(
            "<delay xmlns='urn:xmpp:delay' from='elsewhere' stamp='{s}'/>"
        )),
        1 => Just("<x xmlns='jabber:x:delay' stamp='20231114T21:00:00'/>".to_owned()),
        2 => prop_oneof![Just(String::new()), text(), Just("o".repeat(2000))]
            .prop_map(|id| format!("<origin-id xmlns='urn:xmpp:sid:0' id='{}'/>", escape(&id))),
        2 => hint.prop_map(|h| format!("<{h} xmlns='urn:xmpp:hints'/>")),
        // Prefixes redeclared, conflicting with the ones a writer generates, or reserved.
        2 => Just("<p:thing xmlns:p='urn:p' xmlns:tns0='urn:z' p:a='1' tns0:b='2'/>".to_owned()),
        2 => Just("<composing xmlns='http://jabber.org/protocol/chatstates' xmlns:tns0='urn:z' \
                   p:a='1'/>".to_owned()),
        1 => Just("<c xmlns='urn:c' xmlns:xml='http://www.w3.org/XML/1998/namespace' \
                   xml:lang='en'/>".to_owned()),
        1 => Just("<tns1:d xmlns:tns1='urn:d'><tns1:e xmlns:tns1='urn:e' tns0:f='g' \
                   xmlns:tns0='urn:f'/></tns1:d>".to_owned()),
        // Nesting, shallow or far past any limit.
        2 => prop_oneof![8 => 1usize..60, 2 => 250usize..800, 1 => 3_000usize..5_000].prop_map(|depth| format!(
            "{}x{}",
            "<n xmlns='urn:n'>".repeat(depth),
            "</n>".repeat(depth)
        )),
    ]
}

/// A stanza as XML text: mostly messages of every type, some presences and iqs.
fn stanza_text() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(
        &[
            "type='chat'",
            "type='normal'",
            "type='groupchat'",
            "type='headline'",
            "type='error'",
            "",
            "type='weird'",
        ][..],
    );
    let name = prop_oneof![8 => Just("message"), 1 => Just("presence"), 1 => Just("iq")];
    let namespace = prop_oneof![6 => Just("jabber:client"), 1 => Just("jabber:server")];
    (
        name,
        namespace,
        kind,
        prop::collection::vec(child(), 0..5),
        any::<bool>(),
    )
        .prop_map(|(name, namespace, kind, children, lang)| {
            let lang = if lang { " xml:lang='en'" } else { "" };
            format!(
                "<{name} xmlns='{namespace}' xmlns:p='urn:p' id='m1' {kind}{lang}>{}</{name}>",
                children.concat()
            )
        })
}

/// A chat message a server built in `namespace` (which need not be one XML can carry).
fn built_chat(namespace: &str) -> Element {
    let mut message = Element::builder("message", namespace)
        .append(Element::builder("body", namespace).append("hi"))
        .build();
    message.set_attr(Namespace::NONE, xml_ncname!("type").to_owned(), "chat");
    message
}

/// A stanza as the server hands it over: parsed from a drawn text, from a byte mutation of one
/// that still parses, or built with text XML forbids (which only a server's builder can make).
fn stanza() -> impl Strategy<Value = Element> {
    let parsed = stanza_text().prop_filter_map("does not parse", |xml| xml.parse().ok());
    let mutated = (
        stanza_text(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    )
        .prop_filter_map("the mutation does not parse", |(xml, edits)| {
            let mut bytes = xml.into_bytes();
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            String::from_utf8(bytes).ok()?.parse().ok()
        });
    let built = (
        "[\u{1}-\u{8}\u{b}\u{c}\u{e}-\u{1f}\u{fffe}a-z :]{1,10}",
        0..5u8,
    )
        .prop_map(|(bad, place)| {
            let message = built_chat;
            match place {
                0 => {
                    let mut message = message("jabber:client");
                    message.set_attr(Namespace::NONE, xml_ncname!("id").to_owned(), bad);
                    message
                }
                1 => {
                    let mut message = message("jabber:client");
                    message.append_text(bad);
                    message
                }
                2 => {
                    let mut message = message("jabber:client");
                    message.append_child(Element::bare(bad, "urn:x"));
                    message
                }
                3 => {
                    let mut message = message("jabber:client");
                    message.append_child(Element::bare("x", format!("urn:{bad}")));
                    message
                }
                _ => message(&format!("jabber:client{bad}")),
            }
        });
    prop_oneof![6 => parsed, 3 => mutated, 1 => built]
}

/// Senders: ordinary, case variants, a trailing dot, normal forms that change when parsed
/// again or do not parse again, a bare domain.
const SENDERS: &[&str] = &[
    "romeo@example.net/orchard",
    "ROMEO@Example.NET/Orchard",
    "romeo@example.net./orchard",
    "kelvin@x\u{3f9}.example/lab",
    "romeo@ßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßß.example/orchard",
    "example.net",
];

/// Recipients: the same user written four ways, a user whose domain normalises twice, one
/// whose normal form does not parse again.
const RECIPIENTS: &[&str] = &[
    "juliet@example.com",
    "Juliet@example.com.",
    "juliet@example.com./balcony",
    "JULIET@EXAMPLE.COM/desk",
    "kelvin@x\u{3f9}.example",
    "kelvin@ßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßß.example",
];

/// A JID drawn from pieces that trip normalisation: case, `ß` that grows a label past 63
/// bytes, symbols that normalise twice, trailing dots, resources with `@` and `/`.
fn tricky_jid(local: &'static str) -> impl Strategy<Value = Jid> {
    let label = prop_oneof![
        Just("example".to_owned()),
        Just("EXAMPLE".to_owned()),
        Just("x\u{3f9}".to_owned()),
        (1usize..64).prop_map(|n| "ß".repeat(n)),
    ];
    let resource = prop::option::of(prop::sample::select(&["r", "Balcony", "a@b/c", "ß"][..]));
    (label, any::<bool>(), resource).prop_filter_map("not a JID", move |(label, dot, resource)| {
        let dot = if dot { "." } else { "" };
        let resource = resource.map_or(String::new(), |r| format!("/{r}"));
        Jid::new(&format!("{local}@{label}.com{dot}{resource}")).ok()
    })
}

/// A message as the server routes it: stanza, sender, recipient.
fn routed() -> impl Strategy<Value = (Element, Jid, Jid)> {
    let fixed = |jids: &'static [&'static str]| {
        prop::sample::select(jids).prop_map(|jid| Jid::new(jid).unwrap())
    };
    (
        stanza(),
        prop_oneof![fixed(SENDERS), tricky_jid("romeo")],
        prop_oneof![fixed(RECIPIENTS), tricky_jid("juliet")],
    )
}

/// The body texts of a stanza, in order.
fn bodies(stanza: &Element) -> Vec<String> {
    stanza
        .children()
        .filter(|child| child.name() == "body")
        .map(Element::text)
        .collect()
}

/// Writes an element the module handed back, and parses it again.
fn writes_and_parses_back(what: &str, element: &Element) -> Result<(), TestCaseError> {
    let text = String::from(element);
    parse_packet(&text).map_err(|e| {
        TestCaseError::fail(format!(
            "{what} was written as {text:?}, which does not parse: {e}"
        ))
    })?;
    Ok(())
}

async fn module(store: Arc<MemBackend>, options: ModuleOptions) -> OfflineModule {
    let access: AccessConfig = toml::from_str(&format!(
        "[access]\nmax_user_offline_messages = [{{acl = \"all\", value = {QUOTA}}}]"
    ))
    .unwrap();
    OfflineModule::builder("localhost", store)
        .domains(["example.com".parse().unwrap()])
        .options(options)
        .access(access)
        .clock(Arc::new(ManualClock::new(T0)))
        .build()
        .await
        .unwrap()
}

/// Routes the messages, then checks what came back and what is delivered.
async fn route_and_deliver(
    messages: Vec<(Element, Jid, Jid)>,
    options: ModuleOptions,
) -> Result<(), TestCaseError> {
    let store = Arc::new(MemBackend::new());
    let max_depth = options.max_stanza_depth;
    let module = module(Arc::clone(&store), options).await;
    // What each queue must deliver: the canonical sender and the bodies, in order.
    let mut stored: BTreeMap<UserKey, Vec<(String, Vec<String>)>> = BTreeMap::new();
    for (message, from, to) in &messages {
        match module.offline_message(from, to, message).await {
            Disposition::Stored {
                notify_sender,
                duplicate,
            } => {
                if let Some(event) = notify_sender {
                    writes_and_parses_back("an offline event", &event)?;
                }
                prop_assert!(
                    depth_within(message, max_depth),
                    "a message deeper than {} levels was stored",
                    max_depth
                );
                if !duplicate {
                    let key = UserKey::try_from(to).map_err(|e| {
                        TestCaseError::fail(format!("stored for {to}, keyless: {e}"))
                    })?;
                    let sender = canonical_jid(from)
                        .map_err(|e| TestCaseError::fail(format!("stored from {from}: {e}")))?;
                    let entry = (sender.as_str().to_owned(), bodies(message));
                    stored.entry(key).or_default().push(entry);
                }
            }
            Disposition::Refused(reply) => writes_and_parses_back("a refusal", &reply)?,
            Disposition::NotHandled => {
                let bounce = module.instrumentation().bounce(from, to, message);
                writes_and_parses_back("a bounce", &bounce)?;
            }
            Disposition::Dropped => {}
        }
        writes_and_parses_back(
            "a user-not-found reply",
            &user_not_found_reply(from, to, message),
        )?;
        for user in stored.keys() {
            let held = store.count_messages(user).await.unwrap().messages;
            prop_assert!(
                held <= QUOTA,
                "{} holds {} messages, over {}",
                user,
                held,
                QUOTA
            );
        }
    }
    for (user, expected) in stored {
        prop_assert_eq!(
            user.to_string().parse::<UserKey>().ok(),
            Some(user.clone()),
            "a key does not parse back to itself"
        );
        let session = Jid::new(&format!("{user}/session")).unwrap();
        let deliveries = module.resend_offline_messages(&session).await.unwrap();
        let delivered: Vec<(String, Vec<String>)> = deliveries
            .iter()
            .map(|d| (d.from.as_str().to_owned(), bodies(&d.stanza)))
            .collect();
        prop_assert_eq!(
            delivered,
            expected,
            "what was stored for {} is not what is delivered",
            user
        );
        for delivery in deliveries {
            writes_and_parses_back("a delivery", &delivery.stanza)?;
            prop_assert_eq!(
                Jid::new(delivery.from.as_str()).ok(),
                Some(delivery.from.clone()),
                "a delivery's sender does not parse back to itself"
            );
        }
    }
    // One JID, one queue: nothing is left in a queue no form of the recipients named.
    let stranded = store.list_users(None, None, 10).await.unwrap();
    prop_assert!(stranded.is_empty(), "messages stranded in {:?}", stranded);
    Ok(())
}

fn options() -> impl Strategy<Value = ModuleOptions> {
    (
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(48usize), 2usize..8],
    )
        .prop_map(
            |(store_groupchat_messages, trust_sender_delay, max_stanza_depth)| ModuleOptions {
                store_groupchat_messages,
                trust_sender_delay,
                max_stanza_depth,
                ..ModuleOptions::default()
            },
        )
}

/// Cases per run: `PROPTEST_CASES`, else 64.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok());
    ProptestConfig::with_cases(cases.unwrap_or(64))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hostile_stanzas_are_handled_safely(
        messages in prop::collection::vec(routed(), 1..8),
        options in options(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(route_and_deliver(messages, options))?;
    }
}

// The reproducers of the first fuzzing run.

fn jid(s: &str) -> Jid {
    Jid::new(s).unwrap()
}

fn stanza_of(xml: &str) -> Element {
    xml.parse().unwrap()
}

/// A chat state redeclaring `tns0` is not handled, and its bounce writes (it used to panic in
/// the writer: "automatic prefix declaration conflicts with local prefix `tns0`").
#[tokio::test]
async fn a_bounce_of_redeclared_prefixes_writes() {
    let module = module(Arc::new(MemBackend::new()), ModuleOptions::default()).await;
    let message = stanza_of(
        "<message xmlns='jabber:client' xmlns:p='urn:p' type='chat'><composing \
         xmlns='http://jabber.org/protocol/chatstates' xmlns:tns0='urn:z' p:a='1'/></message>",
    );
    let (romeo, juliet) = (jid("romeo@example.net/orchard"), jid("juliet@example.com"));
    assert_eq!(
        module.offline_message(&romeo, &juliet, &message).await,
        Disposition::NotHandled
    );
    let bounce = module.instrumentation().bounce(&romeo, &juliet, &message);
    let written = String::from(&bounce);
    assert!(written.contains("Bounce offline message"), "{written}");
}

/// The queue-full reply to such a message writes too, and so does a reply copying a child
/// that declares the reserved `xml` prefix.
#[tokio::test]
async fn a_queue_full_reply_of_hostile_children_writes() {
    let module = module(Arc::new(MemBackend::new()), ModuleOptions::default()).await;
    let (romeo, juliet) = (jid("romeo@example.net/orchard"), jid("juliet@example.com"));
    let message = stanza_of(
        "<message xmlns='jabber:client' xmlns:p='urn:p' type='chat'><body>hi</body>\
         <thing xmlns='urn:t' xmlns:tns0='urn:z' p:a='1'/><c xmlns='urn:c' \
         xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/></message>",
    );
    for _ in 0..QUOTA {
        let stored = module.offline_message(&romeo, &juliet, &message).await;
        assert!(matches!(stored, Disposition::Stored { .. }), "{stored:?}");
    }
    let Disposition::Refused(reply) = module.offline_message(&romeo, &juliet, &message).await
    else {
        panic!("the fourth message is over the quota");
    };
    let written = String::from(&reply);
    assert!(written.contains("resource-constraint"), "{written}");
    for delivery in module.resend_offline_messages(&juliet).await.unwrap() {
        let _ = String::from(&delivery.stanza);
    }
}

/// A sender whose normal form does not parse again is refused with `jid-malformed` before
/// anything is stored (it used to be stored, then dropped at delivery).
#[tokio::test]
async fn a_sender_without_a_stable_normal_form_is_refused() {
    let store = Arc::new(MemBackend::new());
    let module = module(Arc::clone(&store), ModuleOptions::default()).await;
    let romeo = jid(&format!("romeo@{}.example/orchard", "ß".repeat(40)));
    let juliet = jid("juliet@example.com");
    let message = stanza_of("<message xmlns='jabber:client' type='chat'><body>hi</body></message>");
    let Disposition::Refused(reply) = module.offline_message(&romeo, &juliet, &message).await
    else {
        panic!("the message must be refused");
    };
    let error = reply.get_child("error", "jabber:client").unwrap();
    assert!(error.has_child("jid-malformed", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    assert_eq!(error.attr("code"), Some(StanzaError::JID_MALFORMED.code));
    let juliet_key: UserKey = "juliet@example.com".parse().unwrap();
    assert_eq!(store.count_messages(&juliet_key).await.unwrap().messages, 0);
}

/// `juliet@example.com.` is juliet's queue: stored through the dotted form, delivered to a
/// plain session, and reached by purges of `example.com` and by the GDPR export.
#[tokio::test]
async fn the_trailing_dot_form_reaches_the_same_queue() {
    let module = module(Arc::new(MemBackend::new()), ModuleOptions::default()).await;
    let romeo = jid("romeo@example.net/orchard");
    let message = stanza_of("<message xmlns='jabber:client' type='chat'><body>hi</body></message>");
    for to in [
        "juliet@example.com.",
        "Juliet@example.com.",
        "juliet@example.com./balcony",
    ] {
        let stored = module.offline_message(&romeo, &jid(to), &message).await;
        assert!(
            matches!(stored, Disposition::Stored { .. }),
            "{to}: {stored:?}"
        );
    }
    let export = module
        .personal_data(&jid("juliet@example.com"))
        .await
        .unwrap();
    assert_eq!(export.len(), 3, "one queue for every form");
    assert!(export.iter().all(|row| row.to == "juliet@example.com"));
    let deliveries = module
        .resend_offline_messages(&jid("juliet@example.com/desk"))
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 3);
    assert!(
        deliveries
            .iter()
            .all(|d| d.to.to_bare().as_str() == "juliet@example.com")
    );
}

/// A JID whose domain normalises in two steps (U+03F9 to Σ to σ) is one JID: as a
/// recipient its forms fill one queue; as a sender its forms are one sender for dedupe, and it
/// is delivered under its fixed point.
#[tokio::test]
async fn a_jid_that_normalises_twice_is_one_jid() {
    let module = module(Arc::new(MemBackend::new()), ModuleOptions::default()).await;
    let message = |id: &str| {
        stanza_of(&format!(
            "<message xmlns='jabber:client' type='chat'><body>hi</body>\
             <origin-id xmlns='urn:xmpp:sid:0' id='{id}'/></message>"
        ))
    };
    let romeo = jid("romeo@example.net/orchard");
    for to in ["kelvin@x\u{3f9}.example", "kelvin@xσ.example"] {
        let stored = module.offline_message(&romeo, &jid(to), &message(to)).await;
        assert!(
            matches!(
                stored,
                Disposition::Stored {
                    duplicate: false,
                    ..
                }
            ),
            "{stored:?}"
        );
    }
    let kelvin = jid("kelvin@xσ.example/lab");
    assert_eq!(
        module.resend_offline_messages(&kelvin).await.unwrap().len(),
        2
    );

    let juliet = jid("juliet@example.com");
    let first = module
        .offline_message(&jid("kelvin@x\u{3f9}.example/lab"), &juliet, &message("o1"))
        .await;
    assert!(
        matches!(
            first,
            Disposition::Stored {
                duplicate: false,
                ..
            }
        ),
        "{first:?}"
    );
    let again = module
        .offline_message(&kelvin, &juliet, &message("o1"))
        .await;
    assert!(
        matches!(
            again,
            Disposition::Stored {
                duplicate: true,
                ..
            }
        ),
        "the same sender and origin-id: {again:?}"
    );
    let deliveries = module.resend_offline_messages(&juliet).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].from.as_str(), "kelvin@xσ.example/lab");
}

/// A message nested 7,000 levels deep, handed over on a tokio worker with the default 2 MiB
/// stack, is refused as too deep (it used to overflow the stack and abort), and its bounce is
/// built without recursing either.
#[test]
fn a_deeply_nested_message_is_refused_without_overflowing() {
    const DEPTH: usize = 7_000;
    let xml = format!(
        "<message xmlns='jabber:client' type='chat'>{}x{}</message>",
        "<n xmlns='urn:n'>".repeat(DEPTH),
        "</n>".repeat(DEPTH)
    );
    // Parsing and dropping the test's own element recurses in minidom: give that a big stack.
    let outcome = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let message = Arc::new(stanza_of(&xml));
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_stack_size(2 << 20)
                .enable_all()
                .build()
                .unwrap();
            let task = {
                let message = Arc::clone(&message);
                runtime.spawn(async move {
                    let module =
                        module(Arc::new(MemBackend::new()), ModuleOptions::default()).await;
                    let (romeo, juliet) = (jid("romeo@example.net/r"), jid("juliet@example.com"));
                    let outcome = module.offline_message(&romeo, &juliet, &message).await;
                    let bounce = module.instrumentation().bounce(&romeo, &juliet, &message);
                    let delivered = module.resend_offline_messages(&juliet).await.unwrap();
                    (outcome, String::from(&bounce), delivered.len())
                })
            };
            let result = runtime.block_on(task).unwrap();
            drop(message);
            result
        })
        .unwrap()
        .join()
        .unwrap();
    let (outcome, bounce, delivered) = outcome;
    let Disposition::Refused(reply) = outcome else {
        panic!("a message 7,000 levels deep must be refused: {outcome:?}");
    };
    assert!(String::from(&reply).contains("nested too deeply"));
    assert!(bounce.contains("Bounce offline message"));
    assert_eq!(delivered, 0, "nothing of it was stored");
}

/// A stanza a server built with characters XML forbids is refused as malformed, and the
/// refusal itself writes (it used to carry the same characters and panic).
#[tokio::test]
async fn the_refusal_of_an_unwritable_stanza_writes() {
    let module = module(Arc::new(MemBackend::new()), ModuleOptions::default()).await;
    let mut message = stanza_of("<message xmlns='jabber:client' type='chat'><body/></message>");
    message.set_attr(Namespace::NONE, xml_ncname!("id").to_owned(), "bad\u{1}id");
    message.append_text("bell \u{7}");
    let Disposition::Refused(reply) = module
        .offline_message(
            &jid("romeo@example.net/r"),
            &jid("juliet@example.com"),
            &message,
        )
        .await
    else {
        panic!("an unwritable message must be refused");
    };
    let written = String::from(&reply);
    assert!(written.contains("bad-request"), "{written}");
    assert!(!written.contains('\u{1}') && !written.contains('\u{7}'));
}

/// A depth limit set in code is held to the same range as one read from TOML: above the
/// hard limit, a message could be stored and then not delivered.
#[tokio::test]
async fn a_depth_limit_out_of_range_is_refused_at_build() {
    for depth in [0, 1, 257, usize::MAX] {
        let options = ModuleOptions {
            max_stanza_depth: depth,
            ..ModuleOptions::default()
        };
        let built = OfflineModule::builder("localhost", Arc::new(MemBackend::new()))
            .options(options)
            .build()
            .await;
        let Err(offline_module::ModuleError::Config(err)) = built else {
            panic!("max_stanza_depth = {depth} must be refused");
        };
        assert_eq!(err.key, "modules.mod_offline.max_stanza_depth");
    }
}

/// A stanza a server built with a name or namespace XML cannot carry is refused or bounced,
/// and every reply writes.
#[tokio::test]
async fn unwritable_names_and_namespaces_get_writable_replies() {
    let module = module(Arc::new(MemBackend::new()), ModuleOptions::default()).await;
    let (romeo, juliet) = (jid("romeo@example.net/r"), jid("juliet@example.com"));
    let chat = built_chat;
    let mut bad_child = chat("jabber:client");
    bad_child.append_child(Element::bare("bad name", "urn:x"));
    let mut bad_namespace = chat("jabber:client");
    bad_namespace.append_child(Element::bare("x", "urn:\u{1}"));
    for message in [bad_child, bad_namespace, chat("jabber:client\u{1}")] {
        match module.offline_message(&romeo, &juliet, &message).await {
            Disposition::Refused(reply) => writes_and_parses_back("a refusal", &reply).unwrap(),
            Disposition::NotHandled => {
                let bounce = module.instrumentation().bounce(&romeo, &juliet, &message);
                writes_and_parses_back("a bounce", &bounce).unwrap();
            }
            other => panic!("an unwritable stanza was {other:?}"),
        }
        let reply = user_not_found_reply(&romeo, &juliet, &message);
        writes_and_parses_back("a user-not-found reply", &reply).unwrap();
    }
}

/// A recipient without a localpart owns no queue: the message is not handled, whatever else
/// is wrong with it.
#[tokio::test]
async fn a_domain_recipient_is_not_handled() {
    let module = module(Arc::new(MemBackend::new()), ModuleOptions::default()).await;
    let deep = stanza_of(&format!(
        "<message xmlns='jabber:client' type='chat'>{}x{}</message>",
        "<n xmlns='urn:n'>".repeat(100),
        "</n>".repeat(100)
    ));
    let domain = jid(&format!("{}.example", "ß".repeat(40)));
    for to in [jid("example.com"), domain] {
        let outcome = module
            .offline_message(&jid("romeo@example.net/r"), &to, &deep)
            .await;
        assert_eq!(outcome, Disposition::NotHandled, "to {to}");
    }
}
