//! The module's metrics, read back through a debugging recorder: MongooseIM's Prometheus names
//! and labels, the Exometer-style flat names, and the counters beyond MongooseIM's.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use offline_mem::MemBackend;
use offline_module::jid::Jid;
use offline_module::minidom::Element;
use offline_module::{
    AccessConfig, Disposition, ManualClock, MetricNames, ModuleOptions, OfflineModule,
};

const T0: i64 = 1_700_000_000_000_000;

/// What the recorder saw: `name{label=value,...}` → counter value or histogram sample count.
fn observe(
    names: MetricNames,
    options: ModuleOptions,
    scenario: impl AsyncFnOnce(&OfflineModule),
) -> BTreeMap<String, u64> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let access: AccessConfig =
            toml::from_str("[access]\nmax_user_offline_messages = [{acl = \"all\", value = 2}]")
                .unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let module = OfflineModule::builder("localhost", Arc::new(MemBackend::new()))
            .domain("localhost".parse().unwrap())
            .options(options)
            .access(access)
            .clock(clock)
            .metric_names(names);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async { scenario(&module.build().await.unwrap()).await });
    });
    snapshot_of(&snapshotter)
}

/// What `snapshotter` holds: `name{label=value,...}` → counter value, histogram sample count
/// or gauge value.
fn snapshot_of(snapshotter: &Snapshotter) -> BTreeMap<String, u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = if labels.is_empty() {
                key.name().to_owned()
            } else {
                format!("{}{{{}}}", key.name(), labels.join(","))
            };
            let value = match value {
                DebugValue::Counter(n) => n,
                DebugValue::Histogram(samples) => samples.len() as u64,
                DebugValue::Gauge(g) => g.into_inner() as u64,
            };
            (name, value)
        })
        .collect()
}

fn chat(body: &str) -> Element {
    format!("<message xmlns='jabber:client' type='chat'><body>{body}</body></message>")
        .parse()
        .unwrap()
}

/// Three messages for a quota of two, one chat state nobody stores, a delivery, purges.
async fn scenario(module: &OfflineModule) {
    let (alice, bob) = (
        Jid::new("alice@localhost/r").unwrap(),
        Jid::new("bob@localhost").unwrap(),
    );
    for body in ["1", "2", "3"] {
        let _ = module.offline_message(&alice, &bob, &chat(body)).await;
    }
    let composing: Element = "<message xmlns='jabber:client' type='chat'>\
        <composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
        .parse()
        .unwrap();
    let _ = module.instrumentation().bounce(&alice, &bob, &composing);
    assert_eq!(module.resend_offline_messages(&bob).await.unwrap().len(), 2);
    let _ = module.offline_message(&alice, &bob, &chat("4")).await;
    assert_eq!(module.remove_user(&bob).await.unwrap(), 1);
}

