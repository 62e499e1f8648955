//! A killed process loses no acknowledged write: a child process writes messages for two
//! users and pops some, printing each acknowledgement, and is killed with SIGKILL at a random
//! moment, 20 times over one store. After each kill the store reopens, and every acknowledged
//! write is there exactly once, no acknowledged pop comes back, and counts, lists and purges
//! agree with what is held. Rounds alternate synchronous and asynchronous writes: a process
//! crash loses neither's acknowledged writes. Packets of 2 KiB and a small write buffer make
//! RocksDB flush memtables while the child writes, so kills also land during flushes.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use offline_core::{Domain, NewMessage, OfflineBackend, QueueStats, Quota, UserKey};
use offline_rocksdb::{RocksBackend, RocksConfig};

/// Set in the child: `{store path} {first id} {sync}`.
const CHILD: &str = "OFFLINE_ROCKSDB_CRASH_CHILD";
/// What starts every line the child prints about the store, so the test harness's own output
/// (which may share a line) is never taken for it.
const TAG: &str = "crash-ack:";
const ROUNDS: u64 = 20;
const USERS: [&str; 2] = ["juliet", "romeo"];
const T0: i64 = 1_700_000_000_000_000;

fn user(name: &str) -> UserKey {
    format!("{name}@example.com").parse().unwrap()
}

fn config(path: &str, sync_writes: bool) -> RocksConfig {
    RocksConfig {
        sync_writes,
        write_buffer_bytes: 1 << 20,
        ..RocksConfig::new(path)
    }
}

/// Message `id`: 2 KiB, every third one expiring in a year.
fn message(id: u64) -> NewMessage {
    let message = NewMessage::new(
        T0,
        "romeo@example.net/orchard",
        "juliet@example.com",
        format!(
            "<message id='{id}'><body>{}</body></message>",
            "x".repeat(2048)
        ),
    )
    .dedupe_key(format!("crash-{id}"));
    if id.is_multiple_of(3) {
        message.expires_at(T0 + 365 * 86_400_000_000)
    } else {
        message
    }
}

fn id_of(message: &NewMessage) -> u64 {
    let key = message.dedupe_key.as_deref().unwrap();
    key.strip_prefix("crash-").unwrap().parse().unwrap()
}

/// The child: writes and pops until it is killed, printing `W user id` after each
/// acknowledged write, `P? user` before each pop and `P user id id ...` after it is
/// acknowledged, each line tagged.
#[test]
#[ignore = "the writer process the crash test starts and kills, not a test of its own"]
fn crash_child_writer() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut spec = spec.split(' ');
    let path = spec.next().unwrap().to_owned();
    let mut id: u64 = spec.next().unwrap().parse().unwrap();
    let sync_writes = spec.next() == Some("sync");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = RocksBackend::open(config(&path, sync_writes)).unwrap();
        let mut out = std::io::stdout().lock();
        let mut say = |line: String| {
            writeln!(out, "{TAG}{line}").unwrap();
            out.flush().unwrap();
        };
        loop {
            let name = USERS[(id % 2) as usize];
            for _ in 0..1 + id % 4 {
                store
                    .write_messages(&user(name), vec![message(id)], Quota::messages(5_000), T0)
                    .await
                    .unwrap();
                say(format!("W {name} {id}"));
                id += 1;
            }
            if id.is_multiple_of(5) {
                say(format!("P? {name}"));
                let popped = store.pop_messages(&user(name), T0).await.unwrap();
                let ids: Vec<String> = popped
                    .iter()
                    .map(|s| id_of(&s.message).to_string())
                    .collect();
                say(format!("P {name} {}", ids.join(" ")));
            }
        }
    });
}

/// What the parent knows, per user, from the child's acknowledgements.
#[derive(Default)]
struct Acknowledged {
    /// Written and not known to be popped.
    held: BTreeSet<u64>,
    /// Acknowledged as popped.
    popped: BTreeSet<u64>,
}

/// A small pseudo-random sequence, seeded from the clock and printed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// Runs the child once, kills it at a random moment, and returns its tagged lines.
fn run_and_kill(path: &str, first_id: u64, sync: &str, wait_ms: u64, round: u64) -> Vec<String> {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child_writer", "--ignored", "--nocapture"])
        .env(CHILD, format!("{path} {first_id} {sync}"))
        .stdout(Stdio::piped())
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // Wait for the first acknowledged write (it takes a while to start), let it go on for a
    // while, then kill it mid-flight.
    let mut events: Vec<String> = Vec::new();
    while !events.iter().any(|event| event.contains(TAG)) {
        match received.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => events.push(line),
            Err(_) => panic!(
                "round {round}: the child wrote nothing in 60 s; its stderr:\n{}",
                std::fs::read_to_string(stderr.path()).unwrap_or_default()
            ),
        }
    }
    std::thread::sleep(Duration::from_millis(wait_ms));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    events.extend(received.try_iter());
    assert_eq!(
        status.signal(),
        Some(9),
        "round {round}: the child must die of the kill, not of its own failure; its stderr:\n{}",
        std::fs::read_to_string(stderr.path()).unwrap_or_default()
    );
    events
        .iter()
        .filter_map(|line| line.find(TAG).map(|at| line[at + TAG.len()..].to_owned()))
        .collect()
}

