//! `backend = "rdbms"` opened from the configuration, with the cargo features that build it
//! in: SQLite from a URL, and PostgreSQL and MariaDB from MongooseIM's outgoing pool when the
//! local servers are given (`OFFLINE_TEST_POSTGRES_URL`, `OFFLINE_TEST_MYSQL_URL`, which
//! `scripts/test` sets).

#![cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::panic)]

use offline_module::jid::Jid;
use offline_module::minidom::Element;
use offline_module::{Disposition, OfflineConfig, OfflineModule};

fn jid(s: &str) -> Jid {
    Jid::new(s).unwrap()
}

/// Stores a message through a module built from `toml`, delivers it, and checks its delay
/// stamp and body.
async fn store_and_deliver(toml: &str) {
    let config = OfflineConfig::from_toml_str(toml).unwrap();
    let module = OfflineModule::from_config("localhost", &config)
        .unwrap()
        .build()
        .await
        .unwrap_or_else(|e| panic!("opening the configured store: {e}"));
    let romeo = jid("romeo@localhost/orchard");
    let juliet = jid(&format!("juliet{:08x}@localhost", random_tag()));
    let message: Element = format!(
        "<message xmlns='jabber:client' from='{romeo}' to='{juliet}' type='chat' id='m1'>\
         <body>Wherefore art thou?</body></message>"
    )
    .parse()
    .unwrap();
    let stored = module.offline_message(&romeo, &juliet, &message).await;
    assert!(
        matches!(stored, Disposition::Stored { .. }),
        "the message is stored: {stored:?}"
    );
    let delivered = module
        .resend_offline_messages(&Jid::new(&format!("{juliet}/balcony")).unwrap())
        .await
        .unwrap();
    assert_eq!(delivered.len(), 1);
    let body = delivered[0].stanza.get_child("body", "jabber:client");
    assert_eq!(
        body.map(Element::text).as_deref(),
        Some("Wherefore art thou?")
    );
    assert!(
        delivered[0]
            .stanza
            .get_child("delay", "urn:xmpp:delay")
            .is_some()
    );
}

/// A random tag, so that runs against a shared database do not meet.
fn random_tag() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) as u32
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_from_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("offline.db").display());
    store_and_deliver(&format!(
        "[general]\nhosts = [\"localhost\"]\n[modules.mod_offline]\nbackend = \"rdbms\"\n\
         rdbms.url = \"{url}\"\nrdbms.pool_size = 2\nrdbms.checkout_timeout = 2000"
    ))
    .await;
}

/// MongooseIM's outgoing pool for the server at `url` (`scheme://user@host[:port]/database`).
fn pool(driver: &str, url: &str, default_port: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let (user, rest) = rest.split_once('@').unwrap();
    let (address, database) = rest.split_once('/').unwrap();
    let (host, port) = address.split_once(':').unwrap_or((address, default_port));
    format!(
        "[general]\nhosts = [\"localhost\"]\n[modules.mod_offline]\nbackend = \"rdbms\"\n\
         [outgoing_pools.rdbms.default]\nworkers = 3\n\
         [outgoing_pools.rdbms.default.connection]\ndriver = \"{driver}\"\nhost = \"{host}\"\n\
         port = {port}\ndatabase = \"{database}\"\nusername = \"{user}\"\npassword = \"\"\n"
    )
}

/// The URL in `variable`, or why the test is skipped (outside CI).
fn database(variable: &str) -> Option<String> {
    let url = std::env::var(variable).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "{variable} is not set, and CI requires it"
        );
        eprintln!("skipped: {variable} is not set (scripts/test sets it)");
    }
    url
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn postgres_from_the_mongooseim_pool() {
    if let Some(url) = database("OFFLINE_TEST_POSTGRES_URL") {
        store_and_deliver(&pool("pgsql", &url, "5432")).await;
    }
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_from_the_mongooseim_pool() {
    if let Some(url) = database("OFFLINE_TEST_MYSQL_URL") {
        store_and_deliver(&pool("mysql", &url, "3306")).await;
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn a_database_that_does_not_answer_is_an_open_error_naming_it() {
    // Port 9 (discard) has no PostgreSQL behind it.
    let config = OfflineConfig::from_toml_str(
        "[general]\nhosts = [\"localhost\"]\n[modules.mod_offline]\nbackend = \"rdbms\"\n\
         rdbms.url = \"postgres://nobody@127.0.0.1:9/offline\"\nrdbms.connect_timeout = 2000",
    )
    .unwrap();
    let err = OfflineModule::from_config("localhost", &config)
        .unwrap()
        .build()
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(err, offline_module::ModuleError::Open(_)),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("postgres database"),
        "the error names the database: {err}"
    );
}
