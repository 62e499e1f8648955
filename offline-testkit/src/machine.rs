//! The model-based property test: random sequences of operations are applied to the
//! [`Model`](crate::Model) and to a backend, and every result is compared.
//!
//! Sequences come from a `proptest-state-machine` strategy, so a failure shrinks to a short
//! sequence of operations, printed with the users' and domains' names. One interpreter
//! (`execute`) runs each operation against either store, so the two sides cannot drift apart
//! in how they are driven. Packets and JIDs are partly non-ASCII, and the clock also moves
//! backwards.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use offline_core::{
    Domain, NewMessage, OfflineBackend, OfflineError, QueueStats, Quota, StoredMessage, UserKey,
    WriteReport,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use proptest_state_machine::ReferenceStateMachine;

use crate::{Fixture, ModelBackend, StoreFactory};

/// The users operations pick from: neighbours by localpart prefix and by domain, look-alikes
/// under a folding collation, non-ASCII names.
const USERS: [(&str, &str); 8] = [
    ("ali", "example.com"),
    ("alice", "example.com"),
    ("émile", "example.com"),
    ("emile", "example.com"),
    ("ali", "example.com.evil"),
    ("bob", "sub.example.com"),
    ("ali", "xample.com"),
    ("zoë", "bücher.example"),
];

/// The domains operations pick from; the last one never holds messages.
const DOMAINS: [&str; 6] = [
    "example.com",
    "example.com.evil",
    "sub.example.com",
    "xample.com",
    "bücher.example",
    "example.org",
];

/// The characters packets are padded with: one to four bytes each.
const GLYPHS: [char; 4] = ['x', 'é', '€', '🎉'];

/// Where the clock starts, µs since the epoch.
const START: i64 = 1_700_000_000_000_000;
/// The clock's unit in operations, µs.
const SECOND: i64 = 1_000_000;

/// A message as generated; made concrete, for a recipient and a time, when the operation runs.
#[derive(Clone, Debug)]
pub struct Msg {
    id: u16,
    age: i64,
    ttl: Option<i64>,
    key: Option<u8>,
    padding: usize,
    glyph: usize,
    valid: bool,
}

impl Msg {
    fn at(&self, user: usize, now: i64) -> NewMessage {
        let packet = if self.valid {
            let padding = GLYPHS[self.glyph].to_string().repeat(self.padding);
            format!("<message id='{}'>{padding}</message>", self.id)
        } else {
            String::new()
        };
        NewMessage {
            // Clamped: the clock may move back past the epoch, and stored times are not negative.
            timestamp: (now - self.age * SECOND).max(0),
            expire: self.ttl.map(|ttl| (now + ttl * SECOND).max(0)),
            from: format!("sénder{}@example.net/r", self.id % 3),
            to: format!("{}@{}", USERS[user].0, USERS[user].1),
            packet,
            // Keys that differ only in case stay distinct.
            dedupe_key: self.key.map(|k| {
                if k % 2 == 0 {
                    format!("k{k}")
                } else {
                    format!("K{}", k - 1)
                }
            }),
            permanent_fields: self
                .id
                .is_multiple_of(4)
                .then(|| self.id.to_be_bytes().to_vec()),
        }
    }
}

/// One operation on the store; users and domains are indexes into the fixed lists, shown by
/// name.
#[derive(Clone)]
pub enum Op {
    /// `write_messages`.
    Write {
        /// Recipient.
        user: usize,
        /// The batch.
        messages: Vec<Msg>,
        /// The quota applied.
        quota: Quota,
    },
    /// `pop_messages`.
    Pop {
        /// Whose queue.
        user: usize,
    },
    /// `fetch_messages` through the whole queue, `page` at a time.
    Fetch {
        /// Whose queue.
        user: usize,
        /// Page size.
        page: usize,
    },
    /// `fetch_messages`, then `remove_messages` of the picked positions.
    RemoveFetched {
        /// Whose queue.
        user: usize,
        /// Positions in the fetched list (out of range ones pick nothing).
        picks: Vec<usize>,
    },
    /// `count_messages`.
    Count {
        /// Whose queue.
        user: usize,
    },
    /// `list_users` through every page.
    ListUsers {
        /// Only this domain's users.
        domain: Option<usize>,
        /// Page size.
        page: usize,
    },
    /// `remove_expired_messages`.
    RemoveExpired {
        /// Which domain.
        domain: usize,
    },
    /// `remove_old_messages` with a cutoff `age` seconds ago.
    RemoveOld {
        /// Which domain.
        domain: usize,
        /// Seconds before now.
        age: i64,
    },
    /// `remove_user`.
    RemoveUser {
        /// Whose queue.
        user: usize,
    },
    /// `remove_domain`.
    RemoveDomain {
        /// Which domain.
        domain: usize,
    },
    /// Moves the clock, forward or back.
    Advance {
        /// By this many seconds.
        seconds: i64,
    },
}

