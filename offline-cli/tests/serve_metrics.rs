//! `offlinectl serve-metrics` run as a process and scraped over HTTP, as Prometheus does.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use offline_module::offline_core::{NewMessage, OfflineBackend, Quota, UserKey};
use offline_module::{OfflineConfig, open_backend};

use common::{HOUR, now, runtime};

fn message(domain: &str, at: i64) -> NewMessage {
    NewMessage::new(
        at,
        "romeo@example.net/orchard",
        format!("alice@{domain}"),
        "<message xmlns='jabber:client' type='chat'><body>held</body></message>",
    )
}

/// alice@D: two messages and one expired; bob@D: one stored 40 days ago and one now;
/// alice@sub.D: one stored 40 days ago.
async fn seed(store: &dyn OfflineBackend, domain: &str) {
    let now = now();
    let sub = format!("sub.{domain}");
    let key = |jid: String| -> UserKey { jid.parse().unwrap() };
    let alice = vec![
        message(domain, now - HOUR),
        message(domain, now - HOUR).expires_at(now - 1),
        message(domain, now),
    ];
    let bob = vec![message(domain, now - 40 * 24 * HOUR), message(domain, now)];
    let neighbour = vec![message(&sub, now - 40 * 24 * HOUR)];
    for (user, batch) in [
        (format!("alice@{domain}"), alice),
        (format!("bob@{domain}"), bob),
        (format!("alice@{sub}"), neighbour),
    ] {
        store
            .write_messages(&key(user), batch, Quota::UNLIMITED, now - 40 * 24 * HOUR)
            .await
            .unwrap();
    }
}

/// A directory with `offline.toml` naming a seeded RocksDB store in it, with `general`'s
/// `key = value` (the domains or host types).
fn seeded_rocksdb_with(general: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[general]\n{general}\n\
         [modules.mod_offline]\nbackend = \"rocksdb\"\n\
         [modules.mod_offline.rocksdb]\npath = {:?}\n",
        dir.path().join("store").to_str().unwrap()
    );
    std::fs::write(dir.path().join("offline.toml"), &config).unwrap();
    runtime().block_on(async {
        let parsed = OfflineConfig::from_toml_str(&config).unwrap();
        let storage = parsed.global.storage.clone().unwrap();
        seed(open_backend(&storage).await.unwrap().as_ref(), "localhost").await;
    });
    dir
}

