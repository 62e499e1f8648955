//! `offlinectl bench` as a user runs it: on the embedded stores, with no server.
#![allow(clippy::expect_used)]

use std::process::{Command, Output};

fn offlinectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offlinectl"))
        .args(args)
        .output()
        .expect("offlinectl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn bench_on_rocksdb_prints_a_row_per_store_and_client_count_and_writes_csv_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("results.csv");
    let svg = dir.path().join("results.svg");
    let output = offlinectl(&[
        "bench",
        "--clients",
        "1,2",
        "--operations",
        "200",
        "--users",
        "50",
        "--no-sync",
        "--csv",
        csv.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("rocksdb ") || line.starts_with("raw rocksdb "))
        .collect();
    assert_eq!(rows.len(), 4, "two stores at two client counts:\n{text}");
    assert!(
        rows[0].ends_with('x'),
        "the store's row carries its ratio: {}",
        rows[0]
    );
    assert!(
        !rows[1].ends_with('x'),
        "the baseline's row has none: {}",
        rows[1]
    );

    let csv = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("store,clients,operations,seconds,ops_per_second"),
        "{csv}"
    );
    assert_eq!(lines.len(), 5, "a header and four runs:\n{csv}");
    assert!(lines[1].starts_with("rocksdb,1,200,"), "{csv}");

    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("raw rocksdb"),
        "a plot with its legend"
    );
}

#[test]
fn bench_on_memory_without_a_baseline_prints_the_store_alone() {
    let output = offlinectl(&[
        "bench",
        "--backend",
        "memory",
        "--clients",
        "2",
        "--operations",
        "100",
        "--no-baseline",
    ]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.lines().any(|line| line.starts_with("mem ")), "{text}");
    assert!(!text.contains("naive map"), "{text}");
}

#[test]
fn bench_names_a_bad_option_and_its_allowed_values() {
    let output = offlinectl(&["bench", "--clients", "0"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("--clients") && error.contains("1..=1024"),
        "{error}"
    );

    let output = offlinectl(&["bench", "--config", "/nonexistent/offline.toml"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("/nonexistent/offline.toml"), "{error}");
}

#[test]
fn bench_measures_the_store_a_mongooseim_config_names() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("offline.toml");
    std::fs::write(
        &config,
        "[general]\n  hosts = [\"localhost\"]\n[modules.mod_offline]\n  backend = \"memory\"\n",
    )
    .unwrap();
    let output = offlinectl(&[
        "bench",
        "--config",
        config.to_str().unwrap(),
        "--clients",
        "1",
        "--operations",
        "100",
    ]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("offline.toml (host type localhost)"),
        "{text}"
    );
    assert!(
        text.lines().any(|line| line.starts_with("naive map ")),
        "{text}"
    );

    let config = config.to_str().unwrap();
    let output = offlinectl(&["bench", "--config", config, "--host", "localhots"]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("--host localhots: not a host"), "{error}");
}
