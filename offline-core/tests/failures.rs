//! The module when its backend fails: a failed write is an internal error (never "queue full"),
//! a failed pop delivers nothing and loses nothing.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use async_trait::async_trait;
use mockall::automock;
use offline_core::jid::Jid;
use offline_core::minidom::Element;
use offline_core::{
    Disposition, Domain, ManualClock, NewMessage, OfflineBackend, OfflineError, OfflineModule,
    QueueStats, Quota, Result, StoredMessage, UserKey, WriteReport,
};
use offline_mem::MemBackend;

/// Which calls fail: a mock, so each test says exactly when the store breaks.
#[automock]
trait Faults {
    /// The error the next `write_messages` fails with, if any.
    fn write(&self) -> Option<OfflineError>;
    /// The error the next `pop_messages` fails with, if any.
    fn pop(&self) -> Option<OfflineError>;
}

/// `offline-mem`, failing when the mock says so, as a database dropping the connection would.
#[derive(Debug)]
struct Faulty {
    store: MemBackend,
    faults: MockFaults,
}

const T0: i64 = 1_700_000_000_000_000;

fn module(faults: MockFaults) -> OfflineModule {
    let store = Faulty {
        store: MemBackend::new(),
        faults,
    };
    OfflineModule::builder("localhost", Arc::new(store))
        .domain("localhost".parse().unwrap())
        .clock(Arc::new(ManualClock::new(T0)))
        .build()
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
        let mut faults = MockFaults::new();
        faults
            .expect_write()
            .times(1)
            .returning(move || Some(failure()));
        let module = module(faults);
        let (alice, bob) = jids();
        let outcome = module.offline_message(&alice, &bob, &message()).await;
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
async fn failed_pop_delivers_nothing_and_loses_nothing() {
    let mut faults = MockFaults::new();
    faults.expect_write().times(3).returning(|| None);
    let mut pops = 0;
    faults.expect_pop().times(2).returning(move || {
        pops += 1;
        (pops == 1).then(connection_dropped)
    });
    let module = module(faults);
    let (alice, bob) = jids();
    for _ in 0..3 {
        let outcome = module.offline_message(&alice, &bob, &message()).await;
        assert!(matches!(outcome, Disposition::Stored { .. }));
    }
    let err = module.resend_offline_messages(&bob).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let delivered = module.resend_offline_messages(&bob).await.unwrap();
    assert_eq!(delivered.len(), 3, "the failed pop lost messages");
}

#[async_trait]
impl OfflineBackend for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }
    async fn write_messages(
        &self,
        user: &UserKey,
        messages: Vec<NewMessage>,
        quota: Quota,
        now: i64,
    ) -> Result<WriteReport> {
        if let Some(err) = self.faults.write() {
            return Err(err);
        }
        self.store.write_messages(user, messages, quota, now).await
    }
    async fn pop_messages(&self, user: &UserKey, now: i64) -> Result<Vec<StoredMessage>> {
        if let Some(err) = self.faults.pop() {
            return Err(err);
        }
        self.store.pop_messages(user, now).await
    }
    async fn fetch_messages(
        &self,
        user: &UserKey,
        after: Option<u64>,
        limit: Option<usize>,
        now: i64,
    ) -> Result<Vec<StoredMessage>> {
        self.store.fetch_messages(user, after, limit, now).await
    }
    async fn remove_messages(&self, user: &UserKey, seqs: &[u64]) -> Result<u64> {
        self.store.remove_messages(user, seqs).await
    }
    async fn count_messages(&self, user: &UserKey) -> Result<QueueStats> {
        self.store.count_messages(user).await
    }
    async fn list_users(
        &self,
        domain: Option<&Domain>,
        after: Option<&UserKey>,
        limit: usize,
    ) -> Result<Vec<UserKey>> {
        self.store.list_users(domain, after, limit).await
    }
    async fn remove_expired_messages(&self, domain: &Domain, now: i64) -> Result<u64> {
        self.store.remove_expired_messages(domain, now).await
    }
    async fn remove_old_messages(&self, domain: &Domain, cutoff: i64) -> Result<u64> {
        self.store.remove_old_messages(domain, cutoff).await
    }
    async fn remove_user(&self, user: &UserKey) -> Result<u64> {
        self.store.remove_user(user).await
    }
    async fn remove_domain(&self, domain: &Domain) -> Result<u64> {
        self.store.remove_domain(domain).await
    }
}
