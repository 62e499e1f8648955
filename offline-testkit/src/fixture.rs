//! What each case runs against: a store, the namespace it may use, and what keeps it alive.

use std::any::Any;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use offline_core::{Domain, OfflineBackend, Result, UserKey};

/// Makes the store each case runs against.
///
/// A backend whose stores are cheap makes a fresh one per case
/// ([`Fixture::fresh`], with a guard such as a temporary directory). A backend on a shared
/// database hands out the same database with a random namespace per case
/// ([`Fixture::in_own_namespace`]): cases then touch only their own domains, so they can run
/// in parallel without truncating tables.
///
/// ```
/// use offline_testkit::{Fixture, ModelBackend, StoreFactory};
///
/// /// Stands for a backend crate's factory; here the testkit's own reference model.
/// struct Model;
///
/// impl StoreFactory for Model {
///     type Store = ModelBackend;
///
///     async fn create(&self) -> offline_core::Result<Fixture<ModelBackend>> {
///         Ok(Fixture::fresh(ModelBackend::default()))
///     }
/// }
///
/// // One line per suite, each case its own named #[test]:
/// offline_testkit::conformance_tests!(Model);
/// offline_testkit::model_tests!(Model);
/// # fn main() {}
/// ```
pub trait StoreFactory: Send + Sync + 'static {
    /// The backend under test.
    type Store: OfflineBackend;

    /// A store for one case: empty as far as the case's namespace can see.
    fn create(&self) -> impl Future<Output = Result<Fixture<Self::Store>>> + Send;
}

/// One case's store.
///
/// Cases name users and domains through the fixture ([`user`](Self::user),
/// [`domain`](Self::domain)) so that, on a shared database, they live in the case's own
/// namespace. The namespace is a prefix of every domain name: `example.com` becomes
/// `t3f9a1c2.example.com`, `example.com.evil` becomes `t3f9a1c2.example.com.evil`, and the
/// subdomain `sub` of `example.com` becomes `sub.t3f9a1c2.example.com`, keeping every
/// prefix and suffix relation the isolation cases rely on.
pub struct Fixture<S> {
    store: Arc<S>,
    namespace: String,
    _guard: Option<Box<dyn Any + Send>>,
}

impl<S: OfflineBackend> Fixture<S> {
    /// A store of the case's own: domains are used as they are.
    pub fn fresh(store: impl Into<Arc<S>>) -> Self {
        Self {
            store: store.into(),
            namespace: String::new(),
            _guard: None,
        }
    }

    /// A store shared with other cases: the case gets a random namespace of its own.
    pub fn in_own_namespace(store: impl Into<Arc<S>>) -> Self {
        static CASES: AtomicU64 = AtomicU64::new(0);
        let nonce = RandomState::new().hash_one((
            std::process::id(),
            CASES.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now(),
        ));
        Self {
            store: store.into(),
            namespace: format!("t{:012x}.", nonce & 0xffff_ffff_ffff),
            _guard: None,
        }
    }

    /// Keeps `guard` (a temporary directory, a server handle, ...) alive until the case ends.
    #[must_use]
    pub fn with_guard(mut self, guard: impl Any + Send) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }

    /// The store under test.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store under test, to share with spawned tasks.
    pub fn shared_store(&self) -> Arc<S> {
        Arc::clone(&self.store)
    }

    /// The prefix of every domain this case may use (empty for a fresh store).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The case's version of `name`, e.g. `example.com`.
    pub fn domain(&self, name: &str) -> Domain {
        self.parse_domain(&format!("{}{name}", self.namespace))
    }

    /// The case's version of the subdomain `label` of `parent`, e.g. `sub` of `example.com`.
    pub fn subdomain(&self, label: &str, parent: &str) -> Domain {
        self.parse_domain(&format!("{label}.{}{parent}", self.namespace))
    }

    /// The user `local@example.com` of this case.
    pub fn user(&self, local: &str) -> UserKey {
        self.user_at(local, &self.domain("example.com"))
    }

    /// The user `local@domain`, for a domain from [`domain`](Self::domain) or
    /// [`subdomain`](Self::subdomain).
    pub fn user_at(&self, local: &str, domain: &Domain) -> UserKey {
        let jid = format!("{local}@{domain}");
        jid.parse()
            .unwrap_or_else(|e| panic!("test JID {jid:?} does not parse: {e}"))
    }

    /// Whether `user` belongs to this case (always true for a fresh store).
    pub fn owns(&self, user: &UserKey) -> bool {
        let server = user.server();
        server.starts_with(&self.namespace)
            || server
                .split_once('.')
                .is_some_and(|(_, parent)| parent.starts_with(&self.namespace))
    }

    fn parse_domain(&self, name: &str) -> Domain {
        Domain::new(name).unwrap_or_else(|e| panic!("test domain {name:?} does not parse: {e}"))
    }
}
