//! Parsing MongooseIM's TOML: defaults, errors naming keys, backends, host_config merging.

use super::*;

fn error(toml: &str) -> ConfigError {
    OfflineConfig::from_toml_str(toml).unwrap_err()
}

#[test]
fn defaults_are_mongooseims() {
    let config = OfflineConfig::from_toml_str("[modules.mod_offline]").unwrap();
    assert_eq!(config.global.module, Some(ModuleOptions::default()));
    assert_eq!(
        config.global.storage,
        Some(StorageConfig::RocksDb(RocksDbSettings::default()))
    );
    let module = config.global.module.unwrap();
    assert_eq!(module.backend, BackendKind::Mnesia);
    assert_eq!(module.backend.store_names(), ["rocksdb", "mem"]);
    assert!(!config.global.stub);
    assert_eq!(config.metric_names, MetricNames::Prometheus);
    let absent = OfflineConfig::from_toml_str("").unwrap();
    assert_eq!((absent.global.module, absent.global.storage), (None, None));
}

#[test]
fn wrong_values_name_their_key() {
    let cases = [
        (
            "[modules.mod_offline]\nbackend = \"frontend\"",
            "modules.mod_offline.backend",
            "unknown backend `frontend`",
        ),
        (
            "[modules.mod_offline]\nbackend = \"mem\"",
            "modules.mod_offline.backend",
            "expected one of `mnesia`, `memory`, `rocksdb`, `rdbms`",
        ),
        (
            "[modules.mod_offline]\nbackend = \"rdbms\"\nrdbms.url = \"odbc://dsn\"",
            "modules.mod_offline.rdbms.url",
            "expected a postgres://",
        ),
        (
            "[access]\nmax_user_offline_messages = [{acl = \"all\", value = 1.5}]",
            "access.max_user_offline_messages[0].value",
            "invalid type: floating point `1.5`, expected an integer (such as a message limit) \
             or a string (such as \"infinity\" or \"allow\")",
        ),
        (
            "[access]\nmax_user_offline_messages = [{acl = \"all\", value = true}]",
            "access.max_user_offline_messages[0].value",
            "invalid type: boolean `true`, expected an integer",
        ),
        (
            "[modules.mod_offline]\nmax_stanza_depth = 48.0",
            "modules.mod_offline.max_stanza_depth",
            "48.0 is not a depth limit: expected an integer from 2 to 256",
        ),
        (
            "[modules.mod_offline]\nmax_stanza_depth = 300",
            "modules.mod_offline.max_stanza_depth",
            "300 is not a depth limit",
        ),
        (
            "[modules.mod_offline]\nmax_stanza_depth = 1",
            "modules.mod_offline.max_stanza_depth",
            "1 is not a depth limit",
        ),
        (
            "[modules.mod_offline]\nbackend = 1",
            "modules.mod_offline.backend",
            "invalid type: integer `1`",
        ),
        (
            "[modules.mod_offline]\naccess_max_user_messages = \"\"",
            "modules.mod_offline.access_max_user_messages",
            "must not be empty",
        ),
        (
            "[modules.mod_offline]\naccess_max_user_messages = 1",
            "modules.mod_offline.access_max_user_messages",
            "invalid type: integer `1`, expected a string",
        ),
        (
            "[modules.mod_offline]\nstore_groupchat_messages = \"yes\"",
            "modules.mod_offline.store_groupchat_messages",
            "expected a boolean",
        ),
        (
            "[modules.mod_offline]\nmax_messages = 5",
            "modules.mod_offline.max_messages",
            "unknown field `max_messages`",
        ),
        (
            "[modules.mod_offline_stub]\nanything = true",
            "modules.mod_offline_stub.anything",
            "unknown field `anything`",
        ),
        (
            "[modules.mod_offline]\nbackend = \"rocksdb\"\nrocksdb.path = 3",
            "modules.mod_offline.rocksdb.path",
            "invalid type: integer `3`",
        ),
        (
            "[modules.mod_offline]\nbackend = \"rdbms\"",
            "outgoing_pools.rdbms.default.connection",
            "required",
        ),
        (
            "[general]\nhosts = [\"ok\", \"not ok\"]",
            "general.hosts[1]",
            "not a valid JID",
        ),
        (
            "[access]\nmax_user_offline_messages = [{acl = \"all\"}]",
            "access.max_user_offline_messages[0]",
            "missing field `value`",
        ),
        (
            "[modules.mod_offline]\n[access]\nmax_user_offline_messages = [{acl = \"all\", value = \"100\"}]",
            "access.max_user_offline_messages[0].value",
            "expected a non-negative integer or \"infinity\"",
        ),
        (
            "[[host_config]]\nhost_type = \"t\"\n[host_config.modules.mod_offline]\naccess_max_user_messages = \"q\"\n[host_config.access]\nq = [{acl = \"all\", value = 5}, {acl = \"all\", value = -2}]",
            "host_config[0].access.q[1].value",
            "must not be negative",
        ),
        (
            "[[host_config]]\nhost_type = \"t\"\n[host_config.modules.mod_offline]\nbackend = \"memcached\"",
            "host_config[0].modules.mod_offline.backend",
            "unknown backend `memcached`",
        ),
        (
            "[[host_config]]\n[host_config.modules.mod_offline]",
            "host_config[0]",
            "needs exactly one of `host` and `host_type`",
        ),
        (
            "[[host_config]]\nhost = \"a.example\"\n[[host_config]]\nhost = \"A.example\"",
            "host_config[1]",
            "a second host_config",
        ),
        (
            "[modules.mod_offline]\n[access]\nmax_user_offline_messages = [{acl = \"all\", value = -1}]",
            "access.max_user_offline_messages[0].value",
            "must not be negative",
        ),
    ];
    for (toml, key, message) in cases {
        let err = error(toml);
        assert_eq!(err.key, key, "{toml}: {err}");
        assert!(err.message.contains(message), "{toml}: {err}");
        assert!(err.to_string().starts_with(&format!("`{key}`: ")), "{err}");
    }
}

