//! What each case runs against: a store, the namespace it may use, what keeps it alive, and
//! the factory's hooks for reopening it and for opening peers on the same storage.

use std::any::Any;
use std::collections::BTreeSet;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use offline_core::{Domain, OfflineBackend, OfflineError, Result, UserKey};
use parking_lot::Mutex;

/// Makes the store each case runs against, and, for backends that can, reopens it or opens a
/// peer on the same storage.
///
/// A backend whose stores are cheap makes a fresh one per case
/// ([`Fixture::fresh`], with a guard such as a temporary directory). A backend on a shared
/// database hands out the same database with a random namespace per case
/// ([`Fixture::in_own_namespace`]): cases then touch only their own domains, so they can run
/// in parallel without truncating tables, and remove what they wrote when they pass.
///
/// The two hooks are optional; the cases that need them are stamped only when the suite's
/// line declares the capability (`conformance_tests!(MyFactory, capabilities = [reopen])`) and
/// are listed as ignored otherwise.
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
///
///     async fn reopen(&self, store: ModelBackend) -> offline_core::Result<ModelBackend> {
///         Ok(store.on_same_storage()) // a persistent backend closes and opens its files
///     }
///
///     async fn peer(&self, store: &ModelBackend) -> offline_core::Result<ModelBackend> {
///         Ok(store.on_same_storage()) // a shared database opens a second pool
///     }
/// }
///
/// // One line per suite, each case its own named #[test]:
/// offline_testkit::conformance_tests!(Model, capabilities = [reopen, peer]);
/// offline_testkit::model_tests!(Model);
/// # fn main() {}
/// ```
pub trait StoreFactory: Send + Sync + 'static {
    /// The backend under test.
    type Store: OfflineBackend;

    /// A store for one case: empty as far as the case's namespace can see.
    fn create(&self) -> impl Future<Output = Result<Fixture<Self::Store>>> + Send;

    /// Why this factory's storage cannot be had on this machine (say, no database URL was
    /// given), if so: the cases then pass after printing the reason instead of running. A
    /// factory that must run (under CI) returns `None` and lets [`create`](Self::create)
    /// fail.
    fn unavailable(&self) -> Option<String> {
        None
    }

    /// The `reopen` capability: closes `store` (the fixture holds no other reference to it)
    /// and opens a new instance on the same data, as a restarted server does.
    fn reopen(&self, store: Self::Store) -> impl Future<Output = Result<Self::Store>> + Send {
        drop(store);
        std::future::ready(Err(not_implemented("reopen")))
    }

    /// The `peer` capability: opens a second, independent instance (its own connections,
    /// locks and caches) on the storage `store` uses, as a second server node does.
    fn peer(&self, store: &Self::Store) -> impl Future<Output = Result<Self::Store>> + Send {
        let _ = store;
        std::future::ready(Err(not_implemented("peer")))
    }
}

fn not_implemented(hook: &str) -> OfflineError {
    OfflineError::invalid_input(format!(
        "the factory does not implement StoreFactory::{hook}, which the `{hook}` capability needs"
    ))
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The factory's hooks, object-safe, so that a fixture can call them.
trait Hooks<S>: Send + Sync {
    fn reopen(&self, store: S) -> BoxFuture<'_, Result<S>>;
    fn peer<'a>(&'a self, store: &'a S) -> BoxFuture<'a, Result<S>>;
}

impl<F: StoreFactory> Hooks<F::Store> for F {
    fn reopen(&self, store: F::Store) -> BoxFuture<'_, Result<F::Store>> {
        Box::pin(StoreFactory::reopen(self, store))
    }

    fn peer<'a>(&'a self, store: &'a F::Store) -> BoxFuture<'a, Result<F::Store>> {
        Box::pin(StoreFactory::peer(self, store))
    }
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
    /// `None` only while [`reopen`](Self::reopen) swaps instances.
    store: Option<Arc<S>>,
    namespace: String,
    /// Every domain handed out, removed when a case on a shared store passes.
    domains: Mutex<BTreeSet<Domain>>,
    hooks: Option<Arc<dyn Hooks<S>>>,
    _guard: Option<Box<dyn Any + Send>>,
}