/// A user of [`USERS`] by name.
struct UserName(usize);

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (local, domain) = USERS[self.0];
        write!(f, "{local}@{domain}")
    }
}

/// A domain of [`DOMAINS`] by name.
struct DomainName(usize);

impl fmt::Debug for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DOMAINS[self.0])
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Write {
                user,
                ref messages,
                quota,
            } => f
                .debug_struct("Write")
                .field("user", &UserName(user))
                .field("messages", messages)
                .field("quota", &quota)
                .finish(),
            Self::Pop { user } => f
                .debug_struct("Pop")
                .field("user", &UserName(user))
                .finish(),
            Self::Fetch { user, page } => f
                .debug_struct("Fetch")
                .field("user", &UserName(user))
                .field("page", &page)
                .finish(),
            Self::RemoveFetched { user, ref picks } => f
                .debug_struct("RemoveFetched")
                .field("user", &UserName(user))
                .field("picks", picks)
                .finish(),
            Self::Count { user } => f
                .debug_struct("Count")
                .field("user", &UserName(user))
                .finish(),
            Self::ListUsers { domain, page } => f
                .debug_struct("ListUsers")
                .field("domain", &domain.map(DomainName))
                .field("page", &page)
                .finish(),
            Self::RemoveExpired { domain } => f
                .debug_struct("RemoveExpired")
                .field("domain", &DomainName(domain))
                .finish(),
            Self::RemoveOld { domain, age } => f
                .debug_struct("RemoveOld")
                .field("domain", &DomainName(domain))
                .field("age", &age)
                .finish(),
            Self::RemoveUser { user } => f
                .debug_struct("RemoveUser")
                .field("user", &UserName(user))
                .finish(),
            Self::RemoveDomain { domain } => f
                .debug_struct("RemoveDomain")
                .field("domain", &DomainName(domain))
                .finish(),
            Self::Advance { seconds } => f
                .debug_struct("Advance")
                .field("seconds", &seconds)
                .finish(),
        }
    }
}

/// What an operation returned, with `seq`s left out (each store numbers its own).
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// A write's report, or how it was refused.
    Written(Result<WriteReport, Refusal>),
    /// Messages, and whether their `seq`s increased (and, for a paged fetch, every page kept
    /// to its limit).
    Messages(Vec<NewMessage>, bool),
    /// Queue statistics.
    Stats(QueueStats),
    /// Users by name (without the case's namespace), and whether every page was within its
    /// limit, in order, and past its cursor.
    Users(Vec<String>, bool),
    /// A number of removed messages.
    Removed(u64),
    /// The clock moved.
    Advanced,
}

/// How a write was refused.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// `QuotaExceeded` with its numbers.
    Quota(Quota, QueueStats, QueueStats),
    /// `InvalidInput`.
    Invalid,
    /// Anything else, as text: never expected.
    Other(String),
}

/// The users and domains one store's operations act on.
struct Names {
    namespace: String,
    users: Vec<UserKey>,
    domains: Vec<Domain>,
}

impl Names {
    /// The names in the fixture's namespace (handed out by it, so it cleans them up).
    fn new<S: OfflineBackend>(fixture: &Fixture<S>) -> Self {
        let domains: Vec<Domain> = DOMAINS.iter().map(|d| fixture.domain(d)).collect();
        let users = USERS
            .iter()
            .map(|(local, domain)| {
                let at = DOMAINS.iter().position(|d| d == domain);
                let domain = at.map_or_else(|| fixture.domain(domain), |at| domains[at].clone());
                fixture.user_at(local, &domain)
            })
            .collect();
        Self {
            namespace: fixture.namespace().to_owned(),
            users,
            domains,
        }
    }

    fn index_of(&self, user: &UserKey) -> Option<usize> {
        self.users.iter().position(|u| u == user)
    }
}

