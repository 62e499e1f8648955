//! Streams byte by byte, where client libraries hide what matters: the features after login,
//! whitespace between a login and the stream restart, oversized and deeply nested stanzas,
//! clients that never answer, iq routing between a user's sessions.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use c2s_server::{Server, ServerConfig};
use common::{BOB_PLAIN, HEADER, login_as, open, read_until};
use offline_module::OfflineModule;
use offline_module::jid::Jid;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// `\0alice\0alice-pw` in base64.
const ALICE_PLAIN: &str = "AGFsaWNlAGFsaWNlLXB3";

async fn server() -> std::net::SocketAddr {
    server_and_module().await.0
}

async fn server_and_module() -> (std::net::SocketAddr, Arc<OfflineModule>) {
    let config = ServerConfig::from_toml_str(
        r#"
        [general]
          hosts = ["localhost"]
        [modules.mod_offline]
          backend = "memory"
        [c2s_server]
          listen = "127.0.0.1:0"
          max_stanza_size = 8192
          ping_timeout = 1
        [c2s_server.accounts]
          "alice@localhost" = "alice-pw"
          "bob@localhost" = "bob-pw"
        "#,
    )
    .unwrap();
    let server = Server::bind(&config).await.unwrap();
    let address = server.local_addr().unwrap();
    let module = server.module("localhost").unwrap();
    tokio::spawn(server.run(std::future::pending()));
    (address, module)
}

/// Logs alice in as `desk`, up to the bound session.
async fn login(address: std::net::SocketAddr) -> TcpStream {
    login_as(address, ALICE_PLAIN, "desk").await
}

#[tokio::test]
async fn features_after_login_offer_binding_and_no_mechanisms_despite_whitespace() {
    let (mut socket, before) = open(server().await).await;
    assert!(before.contains("<mechanism>PLAIN</mechanism>"), "{before}");
    assert!(before.contains("starttls"), "{before}");
    // A newline after </auth>, as go-xmpp writes, before the restart.
    let auth = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{ALICE_PLAIN}</auth>\n"
    );
    socket.write_all(auth.as_bytes()).await.unwrap();
    let success = read_until(&mut socket, "success").await;
    assert!(success.contains("<success"), "{success}");
    socket.write_all(b" \n").await.unwrap();
    socket.write_all(HEADER.as_bytes()).await.unwrap();
    let after = read_until(&mut socket, "</stream:features>").await;
    assert!(
        after.contains("urn:ietf:params:xml:ns:xmpp-bind"),
        "{after}"
    );
    assert!(!after.contains("mechanisms"), "RFC 6120 §6.4.6: {after}");
    socket
        .write_all(
            b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
              <resource>desk</resource></bind></iq>",
        )
        .await
        .unwrap();
    let bound = read_until(&mut socket, "</iq>").await;
    assert!(bound.contains("<jid>alice@localhost/desk</jid>"), "{bound}");
}

#[tokio::test]
async fn a_wrong_password_or_mechanism_is_refused() {
    let (mut socket, _) = open(server().await).await;
    // `\0alice\0wrong`.
    socket
        .write_all(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>\
              AGFsaWNlAHdyb25n</auth>",
        )
        .await
        .unwrap();
    let failure = read_until(&mut socket, "</failure>").await;
    assert!(failure.contains("<not-authorized"), "{failure}");
    socket
        .write_all(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>")
        .await
        .unwrap();
    let failure = read_until(&mut socket, "</failure>").await;
    assert!(failure.contains("<invalid-mechanism"), "{failure}");
}

#[tokio::test]
async fn a_stanza_over_max_stanza_size_ends_the_stream_with_policy_violation() {
    let (mut socket, _) = open(server().await).await;
    let huge = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        "A".repeat(20_000)
    );
    // The server may close before it read everything.
    let _ = socket.write_all(huge.as_bytes()).await;
    let reply = read_until(&mut socket, "</stream:stream>").await;
    assert!(reply.contains("policy-violation"), "{reply}");
}

#[tokio::test]
async fn an_unknown_domain_gets_host_unknown() {
    let address = server().await;
    let mut socket = TcpStream::connect(address).await.unwrap();
    let header = HEADER.replace("to='localhost'", "to='elsewhere.example'");
    socket.write_all(header.as_bytes()).await.unwrap();
    let reply = read_until(&mut socket, "</stream:stream>").await;
    assert!(reply.contains("host-unknown"), "{reply}");
}

#[tokio::test]
async fn a_client_that_never_confirms_a_delivery_is_disconnected_and_loses_nothing() {
    let (address, module) = server_and_module().await;
    let alice = Jid::new("alice@localhost").unwrap();
    let message = "<message xmlns='jabber:client' type='chat' id='m1'><body>hi</body></message>"
        .parse()
        .unwrap();
    let bob = Jid::new("bob@localhost/phone").unwrap();
    let _ = module.offline_message(&bob, &alice, &message).await;
    assert_eq!(module.personal_data(&alice).await.unwrap().len(), 1);

    let mut socket = login(address).await;
    socket.write_all(b"<presence/>").await.unwrap();
    let delivered = read_until(&mut socket, "urn:xmpp:ping").await;
    assert!(delivered.contains("<body>hi</body>"), "{delivered}");
    // The ping after the page is never answered (ping_timeout = 1 s).
    let end = read_until(&mut socket, "</stream:stream>").await;
    assert!(end.contains("connection-timeout"), "{end}");
    assert_eq!(
        module.personal_data(&alice).await.unwrap().len(),
        1,
        "an unconfirmed page was removed"
    );
}

