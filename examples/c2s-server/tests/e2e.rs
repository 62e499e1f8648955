//! The example server against a real client: slixmpp sessions (tests/clients/client.py) run
//! against a server started in-process on a free port, and the tests assert on what the
//! clients saw and on what the store holds.
//!
//! The Python with slixmpp is `OFFLINE_TEST_PYTHON` (`scripts/test` makes a virtualenv and
//! sets it). Without it the tests are skipped with a notice, and fail under `CI`.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use c2s_server::{Server, ServerConfig};
use offline_module::OfflineModule;
use offline_module::jid::Jid;
use offline_module::minidom::Element;
use offline_module::stanza::parse_packet;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

const DELAY: &str = "urn:xmpp:delay";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const QUEUE_FULL: &str =
    "Your contact offline message queue is full. The message has been discarded.";

/// The Python that runs the clients, or `None` (skip) outside CI.
fn python() -> Option<PathBuf> {
    match std::env::var_os("OFFLINE_TEST_PYTHON") {
        Some(python) => Some(PathBuf::from(python)),
        None if std::env::var("CI")
            .is_ok_and(|ci| !ci.is_empty() && ci != "false" && ci != "0") =>
        {
            panic!("OFFLINE_TEST_PYTHON is not set: CI needs the slixmpp client (scripts/test)")
        }
        None => {
            eprintln!("skipped: OFFLINE_TEST_PYTHON is not set (scripts/test sets it)");
            None
        }
    }
}

/// A server on a free port, with memory storage.
struct Running {
    port: u16,
    module: Arc<OfflineModule>,
    python: PathBuf,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a server whose queues hold `limit` messages, storing groupchat messages or not.
async fn start(limit: u32, store_groupchat: bool) -> Option<Running> {
    let python = python()?;
    let config = ServerConfig::from_toml_str(&format!(
        r#"
        [general]
          hosts = ["localhost"]
        [modules.mod_offline]
          backend = "memory"
          store_groupchat_messages = {store_groupchat}
        [access]
          max_user_offline_messages = [{{acl = "all", value = {limit}}}]
        [c2s_server]
          listen = "127.0.0.1:0"
        [c2s_server.accounts]
          "alice@localhost" = "alice-pw"
          "bob@localhost" = "bob-pw"
        "#
    ))
    .unwrap();
    let server = Server::bind(&config).await.unwrap();
    let port = server.local_addr().unwrap().port();
    let module = server.module("localhost").unwrap();
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Some(Running {
        port,
        module,
        python,
        stop: Some(stop),
    })
}

/// What one client session saw.
#[derive(Debug)]
struct Seen {
    logged_in: bool,
    encrypted: bool,
    messages: Vec<Element>,
    disco: Option<Vec<String>>,
}

impl Running {
    /// Runs a client session of `user` (`alice` or `bob`) with the plan's other fields.
    async fn client(&self, user: &str, plan: Value) -> Seen {
        let mut plan = plan;
        let fields = plan.as_object_mut().unwrap();
        fields.insert("jid".into(), json!(format!("{user}@localhost")));
        fields.insert("password".into(), json!(format!("{user}-pw")));
        fields.insert("host".into(), json!("127.0.0.1"));
        fields.insert("port".into(), json!(self.port));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/client.py");
        let mut child = tokio::process::Command::new(&self.python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(plan.to_string().as_bytes()).await.unwrap();
        drop(stdin);
        let output = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "the client failed: {stderr}");
        let result: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("the client printed no result ({e}): {stderr}"));
        let errors = result["errors"].as_array().unwrap();
        assert!(errors.is_empty(), "{user}'s client: {errors:?}; {stderr}");
        Seen {
            logged_in: result["logged_in"].as_bool().unwrap(),
            encrypted: result["encrypted"].as_bool().unwrap(),
            messages: result["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| parse_packet(m.as_str().unwrap()).unwrap())
                .collect(),
            disco: result["disco"].as_array().map(|features| {
                features
                    .iter()
                    .map(|f| f.as_str().unwrap().to_owned())
                    .collect()
            }),
        }
    }

