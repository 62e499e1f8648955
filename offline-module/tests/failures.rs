//! The module when its backend fails, with a mockall mock of the backend: a failed write is an
//! internal error (never "queue full"), a failed pop delivers nothing and loses nothing, failed
//! admin calls report their error.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use async_trait::async_trait;
use mockall::mock;
use offline_core::{
    Domain, NewMessage, OfflineBackend, OfflineError, QueueStats, Quota, Result, StoredMessage,
    UserKey, WriteReport,
};
use offline_module::jid::Jid;
use offline_module::minidom::Element;
use offline_module::{Disposition, ManualClock, ModuleError, OfflineModule};

mock! {
    #[derive(Debug)]
    Backend {}

    #[async_trait]
    impl OfflineBackend for Backend {
        fn name(&self) -> &'static str;
        async fn write_messages(&self, user: &UserKey, messages: Vec<NewMessage>, quota: Quota, now: i64) -> Result<WriteReport>;
        async fn pop_messages(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>>;
        async fn fetch_messages(&self, user: &UserKey, after: Option<u64>, limit: Option<usize>, now: i64) -> Result<Vec<StoredMessage>>;
        async fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64>;
        async fn count_messages(&self, user: &UserKey) -> Result<QueueStats>;
        // Named lifetimes, as async-trait writes them, so that mockall can mock Option<&T>.
        async fn list_users<'life0, 'life1, 'life2>(&'life0 self, domain: Option<&'life1 Domain>, after: Option<&'life2 UserKey>, limit: usize) -> Result<Vec<UserKey>>;
        async fn remove_expired_messages(&self, domain: &Domain, now: i64) -> Result<u64>;
        async fn remove_old_messages(&self, domain: &Domain, cutoff: i64) -> Result<u64>;
        async fn remove_user(&self, user: &UserKey) -> Result<u64>;
        async fn remove_domain(&self, domain: &Domain) -> Result<u64>;
    }
}

const T0: i64 = 1_700_000_000_000_000;

/// A mock that answers `name()`: the module asks it for metric names.
fn backend() -> MockBackend {
    let mut backend = MockBackend::new();
    backend.expect_name().return_const("mock");
    backend
}

async fn module(backend: MockBackend) -> OfflineModule {
    OfflineModule::builder("localhost", Arc::new(backend))
        .domain("localhost".parse().unwrap())
        .clock(Arc::new(ManualClock::new(T0)))
        .build()
        .await
        .unwrap()
}

fn jids() -> (Jid, Jid) {
    (
        Jid::new("alice@localhost/r").unwrap(),
        Jid::new("bob@localhost").unwrap(),
    )
}

fn message() -> Element {
    "<message xmlns='jabber:client' type='chat' id='m1'><body>hi</body></message>"
        .parse()
        .unwrap()
}

fn connection_dropped() -> OfflineError {
    OfflineError::unavailable("faulty", std::io::Error::other("connection reset by peer"))
}

fn disk_full() -> OfflineError {
    OfflineError::backend("faulty", std::io::Error::other("no space left on device"))
}

#[tokio::test]
async fn failed_write_is_an_internal_server_error_not_a_full_queue() {
    for failure in [connection_dropped, disk_full] {
        let mut backend = backend();
        backend
            .expect_write_messages()
            .times(1)
            .returning(move |_, _, _, _| Err(failure()));
        let (alice, bob) = jids();
        let outcome = module(backend)
            .await
            .offline_message(&alice, &bob, &message())
            .await;
        let expected: Element = "<message xmlns='jabber:client' from='bob@localhost' \
             to='alice@localhost/r' type='error' id='m1'><error code='500' type='wait'>\
             <internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>The offline message store \
             failed. The message has been discarded.</text></error><body>hi</body></message>"
            .parse()
            .unwrap();
        assert_eq!(outcome, Disposition::Refused(expected));
    }
}

