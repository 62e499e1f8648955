//! A killed process loses no acknowledged write: a child process writes messages and pops
//! some, printing each acknowledgement, and is killed with SIGKILL at a random moment, 20
//! times over one store. After each kill the store reopens, and every acknowledged write is
//! there exactly once, and no acknowledged pop comes back. Rounds alternate synchronous and
//! asynchronous writes: a process crash loses neither's acknowledged writes.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(unix)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use offline_core::{NewMessage, OfflineBackend, Quota, UserKey};
use offline_rocksdb::{RocksBackend, RocksConfig};

/// Set in the child: `{store path} {first id} {sync}`.
const CHILD: &str = "OFFLINE_ROCKSDB_CRASH_CHILD";
const ROUNDS: u64 = 20;
const T0: i64 = 1_700_000_000_000_000;

fn juliet() -> UserKey {
    "juliet@example.com".parse().unwrap()
}

fn message(id: u64) -> NewMessage {
    NewMessage::new(
        T0,
        "romeo@example.net/orchard",
        "juliet@example.com",
        format!("<message id='{id}'><body>crash test</body></message>"),
    )
    .dedupe_key(format!("crash-{id}"))
}

fn id_of(message: &NewMessage) -> u64 {
    let key = message.dedupe_key.as_deref().unwrap();
    key.strip_prefix("crash-").unwrap().parse().unwrap()
}

/// The child: writes and pops until it is killed, printing `W id` after each acknowledged
/// write, `P?` before each pop and `P id id ...` after it is acknowledged.
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
        let store = RocksBackend::open(RocksConfig {
            sync_writes,
            ..RocksConfig::new(path)
        })
        .unwrap();
        let mut out = std::io::stdout().lock();
        loop {
            for _ in 0..1 + id % 4 {
                store
                    .write_messages(&juliet(), vec![message(id)], Quota::UNLIMITED, T0)
                    .await
                    .unwrap();
                writeln!(out, "W {id}").unwrap();
                out.flush().unwrap();
                id += 1;
            }
            if id.is_multiple_of(5) {
                writeln!(out, "P?").unwrap();
                out.flush().unwrap();
                let popped = store.pop_messages(&juliet(), T0).await.unwrap();
                let ids: Vec<String> = popped
                    .iter()
                    .map(|s| id_of(&s.message).to_string())
                    .collect();
                writeln!(out, "P {}", ids.join(" ")).unwrap();
                out.flush().unwrap();
            }
        }
    });
}

/// What the parent knows from the child's acknowledgements.
#[derive(Default)]
struct Acknowledged {
    /// Written and not known to be popped.
    held: BTreeSet<u64>,
    /// Acknowledged as popped.
    popped: BTreeSet<u64>,
}

/// A small pseudo-random sequence, seeded from the clock and printed, so a failing run can be
/// told apart.
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
    let mut acked = Acknowledged::default();
    let (mut writes, mut pops, mut interrupted_pops) = (0, 0, 0);
    for round in 0..ROUNDS {
        let first_id = (round + 1) * 1_000_000;
        let sync = if round % 2 == 0 { "sync" } else { "async" };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child_writer", "--ignored", "--nocapture"])
            .env(CHILD, format!("{path} {first_id} {sync}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
        // Wait for its first acknowledged write (it takes a while to start), let it go on for
        // a random while, then kill it mid-flight.
        let started = Instant::now();
        let mut events: Vec<String> = Vec::new();
        while !events.last().is_some_and(|event| event.starts_with("W ")) {
            let line = received.recv_timeout(Duration::from_secs(60));
            assert!(
                line.is_ok(),
                "round {round}: the child wrote nothing in 60 s"
            );
            events.extend(line);
        }
        std::thread::sleep(Duration::from_millis(random.next(150)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        events.extend(received.try_iter());

        // Replay the acknowledgements.
        let mut pop_in_flight: Option<BTreeSet<u64>> = None;
        let mut last_written = None;
        for event in events
            .iter()
            .filter(|e| e.starts_with('W') || e.starts_with('P'))
        {
            if let Some(id) = event.strip_prefix("W ") {
                let id: u64 = id.parse().unwrap();
                acked.held.insert(id);
                last_written = Some(id);
                writes += 1;
            } else if event == "P?" {
                pop_in_flight = Some(acked.held.clone());
            } else if let Some(ids) = event.strip_prefix('P') {
                let ids: BTreeSet<u64> =
                    ids.split_whitespace().map(|i| i.parse().unwrap()).collect();
                let expected = pop_in_flight.take().unwrap();
                assert_eq!(
                    ids, expected,
                    "round {round}: a pop returned other than the queue"
                );
                for id in &ids {
                    acked.held.remove(id);
                    acked.popped.insert(*id);
                }
                pops += 1;
            }
        }

        // Reopen and look.
        let store = RocksBackend::open(RocksConfig::new(&path)).unwrap();
        let present: Vec<u64> = offline_testkit::runtime().block_on(async {
            let held = store
                .fetch_messages(&juliet(), None, None, T0)
                .await
                .unwrap();
            held.iter().map(|s| id_of(&s.message)).collect()
        });
        drop(store);
        let present_set: BTreeSet<u64> = present.iter().copied().collect();
        assert_eq!(
            present.len(),
            present_set.len(),
            "round {round}: a message is held twice"
        );
        let back: Vec<_> = present_set.intersection(&acked.popped).collect();
        assert!(
            back.is_empty(),
            "round {round}: acknowledged pops came back: {back:?}"
        );
        // Killed during a pop: it took all it saw, or nothing.
        if let Some(seen) = pop_in_flight {
            let kept: BTreeSet<u64> = seen.intersection(&present_set).copied().collect();
            assert!(
                kept.is_empty() || kept == seen,
                "round {round}: an interrupted pop took part of the queue"
            );
            if kept.is_empty() {
                for id in &seen {
                    acked.held.remove(id);
                    acked.popped.insert(*id);
                }
            }
            interrupted_pops += 1;
        }
        let lost: Vec<_> = acked.held.difference(&present_set).collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged writes were lost: {lost:?}"
        );
        // At most the write in flight at the kill is there without an acknowledgement.
        let unacknowledged: Vec<u64> = present_set.difference(&acked.held).copied().collect();
        let in_flight = last_written.map_or(first_id, |id| id + 1);
        assert!(
            unacknowledged.iter().all(|&id| id == in_flight),
            "round {round}: messages nobody wrote: {unacknowledged:?}"
        );
        acked.held.extend(unacknowledged);
        println!(
            "round {round} ({sync}, killed after {:?}): {} held, {} popped",
            started.elapsed(),
            acked.held.len(),
            acked.popped.len()
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
