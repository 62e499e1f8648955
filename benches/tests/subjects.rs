//! Every store and every baseline does the same work through `Subject`: a comparison is only
//! honest if both sides store, count, page, pop and purge the same messages.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use offline_benches::{MongooseSql, NaiveMap, Ours, Payload, RawRocks, Subject, now_micros};
use offline_core::{Domain, Quota, UserKey};
use offline_diesel::{DieselBackend, DieselConfig};
use offline_mem::MemBackend;
use offline_rocksdb::{RocksBackend, RocksConfig};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn url(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if in_ci() => panic!("{variable} is not set, and CI requires it"),
        _ => None,
    }
}

/// Drives one subject through every operation and checks what each returns.
async fn behaves(subject: &dyn Subject) {
    let label = subject.label();
    let domain: Domain = "subjects.bench.example".parse().unwrap();
    let juliet: UserKey = format!("juliet@{domain}").parse().unwrap();
    let romeo: UserKey = format!("romeo@{domain}").parse().unwrap();
    let payload = Payload::new(&domain, 250);
    let now = now_micros();
    subject.clear(&domain).await.unwrap();

    let quota = Quota::messages(5);
    assert_eq!(
        subject
            .write(&juliet, payload.batch(&juliet, 3, now), quota, now)
            .await
            .unwrap(),
        3,
        "{label}: write"
    );
    if subject.checks_quota() {
        let refused = subject.write(&juliet, payload.batch(&juliet, 3, now), quota, now);
        assert_eq!(
            refused.await.unwrap(),
            0,
            "{label}: the quota refuses the batch"
        );
    }
    assert_eq!(subject.count(&juliet).await.unwrap(), 3, "{label}: count");
    assert_eq!(
        subject.fetch_page(&juliet, 2, now).await.unwrap(),
        2,
        "{label}: a page"
    );
    assert_eq!(
        subject.count(&juliet).await.unwrap(),
        3,
        "{label}: a page removes nothing"
    );
    assert_eq!(subject.pop(&juliet, now).await.unwrap(), 3, "{label}: pop");
    assert_eq!(
        subject.count(&juliet).await.unwrap(),
        0,
        "{label}: pop empties the queue"
    );

    let expiring = payload
        .batch(&romeo, 4, now)
        .into_iter()
        .map(|m| m.expires_at(now + 10))
        .collect();
    subject
        .write(&romeo, expiring, Quota::UNLIMITED, now)
        .await
        .unwrap();
    subject
        .write(&romeo, payload.batch(&romeo, 1, now), Quota::UNLIMITED, now)
        .await
        .unwrap();
    assert_eq!(
        subject.remove_expired(&domain, now + 20).await.unwrap(),
        4,
        "{label}: remove expired"
    );
    assert_eq!(
        subject.pop(&romeo, now + 20).await.unwrap(),
        1,
        "{label}: the unexpired message stays"
    );
    subject
        .write(&romeo, payload.batch(&romeo, 2, now), Quota::UNLIMITED, now)
        .await
        .unwrap();
    subject.clear(&domain).await.unwrap();
    assert_eq!(subject.count(&romeo).await.unwrap(), 0, "{label}: clear");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_stores_and_their_baselines_do_the_same_work() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let rocks = RocksBackend::open(RocksConfig::new(dirs[0].path())).unwrap();
    let subjects: Vec<Arc<dyn Subject>> = vec![
        Arc::new(Ours::new(MemBackend::new())),
        Arc::new(NaiveMap::new()),
        Arc::new(Ours::new(rocks)),
        Arc::new(RawRocks::open(dirs[1].path(), false).unwrap()),
    ];
    for subject in subjects {
        behaves(&*subject).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sql_stores_and_mongooseim_statements_do_the_same_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!("sqlite://{}", dir.path().join("ours.db").display())];
    urls.extend(url("OFFLINE_TEST_POSTGRES_URL"));
    urls.extend(url("OFFLINE_TEST_MYSQL_URL"));
    for url in urls {
        let ours = DieselBackend::connect(DieselConfig::new(&url))
            .await
            .unwrap();
        behaves(&Ours::new(ours)).await;
        let baseline_url = url.replace("ours.db", "mongooseim.db");
        behaves(&MongooseSql::connect(&baseline_url, 2).await.unwrap()).await;
    }
}