#[tokio::test]
async fn quota_refusal_from_the_store_is_a_full_queue() {
    let mut backend = backend();
    backend
        .expect_write_messages()
        .times(1)
        .returning(|user, _, quota, _| {
            Err(OfflineError::QuotaExceeded {
                user: user.clone(),
                quota,
                stored: QueueStats {
                    messages: 100,
                    bytes: 9000,
                },
                incoming: QueueStats {
                    messages: 1,
                    bytes: 90,
                },
            })
        });
    let (alice, bob) = jids();
    let Disposition::Refused(reply) = module(backend)
        .await
        .offline_message(&alice, &bob, &message())
        .await
    else {
        panic!("not refused");
    };
    let error = reply.get_child("error", "jabber:client").unwrap();
    assert!(error.has_child("resource-constraint", "urn:ietf:params:xml:ns:xmpp-stanzas"));
}

#[tokio::test]
async fn failed_pop_delivers_nothing_and_loses_nothing() {
    let stored = StoredMessage {
        seq: 7,
        message: NewMessage::new(
            T0,
            "alice@localhost/r",
            "bob@localhost",
            "<message xmlns='jabber:client' type='chat'><body>kept</body></message>",
        ),
    };
    let mut backend = backend();
    let mut pops = 0;
    // The first pop fails; the module must then neither deliver nor remove anything (any
    // other call would fail this mock), and the next pop still finds the message.
    backend
        .expect_pop_messages()
        .times(2)
        .returning(move |_, _| {
            pops += 1;
            if pops == 1 {
                Err(connection_dropped())
            } else {
                Ok(vec![stored.clone()])
            }
        });
    let module = module(backend).await;
    let (_, bob) = jids();
    let err = module.resend_offline_messages(&bob).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let delivered = module.resend_offline_messages(&bob).await.unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0]
            .stanza
            .get_child("body", "jabber:client")
            .unwrap()
            .text(),
        "kept"
    );
}

#[tokio::test]
async fn failed_admin_calls_report_the_failure() {
    let mut backend = backend();
    backend
        .expect_remove_expired_messages()
        .returning(|_, _| Err(connection_dropped()));
    backend
        .expect_remove_old_messages()
        .returning(|_, _| Err(connection_dropped()));
    backend
        .expect_remove_user()
        .returning(|_| Err(connection_dropped()));
    backend
        .expect_fetch_messages()
        .returning(|_, _, _, _| Err(connection_dropped()));
    backend
        .expect_remove_domain()
        .returning(|_| Err(disk_full()));
    let module = module(backend).await;
    let (_, bob) = jids();
    assert!(
        module
            .remove_expired_messages("localhost")
            .await
            .unwrap_err()
            .is_transient()
    );
    assert!(
        module
            .remove_old_messages("localhost", 1)
            .await
            .unwrap_err()
            .is_transient()
    );
    assert!(module.remove_user(&bob).await.unwrap_err().is_transient());
    assert!(module.personal_data(&bob).await.unwrap_err().is_transient());
    let localhost = "localhost".parse().unwrap();
    let err = module.remove_domain(&localhost).await.unwrap_err();
    assert!(
        matches!(err, ModuleError::Store(OfflineError::Backend { .. })),
        "{err:?}"
    );
    // The domain whose removal failed is still served.
    assert!(
        module
            .remove_expired_messages("localhost")
            .await
            .is_err_and(|e| e.is_transient())
    );
}

#[tokio::test]
async fn a_store_of_its_own_replaces_the_configured_backend() {
    let config = offline_module::OfflineConfig::from_toml_str(include_str!(
        "../../docs/examples/mongooseim.toml"
    ))
    .unwrap();
    let mut backend = backend();
    backend
        .expect_write_messages()
        .times(1)
        .returning(|_, _, _, _| {
            Ok(WriteReport {
                stored: 1,
                ..WriteReport::default()
            })
        });
    let module = OfflineModule::from_config("localhost", &config)
        .unwrap()
        .store(Arc::new(backend))
        .build()
        .await
        .expect("a store named `mock` is the server's own, whatever `backend` says");
    let (alice, bob) = jids();
    let outcome = module.offline_message(&alice, &bob, &message()).await;
    assert!(matches!(outcome, Disposition::Stored { .. }), "{outcome:?}");
}