#[test]
fn syntax_errors_say_where() {
    let err = error("[modules.mod_offline\nbackend = 1");
    assert_eq!(err.key, "");
    assert!(err.message.contains("line 1"), "{err}");
}

#[test]
fn rdbms_from_url_or_mongooseim_pool() {
    let url = OfflineConfig::from_toml_str(
        "[modules.mod_offline]\nbackend = \"rdbms\"\nrdbms.url = \"postgres://u@h/db\"\nrdbms.pool_size = 4",
    )
    .unwrap();
    assert_eq!(
        url.global.storage,
        Some(StorageConfig::Rdbms(RdbmsSettings {
            connection: RdbmsConnection::Url {
                driver: RdbmsDriver::Pgsql,
                url: "postgres://u@h/db".into()
            },
            pool_size: Some(4),
            connect_timeout: None,
            checkout_timeout: None,
        }))
    );
    let pool = OfflineConfig::from_toml_str(
        r#"
        [modules.mod_offline]
          backend = "rdbms"
        [outgoing_pools.rdbms.default]
          scope = "global"
          workers = 5
          [outgoing_pools.rdbms.default.connection]
            driver = "pgsql"
            host = "localhost"
            database = "mongooseim"
            username = "mongooseim"
            password = "mongooseim_secret"
            tls.required = false
        [outgoing_pools.redis.global_distrib]
          scope = "global"
        "#,
    )
    .unwrap();
    let Some(StorageConfig::Rdbms(RdbmsSettings {
        connection,
        pool_size,
        ..
    })) = pool.global.storage
    else {
        panic!("{:?}", pool.global.storage);
    };
    assert_eq!(pool_size, Some(5));
    let shown = format!("{connection:?}");
    assert!(
        shown.contains("mongooseim") && !shown.contains("secret"),
        "{shown}"
    );
}

#[test]
fn exometer_names_when_only_exometer_is_configured() {
    let config =
        OfflineConfig::from_toml_str("[instrumentation.exometer]\nall_metrics_are_global = true")
            .unwrap();
    assert_eq!(
        config.metric_names,
        MetricNames::Exometer {
            all_metrics_are_global: true
        }
    );
    let both =
        OfflineConfig::from_toml_str("[instrumentation.exometer]\n[instrumentation.prometheus]")
            .unwrap();
    assert_eq!(both.metric_names, MetricNames::Prometheus);
}