    /// The messages the store holds for alice.
    async fn held_for_alice(&self) -> usize {
        let alice = Jid::new("alice@localhost").unwrap();
        self.module.personal_data(&alice).await.unwrap().len()
    }
}

fn chat(id: &str, body: &str) -> String {
    format!(
        "<message xmlns='jabber:client' to='alice@localhost' type='chat' id='{id}'><body>{body}</body></message>"
    )
}

fn body(message: &Element) -> String {
    message
        .get_child("body", "jabber:client")
        .map(Element::text)
        .unwrap_or_default()
}

/// The error condition and text of an error reply.
fn error_of(message: &Element) -> (String, String, String) {
    let error = message
        .get_child("error", "jabber:client")
        .unwrap_or_else(|| panic!("no error in {}", String::from(message)));
    let condition = error
        .children()
        .find(|c| c.ns() == STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    let text = error
        .get_child("text", STANZAS)
        .map(Element::text)
        .unwrap_or_default();
    (
        error.attr("type").unwrap_or_default().to_owned(),
        condition,
        text,
    )
}

/// Messages to offline alice are stored; when she logs in they come in order, each with one
/// delay stamp from the domain, and the store is empty after.
async fn stored_then_delivered_in_order(tls: &str) {
    let Some(server) = start(100, false).await else {
        return;
    };
    let sent: Vec<String> = (1..=3)
        .map(|i| chat(&format!("m{i}"), &format!("hello {i}")))
        .collect();
    let bob = server
        .client("bob", json!({"tls": tls, "presence": false, "send": sent}))
        .await;
    assert!(bob.logged_in);
    assert_eq!(bob.encrypted, tls == "starttls");
    assert!(bob.messages.is_empty(), "bob got {:?}", bob.messages);
    assert_eq!(server.held_for_alice().await, 3);

    let alice = server
        .client("alice", json!({"tls": tls, "expect": 3}))
        .await;
    assert_eq!(alice.encrypted, tls == "starttls");
    let bodies: Vec<String> = alice.messages.iter().map(body).collect();
    assert_eq!(bodies, ["hello 1", "hello 2", "hello 3"]);
    for message in &alice.messages {
        let delays: Vec<&Element> = message
            .children()
            .filter(|c| c.is("delay", DELAY))
            .collect();
        assert_eq!(delays.len(), 1, "{}", String::from(message));
        assert_eq!(delays[0].attr("from"), Some("localhost"));
        assert_eq!(delays[0].text(), "Offline Storage");
        assert!(delays[0].attr("stamp").is_some_and(|s| s.ends_with('Z')));
        assert_eq!(
            message
                .attr("from")
                .map(|f| f.starts_with("bob@localhost/")),
            Some(true)
        );
    }
    assert_eq!(
        server.held_for_alice().await,
        0,
        "delivered messages were not removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_messages_come_in_order_with_one_delay_over_plain_tcp() {
    stored_then_delivered_in_order("plain").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_messages_come_in_order_with_one_delay_over_starttls() {
    stored_then_delivered_in_order("starttls").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_limit_the_sender_gets_resource_constraint_for_its_message() {
    let Some(server) = start(2, false).await else {
        return;
    };
    let sent: Vec<String> = (1..=3).map(|i| chat(&format!("m{i}"), "hi")).collect();
    let bob = server
        .client("bob", json!({"send": sent, "expect": 1, "presence": false}))
        .await;
    assert_eq!(bob.messages.len(), 1, "{:?}", bob.messages);
    let reply = &bob.messages[0];
    assert_eq!(reply.attr("type"), Some("error"));
    assert_eq!(reply.attr("id"), Some("m3"));
    assert_eq!(reply.attr("from"), Some("alice@localhost"));
    assert_eq!(
        error_of(reply),
        (
            "wait".into(),
            "resource-constraint".into(),
            QUEUE_FULL.into()
        )
    );
    assert_eq!(server.held_for_alice().await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_state_alone_is_bounced_with_503_and_not_stored() {
    let Some(server) = start(100, false).await else {
        return;
    };
    let composing = "<message xmlns='jabber:client' to='alice@localhost' type='chat' id='cs1'>\
        <composing xmlns='http://jabber.org/protocol/chatstates'/></message>";
    let bob = server
        .client(
            "bob",
            json!({"send": [composing], "expect": 1, "presence": false}),
        )
        .await;
    let reply = &bob.messages[0];
    assert_eq!(reply.attr("id"), Some("cs1"));
    assert_eq!(
        reply
            .get_child("error", "jabber:client")
            .and_then(|e| e.attr("code")),
        Some("503")
    );
    assert_eq!(
        error_of(reply),
        (
            "cancel".into(),
            "service-unavailable".into(),
            "Bounce offline message".into()
        )
    );
    assert_eq!(server.held_for_alice().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_message_is_dropped_silently() {
    let Some(server) = start(100, false).await else {
        return;
    };
    let error = "<message xmlns='jabber:client' to='alice@localhost' type='error' id='e1'>\
        <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>\
        </message>";
    let bob = server
        .client("bob", json!({"send": [error], "presence": false}))
        .await;
    assert!(bob.messages.is_empty(), "bob got {:?}", bob.messages);
    assert_eq!(server.held_for_alice().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_to_a_user_without_an_account_gets_user_not_found() {
    let Some(server) = start(100, false).await else {
        return;
    };
    let message = "<message xmlns='jabber:client' to='nobody@localhost' type='chat' id='n1'>\
        <body>anyone?</body></message>";
    let bob = server
        .client(
            "bob",
            json!({"send": [message], "expect": 1, "presence": false}),
        )
        .await;
    assert_eq!(
        error_of(&bob.messages[0]),
        (
            "cancel".into(),
            "service-unavailable".into(),
            "User not found".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn groupchat_messages_are_stored_only_with_store_groupchat_messages() {
    let groupchat = "<message xmlns='jabber:client' to='alice@localhost' type='groupchat' id='g1'>\
        <body>to the room</body></message>";
    for (store, held, bounced) in [(true, 1, 0), (false, 0, 1)] {
        let Some(server) = start(100, store).await else {
            return;
        };
        let bob = server
            .client(
                "bob",
                json!({"send": [groupchat], "expect": bounced, "presence": false}),
            )
            .await;
        assert_eq!(
            server.held_for_alice().await,
            held,
            "store_groupchat_messages = {store}"
        );
        assert_eq!(
            bob.messages.len(),
            bounced,
            "store_groupchat_messages = {store}"
        );
        if store {
            let alice = server.client("alice", json!({"expect": 1})).await;
            assert_eq!(alice.messages[0].attr("type"), Some("groupchat"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_advertises_msgoffline() {
    let Some(server) = start(100, false).await else {
        return;
    };
    let bob = server
        .client("bob", json!({"disco": "localhost", "presence": false}))
        .await;
    let features = bob.disco.unwrap();
    assert!(features.iter().any(|f| f == "msgoffline"), "{features:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_cut_off_midway_loses_nothing() {
    let Some(server) = start(1000, false).await else {
        return;
    };
    // More than two pages of 50: the client answers the ping after the first page, and
    // leaves in the middle of the second, before the ping that follows it.
    let sent: Vec<String> = (0..120)
        .map(|i| chat(&format!("m{i}"), &format!("n{i}")))
        .collect();
    server
        .client(
            "bob",
            json!({"send": sent, "presence": false, "timeout": 30}),
        )
        .await;
    assert_eq!(server.held_for_alice().await, 120);

    let cut = server.client("alice", json!({"abort_after": 1})).await;
    assert_eq!(cut.messages.len(), 1);
    assert_eq!(body(&cut.messages[0]), "n0");
    assert_eq!(
        server.held_for_alice().await,
        120,
        "an unconfirmed page was removed"
    );

    let again = server
        .client("alice", json!({"expect": 120, "timeout": 30}))
        .await;
    let bodies: Vec<String> = again.messages.iter().map(body).collect();
    let expected: Vec<String> = (0..120).map(|i| format!("n{i}")).collect();
    assert_eq!(bodies, expected);
    assert_eq!(server.held_for_alice().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_to_an_available_user_goes_to_her_session_live() {
    let Some(server) = start(100, false).await else {
        return;
    };
    // Bob answers whatever reaches him, live or stored at his login; alice is available from
    // before she writes to him, so his answer must reach her live, without a delay stamp.
    let hello = "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='h1'>\
        <body>hello</body></message>";
    let (bob, alice) = tokio::join!(
        server.client("bob", json!({"echo": true, "expect": 1, "timeout": 20})),
        server.client(
            "alice",
            json!({"send": [hello], "expect": 1, "timeout": 20})
        ),
    );
    assert_eq!(bob.messages.iter().map(body).collect::<Vec<_>>(), ["hello"]);
    assert_eq!(alice.messages.len(), 1, "{:?}", alice.messages);
    let echo = &alice.messages[0];
    assert_eq!(body(echo), "echo: hello");
    assert!(
        echo.get_child("delay", DELAY).is_none(),
        "{}",
        String::from(echo)
    );
    assert_eq!(server.held_for_alice().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sender_who_asks_gets_the_xep_0022_offline_event() {
    let Some(server) = start(100, false).await else {
        return;
    };
    let asking = "<message xmlns='jabber:client' to='alice@localhost' type='chat' id='ev1'>\
        <body>are you there?</body><x xmlns='jabber:x:event'><offline/></x></message>";
    let bob = server
        .client(
            "bob",
            json!({"send": [asking], "expect": 1, "presence": false}),
        )
        .await;
    let event = bob.messages[0]
        .get_child("x", "jabber:x:event")
        .unwrap_or_else(|| panic!("no event: {}", String::from(&bob.messages[0])));
    assert!(event.get_child("offline", "jabber:x:event").is_some());
    assert_eq!(
        event.get_child("id", "jabber:x:event").map(Element::text),
        Some("ev1".to_owned())
    );
    assert_eq!(bob.messages[0].attr("from"), Some("alice@localhost"));
    assert_eq!(server.held_for_alice().await, 1);
}
