//! The book's commands run: every line of every ```bash block of `README.md` and `docs/`,
//! as a reader would type it, in a directory holding what the book assumes (`offline.toml`
//! and the RocksDB store it names under `./data/offline`, `rocksdb.toml`, `postgres.toml`,
//! `backup.toml`, a MongooseIM database in `$MONGOOSEIM_DB`), with this build's `offlinectl`
//! first on the `PATH`. A block runs as one `bash -euo pipefail` script, so a failing line
//! fails the test.
//!
//! Lines that cannot run here are listed in `NOT_RUN` with the reason, and what they name must
//! exist; a line in neither is an error, so a new command in the book is either run or listed.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use offline_diesel::DatabaseKind;
use offline_diesel::import::mongooseim_schema;
use offline_module::offline_core::{NewMessage, Quota, UserKey};
use offline_module::{RocksDbSettings, StorageConfig, open_backend};

use common::{Database, now, runtime};

/// Book lines not run here, each with why. Each must still be in the book.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "cargo run -p c2s-server",
        "serves until interrupted; its tests run the server",
    ),
    ("bash scripts/test", "the test command itself"),
    (
        "cargo install --path offline-cli",
        "a release build of its own; this test runs the offlinectl it built",
    ),
    ("bash scripts/bench", "every criterion bench: half an hour"),
    (
        "bash scripts/bench --bench operations",
        "a criterion bench: minutes",
    ),
    (
        "python3 scripts/bench-report",
        "reads the results of a bench run",
    ),
    (
        "bash scripts/pg-explain-pop",
        "stores a million messages in PostgreSQL",
    ),
];

/// `cargo run [--release] -p offline-cli -- ARGS` lines run `offlinectl bench`, minutes of
/// measuring: their arguments are parsed (with `--help` after them), not run.
const CARGO_RUN_OFFLINECTL: [&str; 2] = [
    "cargo run -p offline-cli -- ",
    "cargo run --release -p offline-cli -- ",
];

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The book's chapters, in name order.
fn chapters() -> Vec<PathBuf> {
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    chapters
}

/// The blocks fenced as ```` ```{language} ```` in `files`, with the file each is in.
fn blocks(files: &[PathBuf], language: &str) -> Vec<(String, Vec<String>)> {
    let opening = format!("```{language}");
    let mut blocks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        let mut block: Option<Vec<String>> = None;
        for line in text.lines() {
            let fence = line.trim_start();
            match &mut block {
                None if fence == opening => block = Some(Vec::new()),
                Some(lines) if fence == "```" => {
                    blocks.push((name.clone(), std::mem::take(lines)));
                    block = None;
                }
                Some(lines) => lines.push(fence.to_owned()),
                None => {}
            }
        }
        assert!(block.is_none(), "{name}: a {opening} block is not closed");
    }
    blocks
}

/// The ```bash blocks of the README and the book.
fn bash_blocks() -> Vec<(String, Vec<String>)> {
    let mut files = vec![root().join("README.md")];
    files.extend(chapters());
    blocks(&files, "bash")
}

/// What the line runs, without a trailing comment.
fn command(line: &str) -> &str {
    line.split(" #").next().unwrap_or(line).trim()
}