#[test]
fn quota_rule_takes_integers_and_infinity() {
    let config = OfflineConfig::from_toml_str(
        "[modules.mod_offline]\n[access]\nmax_user_offline_messages = [{acl = \"admin\", value = \"infinity\"}, {acl = \"all\", value = 0}]",
    );
    assert!(config.is_ok(), "{config:?}");
    // Other rules are not quota rules: any value goes.
    let other = OfflineConfig::from_toml_str(
        "[modules.mod_offline]\n[access]\nc2s = [{acl = \"all\", value = \"allow\"}]",
    );
    assert!(other.is_ok(), "{other:?}");
}

#[test]
fn host_config_merges_as_mongooseim_does() {
    let config = OfflineConfig::from_toml_str(
        r#"
        [general]
          hosts = ["a.example", "b.example", "c.example"]
        [modules.mod_offline]
          store_groupchat_messages = true
        [acl]
          admin = [{user = "alice"}]
        [access]
          max_user_offline_messages = [{acl = "admin", value = 500}, {acl = "all", value = 10}]
          c2s = [{acl = "admin", value = "allow"}, {acl = "all", value = "allow"}]

        [[host_config]]
          host = "B.example"
          [host_config.acl]
            admin = [{user = "bob"}]
          [host_config.access]
            max_user_offline_messages = [{acl = "all", value = 3}]
            c2s = [{acl = "blocked", value = "deny"}]

        [[host_config]]
          host = "c.example"
          [host_config.modules.mod_offline_stub]
        "#,
    )
    .unwrap();
    let (a, b, c) = (
        config.for_host("a.example"),
        config.for_host("b.example"),
        config.for_host("c.example"),
    );
    assert!(a.module.as_ref().unwrap().store_groupchat_messages);
    assert_eq!(
        a.module, b.module,
        "modules are inherited without host_config.modules"
    );
    assert_eq!(
        (c.module.as_ref(), c.stub),
        (None, true),
        "host_config.modules replaces"
    );

    let user = |jid: &str| -> offline_core::UserKey { jid.parse().unwrap() };
    let quota =
        |host: &HostConfig, jid: &str| host.access.quota("max_user_offline_messages", &user(jid));
    assert_eq!(quota(a, "bob@a.example"), offline_core::Quota::messages(10));
    assert_eq!(
        quota(b, "bob@b.example"),
        offline_core::Quota::messages(500),
        "classes are united"
    );
    assert_eq!(
        quota(b, "carol@b.example"),
        offline_core::Quota::messages(10),
        "top-level clauses first"
    );
    let c2s: Vec<&str> = b.access.access["c2s"]
        .iter()
        .map(|c| c.acl.as_str())
        .collect();
    assert_eq!(
        c2s,
        ["admin", "blocked", "all"],
        "inserted before the allow-all clause"
    );
}

#[test]
fn host_config_pools_replace_the_top_level_pool() {
    let config = OfflineConfig::from_toml_str(
        r#"
        [modules.mod_offline]
          backend = "rdbms"
        [outgoing_pools.rdbms.default]
          workers = 10
          connection = {driver = "pgsql", host = "db1", database = "m", username = "u"}
        [[host_config]]
          host_type = "premium"
          [host_config.outgoing_pools.rdbms.default]
            workers = 2
            connection = {driver = "mysql", host = "db2", database = "m", username = "u"}
        "#,
    )
    .unwrap();
    let host = |storage: &Option<StorageConfig>| match storage {
        Some(StorageConfig::Rdbms(RdbmsSettings {
            connection: RdbmsConnection::Fields(fields),
            pool_size,
            ..
        })) => (fields.host.clone(), fields.driver, *pool_size),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        host(&config.global.storage),
        ("db1".into(), RdbmsDriver::Pgsql, Some(10))
    );
    assert_eq!(
        host(&config.for_host("premium").storage),
        ("db2".into(), RdbmsDriver::Mysql, Some(2))
    );
    let missing = OfflineConfig::from_toml_str(
        "[outgoing_pools.rdbms.default]\nconnection = {driver = \"pgsql\", host = \"h\", username = \"u\"}\n[modules.mod_offline]\nbackend = \"rdbms\"",
    )
    .unwrap_err();
    assert_eq!(
        missing.key,
        "outgoing_pools.rdbms.default.connection.database"
    );
}

