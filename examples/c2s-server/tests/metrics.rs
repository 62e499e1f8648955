//! The server's Prometheus endpoint, scraped as Prometheus does after messages passed: the
//! module's metrics under MongooseIM's names. A test binary of its own: the recorder is the
//! process's.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use c2s_server::{Server, ServerConfig};
use common::{BOB_PLAIN, login_as, read_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Logs bob in and binds a session.
async fn login_bob(address: SocketAddr) -> TcpStream {
    login_as(address, BOB_PLAIN, "desk").await
}

/// The exposition at `address`.
async fn scrape(address: SocketAddr) -> String {
    let mut socket = TcpStream::connect(address).await.unwrap();
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn a_stored_message_and_a_bounce_show_under_mongooseim_names() {
    let config = ServerConfig::from_toml_str(
        r#"
        [general]
          hosts = ["localhost"]
        [modules.mod_offline]
          backend = "memory"
        [c2s_server]
          listen = "127.0.0.1:0"
        [c2s_server.accounts]
          "alice@localhost" = "alice-pw"
          "bob@localhost" = "bob-pw"
        "#,
    )
    .unwrap();
    let server = Server::bind(&config).await.unwrap();
    let address = server.local_addr().unwrap();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    server.serve_metrics(metrics).unwrap();
    tokio::spawn(server.run(std::future::pending()));

    let mut bob = login_bob(address).await;
    // Alice has no session: the chat message is stored, the chat state bounced.
    bob.write_all(
        b"<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>\
          <message to='alice@localhost' type='chat' id='m2'>\
          <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    )
    .await
    .unwrap();
    let bounce = read_until(&mut bob, "Bounce offline message").await;
    assert!(
        bounce.contains("id='m2'") || bounce.contains("id=\"m2\""),
        "{bounce}"
    );

    let exposition = scrape(metrics).await;
    let lines: Vec<&str> = exposition.lines().collect();
    for expected in [
        r#"mod_offline_mem_count{host_type="localhost",function="write_messages"} 1"#,
        r#"mod_offline_stored_count{host_type="localhost"} 1"#,
        r#"sm_message_bounced_count{host_type="localhost"} 1"#,
        // Counted when the endpoint started, before any message.
        r#"mod_offline_held_messages{host_type="localhost"} 0"#,
        "# TYPE mod_offline_mem_time histogram",
        r#"mod_offline_mem_time_bucket{host_type="localhost",function="write_messages",le="5000000"} 1"#,
    ] {
        assert!(
            lines.contains(&expected),
            "{expected} not in:\n{exposition}"
        );
    }
    // A second recorder in the same process is refused, with the address named.
    let again = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = Server::bind(&config).await.unwrap();
    let error = server.serve_metrics(again).unwrap_err().to_string();
    assert!(error.contains(&again.to_string()), "{error}");
}