impl<S: OfflineBackend> Fixture<S> {
    /// A store of the case's own: domains are used as they are.
    pub fn fresh(store: impl Into<Arc<S>>) -> Self {
        Self {
            store: Some(store.into()),
            namespace: String::new(),
            domains: Mutex::default(),
            hooks: None,
            _guard: None,
        }
    }

    /// A store shared with other cases: the case gets a random namespace of its own, and
    /// removes its domains when it passes.
    pub fn in_own_namespace(store: impl Into<Arc<S>>) -> Self {
        static CASES: AtomicU64 = AtomicU64::new(0);
        let nonce = RandomState::new().hash_one((
            std::process::id(),
            CASES.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now(),
        ));
        Self {
            namespace: format!("t{:012x}.", nonce & 0xffff_ffff_ffff),
            ..Self::fresh(store)
        }
    }

    /// Keeps `guard` (a temporary directory, a server handle, ...) alive until the case ends.
    #[must_use]
    pub fn with_guard(mut self, guard: impl Any + Send) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }

    /// Gives the fixture its factory's hooks ([`run_case`](crate::run_case) does).
    pub(crate) fn with_hooks<F: StoreFactory<Store = S>>(mut self, factory: Arc<F>) -> Self {
        self.hooks = Some(factory);
        self
    }

    /// The store under test.
    pub fn store(&self) -> &S {
        self.store
            .as_deref()
            .expect("the store is gone: an earlier reopen failed")
    }

    /// The store under test, to share with spawned tasks.
    pub fn shared_store(&self) -> Arc<S> {
        Arc::clone(
            self.store
                .as_ref()
                .expect("the store is gone: an earlier reopen failed"),
        )
    }

    /// Closes the store and opens it again on the same data (the `reopen` capability).
    /// Every clone from [`shared_store`](Self::shared_store) must have been dropped.
    pub async fn reopen(&mut self) {
        let hooks = self.hooks();
        let store = self.store.take().expect("the store is gone");
        let store = Arc::try_unwrap(store).unwrap_or_else(|_| {
            panic!("the case still holds a clone of the store: drop it before reopening")
        });
        let reopened = hooks
            .reopen(store)
            .await
            .unwrap_or_else(|e| panic!("reopening the store: {e}"));
        self.store = Some(Arc::new(reopened));
    }

    /// A second, independent instance on the same storage, as a second server node has (the
    /// `peer` capability).
    pub async fn peer(&self) -> Arc<S> {
        let hooks = self.hooks();
        let peer = hooks
            .peer(self.store())
            .await
            .unwrap_or_else(|e| panic!("opening a peer of the store: {e}"));
        Arc::new(peer)
    }

    fn hooks(&self) -> Arc<dyn Hooks<S>> {
        Arc::clone(
            self.hooks
                .as_ref()
                .expect("the fixture has no factory hooks: run cases through run_case"),
        )
    }

    /// The prefix of every domain this case may use (empty for a fresh store).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The case's version of `name`, e.g. `example.com`.
    pub fn domain(&self, name: &str) -> Domain {
        self.handed_out(&format!("{}{name}", self.namespace))
    }

    /// The case's version of the subdomain `label` of `parent`, e.g. `sub` of `example.com`.
    pub fn subdomain(&self, label: &str, parent: &str) -> Domain {
        self.handed_out(&format!("{label}.{}{parent}", self.namespace))
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

    /// Removes what the case wrote, when it shares its store with others.
    pub(crate) async fn clean_up(&self) {
        if self.namespace.is_empty() {
            return;
        }
        let domains = std::mem::take(&mut *self.domains.lock());
        for domain in domains {
            self.store()
                .remove_domain(&domain)
                .await
                .unwrap_or_else(|e| panic!("cleaning up {domain}: {e}"));
        }
    }

    fn handed_out(&self, name: &str) -> Domain {
        let domain = Domain::new(name)
            .unwrap_or_else(|e| panic!("test domain {name:?} does not parse: {e}"));
        self.domains.lock().insert(domain.clone());
        domain
    }
}
