//! What the process tests share.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

/// PostgreSQL's URL from `OFFLINE_TEST_POSTGRES_URL`, or `None` (the test is skipped) outside
/// CI; under CI a missing URL fails the test.
pub fn postgres_url() -> Option<String> {
    match std::env::var("OFFLINE_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") => {
            panic!("CI needs OFFLINE_TEST_POSTGRES_URL")
        }
        Err(_) => {
            eprintln!("skipped: OFFLINE_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A runtime for the library calls that seed and check the stores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