/// Checks a line that is not run: its scripts exist, its arguments parse.
fn check_not_run(file: &str, line: &str, offlinectl: &Path) {
    let command = command(line);
    for word in command.split_whitespace() {
        if word.starts_with("scripts/") {
            assert!(root().join(word).is_file(), "{file}: `{line}`: no {word}");
        }
    }
    if let Some(args) = CARGO_RUN_OFFLINECTL
        .iter()
        .find_map(|prefix| command.strip_prefix(prefix))
    {
        let output = Command::new(offlinectl)
            .args(args.split_whitespace())
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{file}: `{line}`: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Whether `line` is one the test runs: the rest are listed or `cargo run`s of offlinectl.
fn runs(line: &str) -> bool {
    let command = command(line);
    !(NOT_RUN.iter().any(|(listed, _)| command == *listed)
        || CARGO_RUN_OFFLINECTL
            .iter()
            .any(|prefix| command.starts_with(prefix)))
}

/// The store, the configurations and the MongooseIM table the book's commands use.
struct Sandbox {
    dir: tempfile::TempDir,
    mongooseim_url: String,
    _databases: [Database; 2],
}

fn sandbox(postgres: &str) -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (target_db, target_url) = Database::create(&rt, postgres);
    let (mongooseim_db, mongooseim_url) = Database::create(&rt, postgres);
    let rocksdb = "[modules.mod_offline]\nbackend = \"rocksdb\"\n\
                   [modules.mod_offline.rocksdb]\npath = \"data/offline\"\n";
    let general = "[general]\nhosts = [\"localhost\"]\n";
    for (file, text) in [
        ("offline.toml", format!("{general}{rocksdb}")),
        ("rocksdb.toml", format!("{general}{rocksdb}")),
        (
            "backup.toml",
            format!(
                "{general}{}",
                rocksdb.replace("data/offline", "backup/offline")
            ),
        ),
        (
            "postgres.toml",
            format!(
                "{general}[modules.mod_offline]\nbackend = \"rdbms\"\n\
                 [modules.mod_offline.rdbms]\nurl = {target_url:?}\n"
            ),
        ),
    ] {
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    rt.block_on(async {
        let settings = RocksDbSettings {
            path: dir.path().join("data/offline"),
            ..RocksDbSettings::default()
        };
        let store = open_backend(&StorageConfig::RocksDb(settings))
            .await
            .unwrap();
        let now = now();
        for (user, body) in [
            ("alice@localhost", "one"),
            ("alice@localhost", "two"),
            ("bob@localhost", "three"),
        ] {
            let packet =
                format!("<message xmlns='jabber:client' type='chat'><body>{body}</body></message>");
            let message = NewMessage::new(now, "romeo@example.net/orchard", user, packet);
            let key: UserKey = user.parse().unwrap();
            store
                .write_messages(&key, vec![message], Quota::UNLIMITED, now)
                .await
                .unwrap();
        }
        let mut mongooseim = AsyncPgConnection::establish(&mongooseim_url).await.unwrap();
        let table = mongooseim_schema(DatabaseKind::Postgres, "offline_message").unwrap();
        mongooseim.batch_execute(&table).await.unwrap();
        mongooseim
            .batch_execute(&format!(
                "INSERT INTO offline_message (timestamp, expire, server, username, from_jid, packet)
                 VALUES ({now}, NULL, 'localhost', 'carol', 'romeo@example.net/orchard',
                         '<message><body>from MongooseIM</body></message>')"
            ))
            .await
            .unwrap();
    });
    Sandbox {
        dir,
        mongooseim_url,
        _databases: [target_db, mongooseim_db],
    }
}

#[test]
fn every_command_of_the_book_runs() {
    let Some(postgres) = common::postgres_url() else {
        return;
    };
    let offlinectl = PathBuf::from(env!("CARGO_BIN_EXE_offlinectl"));
    let blocks = bash_blocks();
    for (listed, why) in NOT_RUN {
        assert!(
            blocks
                .iter()
                .any(|(_, lines)| lines.iter().any(|line| command(line) == *listed)),
            "`{listed}` ({why}) is no longer in the book: take it off NOT_RUN"
        );
    }
    let sandbox = sandbox(&postgres);
    let path = format!(
        "{}:{}",
        offlinectl.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for (file, lines) in &blocks {
        // A block that fails leaves no job behind (it would keep the output open).
        let mut script = String::from("trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
        for line in lines {
            if runs(line) {
                script.push_str(line);
                ran += 1;
            } else {
                check_not_run(file, line, &offlinectl);
            }
            script.push('\n');
        }
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(sandbox.dir.path())
            .env("PATH", &path)
            .env("MONGOOSEIM_DB", &sandbox.mongooseim_url)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{file}: this block failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(ran >= 10, "only {ran} lines ran: are the blocks found?");
}

#[test]
fn the_summary_lists_every_chapter_and_only_chapters_that_exist() {
    let docs = root().join("docs");
    let summary = std::fs::read_to_string(docs.join("SUMMARY.md")).unwrap();
    let listed: Vec<&str> = summary
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .collect();
    for chapter in &listed {
        assert!(docs.join(chapter).is_file(), "SUMMARY.md lists {chapter}");
    }
    for entry in std::fs::read_dir(&docs).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && name != "SUMMARY.md" {
            assert!(
                listed.contains(&name.as_str()),
                "{name} is not in SUMMARY.md"
            );
        }
    }
}

#[test]
fn every_toml_block_of_the_book_is_a_configuration_the_library_reads() {
    let tomls = blocks(&chapters(), "toml");
    assert!(!tomls.is_empty(), "no ```toml block found");
    for (file, lines) in tomls {
        let text = lines.join("\n");
        // A fragment without [general] is read beside the smallest one.
        let whole = if text.contains("[general]") {
            text.clone()
        } else {
            format!("[general]\nhosts = [\"localhost\"]\n{text}")
        };
        if let Err(e) = offline_module::OfflineConfig::from_toml_str(&whole) {
            panic!("{file}: this block is not read:\n{text}\n{e}");
        }
    }
}
