//! Stores messages for an offline user, runs into the quota, skips a resent duplicate and
//! delivers the queue when the user comes back, printing each step.
//!
//! `cargo run -p offline-mem --example offline_demo`

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use offline_core::{NewMessage, OfflineBackend, OfflineError, Quota, UserKey};
use offline_mem::MemBackend;

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn chat(id: &str, body: &str) -> NewMessage {
    NewMessage::new(
        now_micros(),
        "romeo@example.net/orchard",
        "juliet@example.com",
        format!("<message type='chat' id='{id}'><body>{body}</body></message>"),
    )
    .dedupe_key(format!("romeo@example.net {id}"))
}

#[tokio::main]
async fn main() -> Result<(), OfflineError> {
    let store: Arc<dyn OfflineBackend> = Arc::new(MemBackend::new());
    let juliet: UserKey = "Juliet@Example.COM/balcony".parse()?;
    let quota = Quota::messages(3);
    println!("juliet is offline; her queue ({juliet}) holds at most {quota}");

    let lines = [
        ("m1", "But soft, what light through yonder window breaks?"),
        ("m2", "It is the east, and Juliet is the sun."),
        ("m3", "Arise, fair sun, and kill the envious moon."),
        ("m4", "She speaks, yet she says nothing."),
    ];
    for (id, body) in lines {
        match store
            .write_messages(&juliet, vec![chat(id, body)], quota, now_micros())
            .await
        {
            Ok(report) => println!("stored {id} ({} stored)", report.stored),
            Err(OfflineError::QuotaExceeded { stored, .. }) => {
                println!("refused {id}: queue full with {stored}; the sender gets an error")
            }
            Err(other) => return Err(other),
        }
    }

    let resent = store
        .write_messages(&juliet, vec![chat("m1", lines[0].1)], quota, now_micros())
        .await?;
    println!("m1 resent: {} duplicate skipped", resent.duplicates);

    let held = store.count_messages(&juliet).await?;
    println!("juliet's queue holds {held}");

    println!("juliet comes online; delivering in arrival order:");
    for stored in store.pop_messages(&juliet, now_micros()).await? {
        println!("  #{} {}", stored.seq, stored.message.packet);
    }
    let left = store.count_messages(&juliet).await?;
    println!("queue after delivery: {left}");
    Ok(())
}