/// Seeded, serving localhost and sub.localhost as host types of their own.
fn seeded_rocksdb() -> tempfile::TempDir {
    seeded_rocksdb_with("hosts = [\"localhost\", \"sub.localhost\"]")
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn offlinectl(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_offlinectl"));
    command.current_dir(dir).args(args).stdin(Stdio::null());
    command
}

/// Stops the server with SIGTERM when the test ends, however it ends.
struct Serving(Child);

impl Serving {
    /// Terminates the process as an init system does, and returns how it ended.
    fn terminate(mut self) -> Output {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "still running after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut output = Output {
            status: self.0.wait().unwrap(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        if let Some(mut out) = self.0.stdout.take() {
            out.read_to_end(&mut output.stdout).unwrap();
        }
        if let Some(mut err) = self.0.stderr.take() {
            err.read_to_end(&mut output.stderr).unwrap();
        }
        output
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The exposition at `port`, or `None` while nothing answers.
fn scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// Scrapes until every line of `expected` is in the exposition; fails after 30 seconds.
fn scrape_until(port: u16, expected: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let exposition = scrape(port).unwrap_or_default();
        let lines: Vec<&str> = exposition.lines().collect();
        if expected.iter().all(|line| lines.contains(line)) {
            return exposition;
        }
        assert!(
            Instant::now() < deadline,
            "not all of {expected:#?} in:\n{exposition}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Serves `dir`'s store with scheduled purges and checks the exposition for `domain` and
/// `sub.{domain}` (seeded by `seed`); `extra` are further arguments (`--config`).
fn purges_and_counts_are_served(dir: &Path, domain: &str, extra: &[&str]) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "serve-metrics",
        "--listen",
        &listen,
        "--every",
        "1s",
        "--purge-expired",
        "--delete-old-days",
        "30",
    ];
    args.extend_from_slice(extra);
    let child = offlinectl(dir, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let serving = Serving(child);
    let line = |metric: &str, host: &str, labels: &str, value: u64| {
        format!("{metric}{{host_type=\"{host}\"{labels}}} {value}")
    };
    let sub = format!("sub.{domain}");
    let expected = [
        // alice keeps two of three, bob one of two; the neighbour domain is its own.
        line("mod_offline_held_users", domain, "", 2),
        line("mod_offline_held_messages", domain, "", 3),
        line("mod_offline_held_messages", &sub, "", 0),
        line("mod_offline_purged_count", domain, ",reason=\"expired\"", 1),
        line("mod_offline_purged_count", domain, ",reason=\"old\"", 1),
        line("mod_offline_purged_count", &sub, ",reason=\"old\"", 1),
    ];
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    let exposition = scrape_until(port, &expected);
    assert!(
        exposition.contains("# TYPE mod_offline_held_messages gauge"),
        "{exposition}"
    );
    assert!(
        exposition.contains("# HELP mod_offline_held_bytes "),
        "{exposition}"
    );
    let ended = serving.terminate();
    let stdout = String::from_utf8_lossy(&ended.stdout);
    assert!(ended.status.success(), "{ended:?}");
    assert!(
        stdout.starts_with(&format!("Serving metrics on http://{listen}/metrics")),
        "{stdout}"
    );
}

#[test]
fn held_counts_and_scheduled_purges_are_served_under_mongooseim_names() {
    let dir = seeded_rocksdb();
    purges_and_counts_are_served(dir.path(), "localhost", &[]);
    // The store is closed on the way out: another process opens it.
    let count = offlinectl(dir.path(), &["count", "alice@localhost"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&count.stdout),
        "alice@localhost: 2 messages, 140 bytes\n"
    );
}

#[test]
fn held_counts_and_scheduled_purges_on_postgres() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let domain = common::own_domain("metrics");
    let dir = tempfile::tempdir().unwrap();
    let config = common::postgres_config(&url, &domain);
    std::fs::write(dir.path().join("pg.toml"), &config).unwrap();
    let storage = OfflineConfig::from_toml_str(&config)
        .unwrap()
        .global
        .storage
        .unwrap();
    runtime().block_on(async {
        seed(open_backend(&storage).await.unwrap().as_ref(), &domain).await;
    });
    purges_and_counts_are_served(dir.path(), &domain, &["--config", "pg.toml"]);
    runtime().block_on(async {
        let store = open_backend(&storage).await.unwrap();
        for d in [domain.clone(), format!("sub.{domain}")] {
            store.remove_domain(&d.parse().unwrap()).await.unwrap();
        }
    });
}

#[test]
fn the_domains_of_one_host_type_are_counted_together() {
    let dir = seeded_rocksdb_with("host_types = [\"tenant\"]");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "serve-metrics",
        "--listen",
        &listen,
        "--host-type",
        "tenant",
        "--domain",
        "localhost",
        "--domain",
        "sub.localhost",
    ];
    let child = offlinectl(dir.path(), &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _serving = Serving(child);
    // alice and bob of localhost, alice of sub.localhost; nothing purged.
    scrape_until(
        port,
        &[
            r#"mod_offline_held_users{host_type="tenant"} 3"#,
            r#"mod_offline_held_messages{host_type="tenant"} 6"#,
        ],
    );
}

/// Runs offlinectl to its end and checks its exit code and its one-line error.
fn fails(dir: &Path, args: &[&str], code: i32, what: &str) {
    let output = offlinectl(dir, args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(what), "`{what}` not in: {stderr}");
}

#[test]
fn wrong_options_and_a_busy_address_are_clear_errors() {
    let dir = seeded_rocksdb();
    let free = format!("127.0.0.1:{}", free_port());
    for (extra, code, what) in [
        (&["--every", "0s"][..], 2, "--every"),
        (&["--every", "soon"][..], 2, "--every"),
        (&["--delete-old-days", "0"][..], 2, "--delete-old-days"),
        (
            &["--domain", "elsewhere.example"][..],
            1,
            "elsewhere.example",
        ),
    ] {
        let mut args = vec!["serve-metrics", "--listen", free.as_str()];
        args.extend_from_slice(extra);
        fails(dir.path(), &args, code, what);
    }
    // Without a configuration, the domains must be named.
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("data/offline")).unwrap();
    fails(
        empty.path(),
        &["serve-metrics", "--listen", &free],
        2,
        "--domain",
    );
    // Host types come from a configuration.
    fails(
        empty.path(),
        &[
            "serve-metrics",
            "--listen",
            &free,
            "--host-type",
            "tenant",
            "--domain",
            "localhost",
        ],
        2,
        "--host-type tenant",
    );
    // An address in use.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    fails(
        dir.path(),
        &["serve-metrics", "--listen", &address],
        1,
        &address,
    );
}