#[tokio::test]
async fn deep_nesting_ends_the_stream_before_it_is_parsed_and_the_server_lives_on() {
    let (address, module) = server_and_module().await;
    // Before login: a small stanza, nested far deeper than any stanza may be.
    let (mut socket, _) = open(address).await;
    let _ = socket.write_all("<a>".repeat(2000).as_bytes()).await;
    let reply = read_until(&mut socket, "</stream:stream>").await;
    assert!(reply.contains("policy-violation"), "{reply}");
    assert!(reply.contains("nested deeper"), "{reply}");
    // After login: a message one level deeper than the limit; one within it is handled
    // (mod_offline refuses it as too deep for storage, with an error reply).
    let mut alice = login(address).await;
    let nested = |levels: usize| {
        format!(
            "<message to='bob@localhost' type='chat' id='deep'>{}{}</message>",
            "<x xmlns='urn:example'>".repeat(levels),
            "</x>".repeat(levels)
        )
    };
    alice.write_all(nested(100).as_bytes()).await.unwrap();
    let refused = read_until(&mut alice, "</message>").await;
    assert!(refused.contains("not-acceptable"), "{refused}");
    alice.write_all(nested(300).as_bytes()).await.unwrap();
    let reply = read_until(&mut alice, "</stream:stream>").await;
    assert!(reply.contains("policy-violation"), "{reply}");
    let bob = Jid::new("bob@localhost").unwrap();
    assert!(module.personal_data(&bob).await.unwrap().is_empty());
    // The server still serves.
    let (_, features) = open(address).await;
    assert!(features.contains("PLAIN"), "{features}");
}

#[tokio::test]
async fn a_live_message_held_during_delivery_is_stored_when_the_session_drops() {
    let (address, module) = server_and_module().await;
    let alice = Jid::new("alice@localhost").unwrap();
    let bob = Jid::new("bob@localhost/phone").unwrap();
    let stored = "<message xmlns='jabber:client' type='chat' id='s1'><body>stored</body></message>"
        .parse()
        .unwrap();
    let _ = module.offline_message(&bob, &alice, &stored).await;
    // Alice becomes available; the stored page is written and its ping is not answered yet.
    let mut desk = login(address).await;
    desk.write_all(b"<presence/>").await.unwrap();
    let page = read_until(&mut desk, "urn:xmpp:ping").await;
    assert!(page.contains("<body>stored</body>"), "{page}");
    // Bob's live message reaches alice's session, which holds it behind the stored ones.
    let mut phone = login_as(address, BOB_PLAIN, "phone").await;
    phone
        .write_all(b"<message to='alice@localhost' type='chat' id='l1'><body>live</body></message>")
        .await
        .unwrap();
    phone
        .write_all(b"<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    read_until(&mut phone, "p1").await;
    // Alice's connection drops: nothing was confirmed, nothing is lost.
    drop(desk);
    let mut held = Vec::new();
    for _ in 0..50 {
        held = module.personal_data(&alice).await.unwrap();
        if held.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let packets: Vec<&str> = held.iter().map(|row| row.packet.as_str()).collect();
    assert_eq!(packets.len(), 2, "{packets:?}");
    assert!(
        packets[0].contains("stored") && packets[1].contains("live"),
        "{packets:?}"
    );
}

#[tokio::test]
async fn an_iq_to_another_session_of_the_same_user_reaches_it() {
    let address = server().await;
    let mut desk = login(address).await;
    let mut phone = login_as(address, ALICE_PLAIN, "phone").await;
    desk.write_all(
        b"<iq type='get' id='d1' to='alice@localhost/phone'>\
          <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await
    .unwrap();
    let request = read_until(&mut phone, "</iq>").await;
    assert!(
        request.contains("id=\"d1\"") || request.contains("id='d1'"),
        "{request}"
    );
    assert!(request.contains("alice@localhost/desk"), "{request}");
}

#[tokio::test]
async fn an_error_message_to_another_domain_gets_no_reply() {
    let address = server().await;
    let mut desk = login(address).await;
    desk.write_all(
        b"<message to='someone@elsewhere.example' type='error' id='e1'>\
          <error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>\
          </message><message to='someone@elsewhere.example' type='chat' id='c1'><body>hi</body></message>",
    )
    .await
    .unwrap();
    // The only reply is the chat's; nothing comes before it for the error.
    let replies = read_until(&mut desk, "</message>").await;
    assert!(replies.contains("remote-server-not-found"), "{replies}");
    assert!(
        !replies.contains("e1"),
        "an error answered an error: {replies}"
    );
}
