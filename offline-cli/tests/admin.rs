//! The admin commands run as processes, as an operator runs them: against a RocksDB store in
//! a temporary directory and against PostgreSQL (`OFFLINE_TEST_POSTGRES_URL`; skipped
//! without it outside CI).

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use offline_module::offline_core::{NewMessage, OfflineBackend, Quota, UserKey};
use offline_module::{OfflineConfig, open_backend};

use common::{HOUR, now, runtime};

/// Runs offlinectl in `dir` with `args`, stdin not a terminal.
fn offlinectl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offlinectl"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("offlinectl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Asserts the exit code and a one-line error on stderr naming `what`.
fn fails(output: Output, code: i32, what: &str) {
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "{text}");
    assert!(text.contains(what), "`{what}` not in: {text}");
}

/// Writes messages for alice and bob of `domain` (one of alice's expired, one of bob's old)
/// and for alice of a neighbouring domain, through the library.
async fn seed(store: &dyn OfflineBackend, domain: &str) {
    let now = now();
    let alice = key(&format!("alice@{domain}"));
    let bob = key(&format!("bob@{domain}"));
    let neighbour = key(&format!("alice@sub.{domain}"));
    let message = |at: i64, body: &str| {
        NewMessage::new(
            at,
            "romeo@example.net/orchard",
            format!("alice@{domain}"),
            format!("<message xmlns='jabber:client' type='chat'><body>{body}</body></message>"),
        )
    };
    let mut expiring = message(now - 2 * HOUR, "gone, \"quoted\"");
    expiring.expire = Some(now - HOUR);
    let batch = vec![
        message(now - 3 * HOUR, "first, with a comma"),
        expiring,
        message(now, "last"),
    ];
    store
        .write_messages(&alice, batch, Quota::UNLIMITED, now - 3 * HOUR)
        .await
        .unwrap();
    let old = vec![message(now - 40 * 24 * HOUR, "old"), message(now, "new")];
    store
        .write_messages(&bob, old, Quota::UNLIMITED, now - 40 * 24 * HOUR)
        .await
        .unwrap();
    let spared = vec![message(now - 40 * 24 * HOUR, "neighbour")];
    store
        .write_messages(&neighbour, spared, Quota::UNLIMITED, now - 40 * 24 * HOUR)
        .await
        .unwrap();
}

fn key(jid: &str) -> UserKey {
    UserKey::try_from(&offline_module::jid::Jid::new(jid).unwrap()).unwrap()
}

