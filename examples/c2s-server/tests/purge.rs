//! The server's scheduled purge (`c2s_server.purge_expired_every`): inside the process that
//! holds the store, as a RocksDB store needs.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use c2s_server::{Server, ServerConfig};
use offline_module::Disposition;
use offline_module::jid::Jid;
use offline_module::minidom::Element;

#[tokio::test]
async fn expired_messages_are_removed_on_the_schedule_and_the_rest_kept() {
    let config = ServerConfig::from_toml_str(
        r#"
        [general]
          hosts = ["localhost"]
        [modules.mod_offline]
          backend = "memory"
        [c2s_server]
          listen = "127.0.0.1:0"
          purge_expired_every = 1
        [c2s_server.accounts]
          "alice@localhost" = "alice-pw"
        "#,
    )
    .unwrap();
    let server = Server::bind(&config).await.unwrap();
    server.purge_expired_every(config.purge_expired_every.unwrap());
    let module = server.module("localhost").unwrap();
    let (romeo, alice) = (
        Jid::new("romeo@example.net/orchard").unwrap(),
        Jid::new("alice@localhost").unwrap(),
    );
    for body in [
        "<body>soon gone</body><x xmlns='jabber:x:expire' seconds='1'/>",
        "<body>kept</body>",
    ] {
        let message: Element =
            format!("<message xmlns='jabber:client' type='chat'>{body}</message>")
                .parse()
                .unwrap();
        let stored = module.offline_message(&romeo, &alice, &message).await;
        assert!(matches!(stored, Disposition::Stored { .. }), "{stored:?}");
    }
    // The export lists expired messages until they are removed.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let held = module.personal_data(&alice).await.unwrap();
        if held.len() == 1 {
            assert!(held[0].packet.contains("kept"), "{held:?}");
            break;
        }
        assert!(Instant::now() < deadline, "not purged: {held:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