/// Runs one operation against a store, returning its outcome; the clock is `now`.
async fn execute<B: OfflineBackend + ?Sized>(
    store: &B,
    names: &Names,
    op: &Op,
    now: &mut i64,
) -> Result<Outcome, OfflineError> {
    let t = *now;
    Ok(match *op {
        Op::Write {
            user,
            ref messages,
            quota,
        } => {
            let batch = messages.iter().map(|m| m.at(user, t)).collect();
            let written = store
                .write_messages(&names.users[user], batch, quota, t)
                .await;
            Outcome::Written(written.map_err(|e| match e {
                OfflineError::QuotaExceeded {
                    quota,
                    stored,
                    incoming,
                    ..
                } => Refusal::Quota(quota, stored, incoming),
                OfflineError::InvalidInput { .. } => Refusal::Invalid,
                other => Refusal::Other(other.to_string()),
            }))
        }
        Op::Pop { user } => messages(store.pop_messages(&names.users[user], t).await?, true),
        Op::Fetch { user, page } => {
            let (mut all, mut after, mut within_limit) = (Vec::new(), None, true);
            loop {
                let fetched = store
                    .fetch_messages(&names.users[user], after, Some(page), t)
                    .await?;
                within_limit &= fetched.len() <= page;
                let advanced = match (after, fetched.first()) {
                    (Some(after), Some(first)) => first.seq > after,
                    _ => true,
                };
                // A page over its limit or not past its cursor ends the walk; the outcome then
                // differs from the model's.
                let last_page = fetched.len() < page || !advanced || !within_limit;
                after = fetched.last().map(|s| s.seq);
                all.extend(fetched);
                if last_page {
                    break messages(all, within_limit);
                }
            }
        }
        Op::RemoveFetched { user, ref picks } => {
            let key = &names.users[user];
            let all = store.fetch_messages(key, None, None, t).await?;
            let seqs: Vec<u64> = picks
                .iter()
                .filter_map(|&i| all.get(i))
                .map(|s| s.seq)
                .collect();
            Outcome::Removed(store.remove_messages(key, &seqs).await?)
        }
        Op::Count { user } => Outcome::Stats(store.count_messages(&names.users[user]).await?),
        Op::ListUsers { domain, page } => list_all_users(store, names, domain, page).await?,
        Op::RemoveExpired { domain } => Outcome::Removed(
            store
                .remove_expired_messages(&names.domains[domain], t)
                .await?,
        ),
        Op::RemoveOld { domain, age } => {
            let cutoff = t - age * SECOND;
            Outcome::Removed(
                store
                    .remove_old_messages(&names.domains[domain], cutoff)
                    .await?,
            )
        }
        Op::RemoveUser { user } => Outcome::Removed(store.remove_user(&names.users[user]).await?),
        Op::RemoveDomain { domain } => {
            Outcome::Removed(store.remove_domain(&names.domains[domain]).await?)
        }
        Op::Advance { seconds } => {
            *now += seconds * SECOND;
            Outcome::Advanced
        }
    })
}

/// Messages as an outcome: well formed if `pages_ok` and their seqs increase.
fn messages(stored: Vec<StoredMessage>, pages_ok: bool) -> Outcome {
    let increasing = stored.windows(2).all(|w| w[0].seq < w[1].seq);
    Outcome::Messages(
        stored.into_iter().map(|s| s.message).collect(),
        pages_ok && increasing,
    )
}

/// Pages through `list_users`; on a shared store, from the start of the namespace to its end.
async fn list_all_users<B: OfflineBackend + ?Sized>(
    store: &B,
    names: &Names,
    domain: Option<usize>,
    page: usize,
) -> Result<Outcome, OfflineError> {
    let domain = domain.map(|d| &names.domains[d]);
    let mut after = (!names.namespace.is_empty() && domain.is_none())
        .then(|| UserKey::from_normalized(names.namespace.as_str(), ""));
    let mut listed = Vec::new();
    let mut well_formed = true;
    loop {
        let keys = store.list_users(domain, after.as_ref(), page).await?;
        well_formed &= keys.len() <= page && keys.windows(2).all(|w| w[0] < w[1]);
        if let (Some(after), Some(first)) = (&after, keys.first()) {
            well_formed &= after < first;
        }
        let ours: Vec<String> = keys
            .iter()
            .map_while(|k| names.index_of(k))
            .map(|i| format!("{:?}", UserName(i)))
            .collect();
        let left_namespace = ours.len() < keys.len();
        listed.extend(ours);
        if keys.len() < page || left_namespace || !well_formed {
            return Ok(Outcome::Users(listed, well_formed));
        }
        after = keys.last().cloned();
    }
}

/// Generates operation sequences (the state is only what generation needs: nothing).
pub struct Operations;

impl ReferenceStateMachine for Operations {
    type State = ();
    type Transition = Op;

