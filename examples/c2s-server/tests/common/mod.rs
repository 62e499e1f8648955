//! What the byte-level tests share: opening a stream, logging in, reading until a text comes.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client's stream header to localhost.
pub const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// `\0bob\0bob-pw` in base64.
pub const BOB_PLAIN: &str = "AGJvYgBib2ItcHc=";

/// Connects and opens a stream; returns the socket and the features the server offered.
pub async fn open(address: SocketAddr) -> (TcpStream, String) {
    let mut socket = TcpStream::connect(address).await.unwrap();
    socket.write_all(HEADER.as_bytes()).await.unwrap();
    let features = read_until(&mut socket, "</stream:features>").await;
    (socket, features)
}

/// Logs in with a PLAIN response and binds `resource`.
pub async fn login_as(address: SocketAddr, plain: &str, resource: &str) -> TcpStream {
    let (mut socket, _) = open(address).await;
    let auth =
        format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>");
    socket.write_all(auth.as_bytes()).await.unwrap();
    read_until(&mut socket, "success").await;
    socket.write_all(HEADER.as_bytes()).await.unwrap();
    read_until(&mut socket, "</stream:features>").await;
    let bind = format!(
        "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>{resource}</resource></bind></iq>"
    );
    socket.write_all(bind.as_bytes()).await.unwrap();
    let bound = read_until(&mut socket, "</iq>").await;
    assert!(bound.contains(&format!("/{resource}</jid>")), "{bound}");
    socket
}

/// Reads until `text` has come, the connection closed, or nothing came for five seconds;
/// returns all read.
pub async fn read_until(socket: &mut TcpStream, text: &str) -> String {
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while !seen.contains(text) {
        match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => seen.push_str(&String::from_utf8_lossy(&buffer[..n])),
        }
    }
    seen
}