/// Every admin command against the store `config` names, in `dir`.
fn run_commands(dir: &Path, config: &str, domain: &str) {
    let at = ["--config", config];
    let alice = format!("alice@{domain}");
    let bob = format!("bob@{domain}");
    let args = |head: &[&str]| -> Vec<String> {
        head.iter()
            .chain(at.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |head: &[&str]| {
        let args = args(head);
        offlinectl(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // Reads: the expired message is held until a purge, and never listed.
    let counted = ok(run(&["count", &alice]));
    assert!(
        counted.starts_with(&format!("{alice}: 3 messages, ")),
        "{counted}"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&ok(run(&["list", &alice, "--json"]))).unwrap();
    let bodies: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["packet"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "{listed}");
    assert!(bodies[0].contains("first, with a comma") && bodies[1].contains("last"));
    let first = listed[0]["seq"].as_u64().unwrap();
    let page = ok(run(&[
        "list",
        &alice,
        "--after",
        &first.to_string(),
        "--limit",
        "1",
    ]));
    assert_eq!(page.lines().count(), 1, "{page}");
    assert!(page.contains("last"), "{page}");

    // The GDPR export: RFC 4180 quoting of packets with commas and quotes.
    let csv = ok(run(&["export", &alice]));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["timestamp", "from", "to", "packet"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0][3].contains("first, with a comma"));
    assert!(rows[1][3].contains("gone, \"quoted\""));
    assert!(
        csv.contains("\"\"quoted\"\""),
        "quotes doubled inside a quoted field: {csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(run(&["export", &alice, "--json"]))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    assert_eq!(json[0]["to"], alice.as_str());

    // Purges, by MongooseIM's names too; the neighbouring domain is untouched.
    assert_eq!(
        ok(run(&["deleteExpiredMessages", "--domain", domain])),
        "Removed 1 messages\n"
    );
    assert_eq!(
        ok(run(&["delete-expired", "--domain", domain])),
        "Removed 0 messages\n"
    );
    assert_eq!(
        ok(run(&["delete-old", "--domain", domain, "--days", "30"])),
        "Removed 1 messages\n"
    );
    assert_eq!(
        ok(run(&[
            "deleteOldMessages",
            "--domain",
            domain,
            "--days",
            "1"
        ])),
        "Removed 0 messages\n"
    );
    assert!(ok(run(&["count", &format!("alice@sub.{domain}")])).contains(": 1 messages"));

    // Bad arguments: usage errors, exit code 2, naming what was wrong.
    fails(
        run(&["delete-old", "--domain", domain, "--days", "0"]),
        2,
        "--days",
    );
    fails(run(&["count", "not a jid@@"]), 2, "not a JID");
    fails(run(&["count", domain]), 2, "JID");
    fails(
        run(&["delete-expired", "--domain", "unknown.example"]),
        1,
        "unknown.example",
    );

    // Removal asks first: without a terminal, --yes is needed, and nothing is removed.
    fails(run(&["remove-user", &alice]), 2, "--yes");
    assert!(ok(run(&["count", &alice])).contains(": 2 messages"));
    let popped: serde_json::Value =
        serde_json::from_str(&ok(run(&["pop", &bob, "--json"]))).unwrap();
    assert_eq!(popped.as_array().unwrap().len(), 1, "{popped}");
    assert!(ok(run(&["count", &bob])).contains(": 0 messages"));
    assert_eq!(
        ok(run(&["remove-user", &alice, "--yes"])),
        "Removed 2 messages\n"
    );
    fails(
        run(&["remove-domain", &format!("sub.{domain}")]),
        2,
        "--yes",
    );
}

/// A directory with `offline.toml` naming a RocksDB store in it, seeded for `localhost`.
fn seeded_rocksdb() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let config = format!(
        "[general]\nhosts = [\"localhost\", \"sub.localhost\"]\n\
         [modules.mod_offline]\nbackend = \"rocksdb\"\n\
         [modules.mod_offline.rocksdb]\npath = {:?}\n",
        data.to_str().unwrap()
    );
    std::fs::write(dir.path().join("offline.toml"), &config).unwrap();
    runtime().block_on(async {
        let parsed = OfflineConfig::from_toml_str(&config).unwrap();
        let storage = parsed.for_host("localhost").storage.clone().unwrap();
        let store = open_backend(&storage).await.unwrap();
        seed(store.as_ref(), "localhost").await;
    });
    dir
}

#[test]
fn admin_commands_on_rocksdb() {
    let dir = seeded_rocksdb();
    run_commands(dir.path(), "offline.toml", "localhost");
    // ./offline.toml is read without --config.
    assert!(ok(offlinectl(dir.path(), &["count", "bob@localhost"])).contains(": 0 messages"));
    assert_eq!(
        ok(offlinectl(
            dir.path(),
            &["remove-domain", "sub.localhost", "--yes"]
        )),
        "Removed 1 messages\n"
    );
}

#[test]
fn without_a_configuration_the_embedded_store_under_data_is_used() {
    let dir = tempfile::tempdir().unwrap();
    fails(
        offlinectl(dir.path(), &["count", "alice@localhost"]),
        2,
        "no store under",
    );
    assert!(!dir.path().join("data").exists(), "an empty store was made");
    runtime().block_on(async {
        let storage = offline_module::StorageConfig::RocksDb(offline_module::RocksDbSettings {
            path: dir.path().join("data/offline"),
            ..Default::default()
        });
        let store = open_backend(&storage).await.unwrap();
        seed(store.as_ref(), "localhost").await;
    });
    assert!(ok(offlinectl(dir.path(), &["count", "alice@localhost"])).contains(": 3 messages"));
    // No configuration names the domains: any is taken.
    assert_eq!(
        ok(offlinectl(
            dir.path(),
            &["delete-expired", "--domain", "elsewhere.example"]
        )),
        "Removed 0 messages\n"
    );
    fails(
        offlinectl(dir.path(), &["count", "x@y", "--config", "missing.toml"]),
        1,
        "missing.toml",
    );
}

#[test]
fn admin_commands_on_postgres() {
    let Some(url) = common::postgres_url() else {
        return;
    };
    let domain = common::own_domain("cli");
    let dir = tempfile::tempdir().unwrap();
    let config = common::postgres_config(&url, &domain);
    std::fs::write(dir.path().join("pg.toml"), &config).unwrap();
    runtime().block_on(async {
        let parsed = OfflineConfig::from_toml_str(&config).unwrap();
        let storage = parsed.for_host(&domain).storage.clone().unwrap();
        let store = open_backend(&storage).await.unwrap();
        seed(store.as_ref(), &domain).await;
    });
    run_commands(dir.path(), "pg.toml", &domain);
    let sub = format!("sub.{domain}");
    assert_eq!(
        ok(offlinectl(
            dir.path(),
            &["remove-domain", &sub, "--yes", "--config", "pg.toml"]
        )),
        "Removed 1 messages\n"
    );
}

#[test]
fn pop_keeps_the_queue_when_its_output_cannot_be_written() {
    let dir = seeded_rocksdb();
    let full = std::fs::File::create("/dev/full").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_offlinectl"))
        .current_dir(dir.path())
        .args(["pop", "alice@localhost"])
        .stdin(Stdio::null())
        .stdout(full)
        .output()
        .unwrap();
    fails(output, 1, "writing the output");
    assert!(ok(offlinectl(dir.path(), &["count", "alice@localhost"])).contains(": 3 messages"));
    // Written out, the queue is taken.
    let popped = ok(offlinectl(dir.path(), &["pop", "alice@localhost"]));
    assert_eq!(popped.lines().count(), 2, "{popped}");
    assert!(ok(offlinectl(dir.path(), &["count", "alice@localhost"])).contains(": 0 messages"));
    // The export is CSV with CRLF line ends (RFC 4180).
    let csv = ok(offlinectl(dir.path(), &["export", "bob@localhost"]));
    assert!(csv.starts_with("timestamp,from,to,packet\r\n"), "{csv:?}");
}

#[test]
fn configurations_offlinectl_cannot_serve_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, section: &str| {
        let text = format!("[general]\nhosts = [\"localhost\"]\n[modules.mod_offline]\n{section}");
        std::fs::write(dir.path().join(name), text).unwrap();
    };
    write("memory.toml", "backend = \"memory\"\n");
    write(
        "typo.toml",
        "backend = \"rocksdb\"\n[modules.mod_offline.rocksdb]\npath = \"no/such/store\"\n",
    );
    fails(
        offlinectl(
            dir.path(),
            &["count", "a@localhost", "--config", "memory.toml"],
        ),
        2,
        "memory",
    );
    fails(
        offlinectl(
            dir.path(),
            &["count", "a@localhost", "--config", "typo.toml"],
        ),
        2,
        "no/such/store",
    );
    assert!(
        !dir.path().join("no").exists(),
        "a store was made at a mistyped path"
    );
}

/// Runs `offlinectl ARGS` on a pseudo-terminal (util-linux `script`), typing `answer`;
/// returns the exit code and what the terminal showed.
fn on_a_terminal(dir: &Path, args: &str, answer: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_offlinectl"));
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (output.status.code(), stdout(&output))
}

#[test]
fn a_removal_asks_on_a_terminal_and_only_yes_removes() {
    let dir = seeded_rocksdb();
    let (code, shown) = on_a_terminal(dir.path(), "remove-user alice@localhost", "n\n");
    assert_eq!(code, Some(2), "{shown}");
    assert!(shown.contains("[y/N]"), "{shown}");
    assert!(shown.contains("nothing removed"), "{shown}");
    assert!(ok(offlinectl(dir.path(), &["count", "alice@localhost"])).contains(": 3 messages"));
    let (code, shown) = on_a_terminal(dir.path(), "remove-domain localhost", "y\n");
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("Removed 5 messages"), "{shown}");
    assert!(ok(offlinectl(dir.path(), &["count", "alice@localhost"])).contains(": 0 messages"));
}

#[test]
fn usage_errors_are_one_line_pointing_at_the_command_s_help() {
    let dir = tempfile::tempdir().unwrap();
    for (args, what, help) in [
        (
            &["count", "alice@localhost", "--bogus"][..],
            "'--bogus'",
            "(see offlinectl count --help)",
        ),
        (
            &["delete-old", "--domain", "localhost", "--days", "0"][..],
            "--days",
            "(see offlinectl delete-old --help)",
        ),
        (&["countt"][..], "'countt'", "(see offlinectl --help)"),
        (&["count"][..], "<JID>", "(see offlinectl count --help)"),
    ] {
        let output = offlinectl(dir.path(), args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("offlinectl: "), "{text}");
        assert!(text.contains(what) && text.contains(help), "{text}");
    }
    // Bytes that are not UTF-8 are an argument error too, not a crash.
    let output = Command::new(env!("CARGO_BIN_EXE_offlinectl"))
        .arg(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xff"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    // Help itself is not an error.
    let help = offlinectl(dir.path(), &["count", "--help"]);
    assert!(help.status.success());
    assert!(stdout(&help).contains("Example: offlinectl count"));
}