#[test]
fn backend_names_map_to_stores() {
    for (written, kind, stores, storage) in [
        (
            "mnesia",
            BackendKind::Mnesia,
            &["rocksdb", "mem"][..],
            StorageConfig::RocksDb(RocksDbSettings::default()),
        ),
        (
            "memory",
            BackendKind::Memory,
            &["mem"],
            StorageConfig::Memory,
        ),
        (
            "rocksdb\"\nrocksdb.path = \"data",
            BackendKind::RocksDb,
            &["rocksdb"],
            StorageConfig::RocksDb(RocksDbSettings {
                path: "data".into(),
                ..RocksDbSettings::default()
            }),
        ),
    ] {
        let text = format!("[modules.mod_offline]\nbackend = \"{written}\"");
        let config = OfflineConfig::from_toml_str(&text).unwrap();
        let module = config.global.module.unwrap();
        assert_eq!(
            (module.backend, module.backend.store_names()),
            (kind, stores)
        );
        assert_eq!(config.global.storage, Some(storage), "{text}");
    }
}

#[test]
fn rdbms_urls_name_their_driver() {
    for (url, driver) in [
        ("postgres://u@h/db", RdbmsDriver::Pgsql),
        ("postgresql://u@h/db", RdbmsDriver::Pgsql),
        ("mysql://root@127.0.0.1/test", RdbmsDriver::Mysql),
        ("mariadb://root@127.0.0.1/test", RdbmsDriver::Mysql),
        ("sqlite:///var/lib/offline.db", RdbmsDriver::Sqlite),
    ] {
        let text = format!("[modules.mod_offline]\nbackend = \"rdbms\"\nrdbms.url = \"{url}\"");
        let storage = OfflineConfig::from_toml_str(&text).unwrap().global.storage;
        let Some(StorageConfig::Rdbms(RdbmsSettings { connection, .. })) = storage else {
            panic!("{url} gave {storage:?}");
        };
        assert_eq!(connection.driver(), driver, "{url}");
        assert!(
            !format!("{connection:?}").contains(url),
            "the URL is redacted"
        );
    }
}

#[test]
fn rocksdb_settings_are_read_and_checked() {
    let config = OfflineConfig::from_toml_str(
        "[modules.mod_offline]\nbackend = \"rocksdb\"\n[modules.mod_offline.rocksdb]\n\
         path = \"/var/lib/offline\"\nsync_writes = false\nblock_cache_size = 268435456\n\
         write_buffer_size = 16777216\nmax_open_files = 512\ncompression = \"none\"",
    )
    .unwrap();
    assert_eq!(
        config.global.storage,
        Some(StorageConfig::RocksDb(RocksDbSettings {
            path: "/var/lib/offline".into(),
            sync_writes: false,
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 16 << 20,
            max_open_files: Some(512),
            compress: false,
        }))
    );
    for (bad, key, message) in [
        (
            "block_cache_size = 10",
            "block_cache_size",
            "from 1 MiB (1048576) to 1 TiB",
        ),
        (
            "write_buffer_size = 2199023255552",
            "write_buffer_size",
            "to 1 TiB",
        ),
        ("path = \"\"", "path", "an empty path"),
        (
            "max_open_files = 3",
            "max_open_files",
            "expected -1 (all) or at least 16",
        ),
        (
            "compression = \"zstd\"",
            "compression",
            "expected `lz4` or `none`",
        ),
        ("sync_writes = \"yes\"", "sync_writes", "invalid type"),
        ("colour = \"blue\"", "colour", "unknown field"),
    ] {
        // Checked whatever the backend.
        let text = format!(
            "[modules.mod_offline]\nbackend = \"memory\"\n[modules.mod_offline.rocksdb]\n{bad}"
        );
        let err = error(&text);
        assert!(
            err.key
                .ends_with(&format!("modules.mod_offline.rocksdb.{key}"))
                || err.key == "modules.mod_offline.rocksdb" && key == "colour",
            "{bad}: {err:?}"
        );
        assert!(err.message.contains(message), "{bad}: {err}");
    }
}