    fn init_state() -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    fn transitions(_: &()) -> BoxedStrategy<Op> {
        let user = 0..USERS.len();
        let domain = 0..DOMAINS.len();
        let msg = (
            any::<u16>(),
            0i64..4,
            prop::option::of(-1i64..6),
            prop::option::of(0u8..6),
            0usize..24,
            0..GLYPHS.len(),
            prop::bool::weighted(0.97),
        )
            .prop_map(|(id, age, ttl, key, padding, glyph, valid)| Msg {
                id,
                age,
                ttl,
                key,
                padding,
                glyph,
                valid,
            });
        let quota = (prop::option::of(1u64..8), prop::option::of(20u64..200)).prop_map(
            |(max_messages, max_bytes)| Quota {
                max_messages,
                max_bytes,
            },
        );
        prop_oneof![
            6 => (user.clone(), prop::collection::vec(msg, 0..5), quota)
                .prop_map(|(user, messages, quota)| Op::Write { user, messages, quota }),
            2 => user.clone().prop_map(|user| Op::Pop { user }),
            2 => (user.clone(), 1usize..4).prop_map(|(user, page)| Op::Fetch { user, page }),
            2 => (user.clone(), prop::collection::vec(0usize..6, 0..4))
                .prop_map(|(user, picks)| Op::RemoveFetched { user, picks }),
            1 => user.clone().prop_map(|user| Op::Count { user }),
            1 => (prop::option::of(domain.clone()), 1usize..4)
                .prop_map(|(domain, page)| Op::ListUsers { domain, page }),
            1 => domain.clone().prop_map(|domain| Op::RemoveExpired { domain }),
            1 => (domain.clone(), 0i64..4).prop_map(|(domain, age)| Op::RemoveOld { domain, age }),
            1 => user.prop_map(|user| Op::RemoveUser { user }),
            1 => domain.prop_map(|domain| Op::RemoveDomain { domain }),
            3 => (-3i64..5).prop_map(|seconds| Op::Advance { seconds }),
        ]
        .boxed()
    }

    fn apply((): (), _: &Op) {}
}

/// How [`check_against_model`] runs.
#[derive(Clone, Copy, Debug)]
pub struct ModelRun {
    /// Sequences to try; `None` takes proptest's default (`PROPTEST_CASES`, else 256).
    pub cases: Option<u32>,
    /// The most operations in one sequence.
    pub max_ops: usize,
    /// The test's source file, next to which proptest keeps failing seeds.
    pub source_file: &'static str,
}

/// Runs random operation sequences against a fresh store from `factory` and the model,
/// panicking with the shrunk failing sequence if any result differs.
pub fn check_against_model<F: StoreFactory>(factory: F, run: ModelRun) {
    if let Some(reason) = factory.unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let defaults = Config::default();
    let mut runner = TestRunner::new(Config {
        cases: run.cases.unwrap_or(defaults.cases),
        source_file: Some(run.source_file),
        ..defaults
    });
    let runtime = crate::runtime();
    let strategy = Operations::sequential_strategy(1..run.max_ops);
    let result = runner.run(&strategy, |((), ops, seen)| {
        runtime.block_on(compare(&factory, &ops, seen))
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, ((), ops, _))) => {
            panic!("the backend departs from the model: {reason}\nminimal sequence: {ops:#?}")
        }
        Err(TestError::Abort(reason)) => panic!("model test aborted: {reason}"),
    }
}

async fn compare<F: StoreFactory>(
    factory: &F,
    ops: &[Op],
    seen: Option<Arc<AtomicUsize>>,
) -> Result<(), TestCaseError> {
    let fixture = factory
        .create()
        .await
        .map_err(|e| TestCaseError::fail(format!("creating the backend's store: {e}")))?;
    let model = Fixture::fresh(ModelBackend::default());
    let (model_names, names) = (Names::new(&model), Names::new(&fixture));
    let (mut model_now, mut now) = (START, START);
    for (step, op) in ops.iter().enumerate() {
        if let Some(seen) = &seen {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        let expected = execute(model.store(), &model_names, op, &mut model_now)
            .await
            .map_err(|e| {
                TestCaseError::fail(format!("the model failed step {step} {op:?}: {e}"))
            })?;
        let actual = execute(fixture.store(), &names, op, &mut now)
            .await
            .map_err(|e| {
                TestCaseError::fail(format!("the backend failed step {step} {op:?}: {e}"))
            })?;
        prop_assert!(
            actual == expected,
            "step {} {:?}:\n  the backend returned {:?}\n  the model expected  {:?}",
            step,
            op,
            actual,
            expected
        );
        for user in 0..USERS.len() {
            let expected = model.store().count_messages(&model_names.users[user]).await;
            let actual = fixture.store().count_messages(&names.users[user]).await;
            let fail = |side: &str, e: OfflineError| {
                TestCaseError::fail(format!("counting on the {side} after step {step}: {e}"))
            };
            let expected = expected.map_err(|e| fail("model", e))?;
            let actual = actual.map_err(|e| fail("backend", e))?;
            prop_assert!(
                actual == expected,
                "after step {} {:?}, the count of {:?}:\n  the backend returned {:?}\n  the model expected  {:?}",
                step,
                op,
                UserName(user),
                actual,
                expected
            );
        }
    }
    fixture.clean_up().await;
    Ok(())
}
