//! A minimal router with `mod_offline` wired in, on the backend MongooseIM's default `mnesia` opens: juliet is offline,
//! romeo writes to her until her queue is full, a chat state and an error message pass by, then
//! juliet comes online and gets her messages with their delay stamps. Every step is printed.
//!
//! `cargo run -p offline-module --example offline_router`

#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::error::Error;

use offline_module::jid::{BareJid, Jid};
use offline_module::minidom::Element;
use offline_module::{Disposition, OfflineConfig, OfflineModule};

/// The server's configuration, in MongooseIM's format.
const CONFIG: &str = r#"
[general]
  hosts = ["example.com"]

[modules.mod_offline]
  backend = "mnesia"

[acl]
  admin = [{user = "admin"}]

[access]
  max_user_offline_messages = [
    {acl = "admin", value = 5000},
    {acl = "all", value = 3}
  ]
"#;

/// Routes stanzas to online users, and hands those for offline users to `mod_offline`.
struct Router {
    online: HashSet<BareJid>,
    offline: OfflineModule,
}

impl Router {
    /// Routes a message; `to` is offline unless it sent available presence.
    async fn route_message(&self, from: &Jid, to: &Jid, message: &Element) {
        if self.online.contains(&to.to_bare()) {
            println!("  -> {to}: {}", String::from(message));
            return;
        }
        match self.offline.offline_message(from, to, message).await {
            Disposition::Stored {
                notify_sender,
                duplicate,
            } => {
                let already = if duplicate { " (already held)" } else { "" };
                println!("  stored for {}{already}", to.to_bare());
                if let Some(event) = notify_sender {
                    println!("  -> {from}: {}", String::from(&event));
                }
            }
            Disposition::Dropped => println!("  dropped"),
            Disposition::Refused(reply) => println!("  -> {from}: {}", String::from(&reply)),
            Disposition::NotHandled => {
                // No mod_offline_stub configured: the server bounces the message.
                let bounce = self.offline.instrumentation().bounce(from, to, message);
                println!("  -> {from}: {}", String::from(&bounce));
            }
        }
    }

    /// `user` sent available presence with a non-negative priority: its stored messages go to
    /// that session.
    async fn available(&mut self, user: &Jid) -> Result<(), Box<dyn Error>> {
        self.online.insert(user.to_bare());
        for delivery in self.offline.resend_offline_messages(user).await? {
            println!("  -> {user}: {}", String::from(&delivery.stanza));
        }
        Ok(())
    }
}

fn message(kind: &str, id: &str, children: &str) -> Result<Element, Box<dyn Error>> {
    let xml = format!(
        "<message xmlns='jabber:client' from='romeo@example.com/orchard' \
         to='juliet@example.com' type='{kind}' id='{id}'>{children}</message>"
    );
    Ok(xml.parse()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // The module logs through `tracing`; a server installs the subscriber it likes.
    tracing_subscriber::fmt().with_target(false).init();
    let config = OfflineConfig::from_toml_str(CONFIG)?;
    let mut router = Router {
        online: HashSet::new(),
        // Opens the backend the configuration names.
        offline: OfflineModule::from_config("example.com", &config)?
            .build()
            .await?,
    };
    let romeo = Jid::new("romeo@example.com/orchard")?;
    let juliet = Jid::new("juliet@example.com")?;

    let lines = [
        "But soft, what light through yonder window breaks?",
        "It is the east, and Juliet is the sun.",
        "Arise, fair sun, and kill the envious moon.",
        "She speaks, yet she says nothing.",
    ];
    for (n, line) in lines.iter().enumerate() {
        println!("romeo sends message {} (juliet's limit is 3):", n + 1);
        let chat = message(
            "chat",
            &format!("m{}", n + 1),
            &format!("<body>{line}</body>"),
        )?;
        router.route_message(&romeo, &juliet, &chat).await;
    }

    println!("romeo's client sends a chat state:");
    let composing = message(
        "chat",
        "s1",
        "<composing xmlns='http://jabber.org/protocol/chatstates'/>",
    )?;
    router.route_message(&romeo, &juliet, &composing).await;

    println!("an error message arrives for juliet:");
    let error = message("error", "e1", "<body>delivery failed</body>")?;
    router.route_message(&romeo, &juliet, &error).await;

    println!("juliet comes online:");
    router
        .available(&Jid::new("juliet@example.com/balcony")?)
        .await?;

    println!("an operator purges expired messages of example.com:");
    let purged = router
        .offline
        .remove_expired_messages("example.com")
        .await?;
    println!("  {purged} removed");
    Ok(())
}