#[test]
fn rdbms_pool_settings_are_read_and_checked() {
    let config = OfflineConfig::from_toml_str(
        "[modules.mod_offline]\nbackend = \"rdbms\"\n[modules.mod_offline.rdbms]\n\
         url = \"sqlite:///var/lib/offline.db\"\npool_size = 3\nconnect_timeout = 2500\n\
         checkout_timeout = 100",
    )
    .unwrap();
    let Some(StorageConfig::Rdbms(settings)) = config.global.storage else {
        panic!("{:?}", config.global.storage);
    };
    assert_eq!(settings.pool_size, Some(3));
    assert_eq!(settings.connect_timeout, Some(Duration::from_millis(2500)));
    assert_eq!(settings.checkout_timeout, Some(Duration::from_millis(100)));
    for (line, key) in [
        ("pool_size = 0", "modules.mod_offline.rdbms.pool_size"),
        (
            "connect_timeout = 0",
            "modules.mod_offline.rdbms.connect_timeout",
        ),
        (
            "checkout_timeout = -5",
            "modules.mod_offline.rdbms.checkout_timeout",
        ),
        (
            "checkout_timeout = 3600001",
            "modules.mod_offline.rdbms.checkout_timeout",
        ),
    ] {
        let err = error(&format!(
            "[modules.mod_offline]\nbackend = \"rdbms\"\n[modules.mod_offline.rdbms]\n\
             url = \"sqlite://x.db\"\n{line}"
        ));
        assert_eq!(err.key, key, "{line}: {err}");
    }
}

#[test]
fn a_pool_that_requires_tls_is_refused() {
    let err = error(
        r#"
        [modules.mod_offline]
          backend = "rdbms"
        [outgoing_pools.rdbms.default.connection]
          driver = "pgsql"
          host = "db"
          database = "m"
          username = "u"
          tls.required = true
          tls.cacertfile = "ca.pem"
        "#,
    );
    assert_eq!(
        err.key,
        "outgoing_pools.rdbms.default.connection.tls.required"
    );
    assert!(err.message.contains("not supported"), "{err}");
}

#[test]
fn pools_the_store_does_not_use_are_not_checked() {
    let config = OfflineConfig::from_toml_str(
        r#"
        [general]
          hosts = ["localhost"]
        [modules.mod_offline]
          backend = "memory"
        [outgoing_pools.rdbms.default]
          workers = "many"
          [outgoing_pools.rdbms.default.connection]
            driver = "odbc"
            settings = "DSN=mongooseim"
            tls.required = true
        "#,
    )
    .unwrap();
    assert_eq!(
        config.for_host("localhost").storage,
        Some(StorageConfig::Memory)
    );
}

#[test]
fn the_pool_in_use_is_checked_naming_its_keys() {
    let pool = |connection: &str, workers: &str| {
        format!(
            "[modules.mod_offline]\nbackend = \"rdbms\"\n[outgoing_pools.rdbms.default]\n\
             {workers}\n[outgoing_pools.rdbms.default.connection]\n{connection}\n"
        )
    };
    let fields = "host = \"db\"\ndatabase = \"m\"\nusername = \"u\"";
    for (toml, key) in [
        (
            pool(&format!("driver = \"odbc\"\n{fields}"), ""),
            "outgoing_pools.rdbms.default.connection.driver",
        ),
        (
            pool(&format!("driver = \"pgsql\"\n{fields}"), "workers = 0"),
            "outgoing_pools.rdbms.default.workers",
        ),
        (
            pool(&format!("driver = \"pgsql\"\n{fields}\nport = \"x\""), ""),
            "outgoing_pools.rdbms.default.connection",
        ),
    ] {
        assert_eq!(error(&toml).key, key, "{toml}");
    }
}

#[test]
fn urls_are_built_from_mongooseim_fields() {
    let fields = |driver, host: &str, port, password: &str| {
        RdbmsConnection::Fields(RdbmsFields {
            driver,
            host: host.into(),
            port,
            database: "mongoose im".into(),
            username: "mim@ops".into(),
            password: password.into(),
        })
    };
    assert_eq!(
        fields(
            RdbmsDriver::Pgsql,
            "db.example.com",
            Some(5433),
            "p@ss:w/rd"
        )
        .url(),
        "postgres://mim%40ops:p%40ss%3Aw%2Frd@db.example.com:5433/mongoose%20im"
    );
    assert_eq!(
        fields(RdbmsDriver::Mysql, "::1", None, "").url(),
        "mysql://mim%40ops@[::1]/mongoose%20im"
    );
}