#[test]
fn acknowledged_writes_survive_kill_9_and_acknowledged_pops_stay_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("crash test seed {seed}");
    let mut random = Lcg(seed);
    let mut acked: BTreeMap<&str, Acknowledged> = BTreeMap::new();
    let (mut writes, mut pops, mut interrupted_pops) = (0, 0, 0);
    let runtime = offline_testkit::runtime();
    for round in 0..ROUNDS {
        let first_id = (round + 1) * 1_000_000;
        let sync = if round % 2 == 0 { "sync" } else { "async" };
        let started = Instant::now();
        let events = run_and_kill(&path, first_id, sync, random.next(150), round);

        // Replay the acknowledgements.
        let mut pop_in_flight: Option<(&str, BTreeSet<u64>)> = None;
        let mut last_written = None;
        for event in &events {
            let mut words = event.split_whitespace();
            let (kind, name) = (words.next().unwrap(), words.next().unwrap());
            let name = USERS.into_iter().find(|u| *u == name).unwrap();
            let ids: BTreeSet<u64> = words.map(|id| id.parse().unwrap()).collect();
            let queue = acked.entry(name).or_default();
            match kind {
                "W" => {
                    let id = *ids.first().unwrap();
                    queue.held.insert(id);
                    last_written = Some(id);
                    writes += 1;
                }
                "P?" => pop_in_flight = Some((name, queue.held.clone())),
                _ => {
                    let (_, expected) = pop_in_flight.take().unwrap();
                    assert_eq!(
                        ids, expected,
                        "round {round}: a pop of {name} returned other than its queue"
                    );
                    for id in &ids {
                        queue.held.remove(id);
                        queue.popped.insert(*id);
                    }
                    pops += 1;
                }
            }
        }

        // Reopen and look.
        let store = RocksBackend::open(config(&path, true)).unwrap();
        let domain: Domain = "example.com".parse().unwrap();
        let mut holding = Vec::new();
        for name in USERS {
            let key = user(name);
            let (present, counted) = runtime.block_on(async {
                // At the earliest time nothing has expired: everything held is returned.
                let held = store
                    .fetch_messages(&key, None, None, i64::MIN)
                    .await
                    .unwrap();
                let counted = store.count_messages(&key).await.unwrap();
                (held, counted)
            });
            assert_eq!(
                counted,
                QueueStats::of(present.iter().map(|s| &s.message)),
                "round {round}: {name}'s count disagrees with its messages"
            );
            if counted.messages > 0 {
                holding.push(key);
            }
            let present: Vec<u64> = present.iter().map(|s| id_of(&s.message)).collect();
            let present_set: BTreeSet<u64> = present.iter().copied().collect();
            assert_eq!(
                present.len(),
                present_set.len(),
                "round {round}: a message is held twice"
            );
            let queue = acked.entry(name).or_default();
            let back: Vec<_> = present_set.intersection(&queue.popped).collect();
            assert!(
                back.is_empty(),
                "round {round}: acknowledged pops of {name} came back: {back:?}"
            );
            // Killed during a pop of this user: it took all it saw, or nothing.
            if let Some((popping, seen)) = &pop_in_flight
                && *popping == name
            {
                let kept: BTreeSet<u64> = seen.intersection(&present_set).copied().collect();
                assert!(
                    kept.is_empty() || kept == *seen,
                    "round {round}: an interrupted pop of {name} took part of the queue"
                );
                if kept.is_empty() {
                    for id in seen {
                        queue.held.remove(id);
                        queue.popped.insert(*id);
                    }
                }
                interrupted_pops += 1;
            }
            let lost: Vec<_> = queue.held.difference(&present_set).collect();
            assert!(
                lost.is_empty(),
                "round {round}: acknowledged writes to {name} were lost: {lost:?}"
            );
            // At most the write in flight at the kill is there without an acknowledgement.
            let unacknowledged: Vec<u64> = present_set.difference(&queue.held).copied().collect();
            let in_flight = last_written.map_or(first_id, |id| id + 1);
            assert!(
                unacknowledged.iter().all(|&id| id == in_flight),
                "round {round}: messages of {name} nobody wrote: {unacknowledged:?}"
            );
            queue.held.extend(unacknowledged);
        }
        let listed = runtime
            .block_on(store.list_users(Some(&domain), None, 10))
            .unwrap();
        assert_eq!(
            listed, holding,
            "round {round}: the list of users disagrees with the queues"
        );
        let purged = runtime
            .block_on(store.remove_old_messages(&domain, 0))
            .unwrap();
        assert_eq!(purged, 0, "round {round}: nothing is older than the epoch");
        drop(store);
        let held: usize = acked.values().map(|queue| queue.held.len()).sum();
        let popped: usize = acked.values().map(|queue| queue.popped.len()).sum();
        println!(
            "round {round} ({sync}, {:?}): {held} held, {popped} popped",
            started.elapsed()
        );
    }
    println!(
        "{writes} acknowledged writes, {pops} acknowledged pops, {interrupted_pops} interrupted"
    );
    assert!(
        writes > 0 && pops > 0,
        "the child must have written and popped"
    );
}