#[test]
fn prometheus_names_are_mongooseims() {
    let seen = observe(MetricNames::Prometheus, ModuleOptions::default(), scenario);
    let expected: BTreeMap<String, u64> = [
        (
            "mod_offline_mem_count{host_type=localhost,function=write_messages}",
            4,
        ),
        (
            "mod_offline_mem_time{host_type=localhost,function=write_messages}",
            4,
        ),
        (
            "mod_offline_mem_count{host_type=localhost,function=pop_messages}",
            1,
        ),
        (
            "mod_offline_mem_time{host_type=localhost,function=pop_messages}",
            1,
        ),
        ("sm_message_bounced_count{host_type=localhost}", 1),
        ("mod_offline_stored_count{host_type=localhost}", 3),
        (
            "mod_offline_rejected_count{host_type=localhost,reason=quota}",
            1,
        ),
        (
            "mod_offline_purged_count{host_type=localhost,reason=user}",
            1,
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    assert_eq!(seen, expected);
}

#[test]
fn exometer_names_are_flat() {
    let seen = observe(
        MetricNames::Exometer {
            all_metrics_are_global: false,
        },
        ModuleOptions::default(),
        scenario,
    );
    for name in [
        "localhost.mod_offline_mem.write_messages.count",
        "localhost.mod_offline_mem.write_messages.time",
        "localhost.mod_offline_mem.pop_messages.count",
        "localhost.mod_offline_mem.pop_messages.time",
        "localhost.sm_message_bounced.count",
        "localhost.mod_offline_rejected.quota.count",
    ] {
        assert!(seen.contains_key(name), "{name} missing from {seen:#?}");
    }
    assert!(
        seen.keys().all(|name| !name.contains('{')),
        "labels in {seen:#?}"
    );
    let global = observe(
        MetricNames::Exometer {
            all_metrics_are_global: true,
        },
        ModuleOptions::default(),
        scenario,
    );
    assert_eq!(
        global.get("global.mod_offline_mem.pop_messages.count"),
        Some(&1)
    );
}

#[test]
fn messages_expired_before_they_are_stored_are_dropped_and_counted() {
    let trusting = ModuleOptions {
        trust_sender_delay: true,
        ..ModuleOptions::default()
    };
    let seen = observe(MetricNames::Prometheus, trusting, async |module| {
        let (alice, bob) = (
            Jid::new("alice@localhost/r").unwrap(),
            Jid::new("bob@localhost").unwrap(),
        );
        // Sent an hour before T0 (2023-11-14T22:13:20Z), to expire after a minute.
        let stale: Element = "<message xmlns='jabber:client' type='chat'><body>b</body>\
            <delay xmlns='urn:xmpp:delay' stamp='2023-11-14T21:13:20Z'/>\
            <x xmlns='jabber:x:expire' seconds='60'/></message>"
            .parse()
            .unwrap();
        let outcome = module.offline_message(&alice, &bob, &stale).await;
        assert_eq!(outcome, Disposition::Dropped);
        assert!(
            module
                .resend_offline_messages(&bob)
                .await
                .unwrap()
                .is_empty()
        );
    });
    assert_eq!(
        seen.get("mod_offline_expired_dropped_count{host_type=localhost}"),
        Some(&1)
    );
    assert_eq!(
        seen.get("mod_offline_stored_count{host_type=localhost}"),
        None
    );
}

/// The gauges' values as `observe` prints them.
fn held_gauges(seen: &BTreeMap<String, u64>) -> [Option<&u64>; 3] {
    ["users", "messages", "bytes"]
        .map(|metric| seen.get(&format!("mod_offline_held_{metric}{{host_type=localhost}}")))
}

#[test]
fn held_gauges_count_every_user_of_the_served_domains_only() {
    use offline_module::offline_core::{NewMessage, OfflineBackend, Quota, UserKey};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let store = Arc::new(MemBackend::new());
    let packet = "<message xmlns='jabber:client'><body>held</body></message>";
    let (held, after_removal) = metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                // More users than one page of the walk, one of them with two messages; the
                // neighbouring domains are not the module's.
                let mut users: Vec<String> =
                    (0..1_050).map(|i| format!("u{i}@localhost")).collect();
                users.push("u0@localhost".into());
                users.extend(["u0@sub.localhost".into(), "u0@localhost.evil".into()]);
                for jid in &users {
                    let user: UserKey = jid.parse().unwrap();
                    let message = NewMessage::new(T0, "romeo@example.net/r", jid, packet);
                    store
                        .write_messages(&user, vec![message], Quota::UNLIMITED, T0)
                        .await
                        .unwrap();
                }
                let module = OfflineModule::builder("localhost", store.clone())
                    .domain("localhost".parse().unwrap())
                    .clock(Arc::new(ManualClock::new(T0)))
                    .build()
                    .await
                    .unwrap();
                let held = module.count_held().await.unwrap();
                module
                    .remove_user(&Jid::new("u0@localhost").unwrap())
                    .await
                    .unwrap();
                module.count_held().await.unwrap();
                (held, snapshot_of(&snapshotter))
            })
    });
    let bytes = 1_051 * packet.len() as u64;
    assert_eq!(
        held,
        offline_module::Held {
            users: 1_050,
            messages: 1_051,
            bytes
        }
    );
    // The gauges show the last count: set, not added to.
    assert_eq!(
        held_gauges(&after_removal),
        [
            Some(&1_049),
            Some(&1_049),
            Some(&(bytes - 2 * packet.len() as u64))
        ]
    );
}

#[test]
fn the_paged_delivery_is_counted_as_fetches_and_removals() {
    let seen = observe(
        MetricNames::Prometheus,
        ModuleOptions::default(),
        async |module| {
            let (alice, bob) = (
                Jid::new("alice@localhost/r").unwrap(),
                Jid::new("bob@localhost/desk").unwrap(),
            );
            let _ = module.offline_message(&alice, &bob, &chat("1")).await;
            let page = module.pending_messages(&bob, None, 50).await.unwrap();
            assert_eq!(page.seqs.len(), 1);
            module.remove_delivered(&bob, &page.seqs).await.unwrap();
        },
    );
    for function in ["fetch_messages", "remove_messages"] {
        for metric in ["count", "time"] {
            let name =
                format!("mod_offline_mem_{metric}{{host_type=localhost,function={function}}}");
            assert_eq!(seen.get(&name), Some(&1), "{name} in {seen:#?}");
        }
    }
}
