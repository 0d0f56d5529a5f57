//! Store behaviour, each test written once and run on SQLite (a temp file) always and on
//! PostgreSQL when `OSMESH_TEST_POSTGRES_URL` is set — in its own schema, dropped after.
//! With the variable set, an unreachable server fails the test: it never skips.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use diesel::connection::SimpleConnection;
use osmesh_core::{BootImage, ClusterId, OsystemInfo, Purpose, ReleaseInfo};

use super::testing::TestDb;
use super::*;

/// Runs `test` on a fresh SQLite database, then on a fresh PostgreSQL schema if configured.
fn for_each_backend(test: impl Fn(&TestDb)) {
    for db in TestDb::each() {
        test(&db);
    }
}

/// `for_each_backend` with the store opened and clusters `c1`, `c2`, `c3` registered.
fn with_store(test: impl Fn(&Store)) {
    for_each_backend(|db| {
        let store = db.open();
        for id in ["c1", "c2", "c3"] {
            store
                .upsert_cluster_seen(&cid(id), &format!("cluster {id}"), 1)
                .unwrap();
        }
        test(&store);
    });
}

fn cid(id: &str) -> ClusterId {
    ClusterId::new(id)
}

fn snapshot() -> ClusterSnapshot {
    ClusterSnapshot {
        osystems: vec![OsystemInfo {
            name: "ubuntu".into(),
            title: "Ubuntu".into(),
            releases: vec![ReleaseInfo {
                name: "jammy".into(),
                title: "Ubuntu 22.04 LTS \"Jammy Jellyfish\"".into(),
                requires_license_key: false,
                can_commission: true,
                end_of_life: false,
            }],
            default_release: Some("jammy".into()),
            default_commissioning_release: Some("jammy".into()),
        }]
        .into(),
        images: vec![BootImage {
            osystem: "ubuntu".into(),
            arch: "amd64".into(),
            subarch: "generic".into(),
            release: "jammy".into(),
            label: "stable".into(),
            purposes: [Purpose::Commissioning, Purpose::Install]
                .into_iter()
                .collect(),
        }]
        .into(),
    }
}

// ---------------------------------------------------------------- opening and migrations

#[test]
fn migrations_are_idempotent_and_data_survives_reopen() {
    for_each_backend(|db| {
        {
            let store = db.open();
            store.upsert_cluster_seen(&cid("c1"), "one", 100).unwrap();
        }
        let store = db.open();
        let again = db.open();
        let c = store
            .get_cluster(&cid("c1"))
            .unwrap()
            .expect("cluster after reopen");
        assert_eq!(
            (c.name.as_str(), c.first_seen_ms),
            ("one", 100),
            "[{}]",
            db.label
        );
        assert_eq!(again.list_clusters().unwrap().len(), 1);
    });
}

/// The engine really behind a store: asked of the server itself, not of the URL.
fn engine_of(store: &Store) -> String {
    #[derive(diesel::QueryableByName)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let conn = &mut *store.conn().unwrap();
    let version = match conn {
        connection::AnyConnection::Sqlite(c) => diesel::RunQueryDsl::get_result::<Version>(
            diesel::sql_query("SELECT 'SQLite ' || sqlite_version() AS v"),
            c,
        ),
        connection::AnyConnection::Postgresql(c) => diesel::RunQueryDsl::get_result::<Version>(
            diesel::sql_query("SELECT version() AS v"),
            c,
        ),
    };
    version.expect("the engine says its version").v
}

#[test]
fn backend_follows_the_url_scheme() {
    // Which constructor made the database (not its URL) says what it must run on; the
    // engine is asked for its own name, so a `postgres://` URL opened as a SQLite file
    // (or the reverse) fails here.
    for_each_backend(|db| {
        let store = db.open();
        let (expected, engine) = match db.label {
            "postgres" => (Backend::Postgres, "PostgreSQL "),
            _ => (Backend::Sqlite, "SQLite "),
        };
        assert_eq!(store.backend(), expected, "[{}]", db.label);
        let version = engine_of(&store);
        assert!(
            version.starts_with(engine),
            "[{}] runs on {version}",
            db.label
        );
    });
    let sqlite = Store::open(":memory:").unwrap();
    assert_eq!(sqlite.backend(), Backend::Sqlite);
    assert!(engine_of(&sqlite).starts_with("SQLite "));
}

#[test]
fn unreachable_postgres_is_a_connection_error() {
    let err = Store::open("postgres://nobody@127.0.0.1:1/none").unwrap_err();
    assert!(matches!(err, DbError::Connection(_)), "{err:?}");
    assert!(matches!(
        Store::open("mysql://h/db").unwrap_err(),
        DbError::InvalidUrl(_)
    ));
}

#[test]
fn in_memory_sqlite_is_one_shared_database() {
    // Ask for a pool of eight: an in-memory database exists once per connection, so a second
    // connection would be a second, empty database.
    let store = Store::open_with(
        ":memory:",
        &StoreOptions {
            pool_size: 8,
            connection_timeout: std::time::Duration::from_secs(30),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    store.upsert_cluster_seen(&cid("c1"), "one", 1).unwrap();
    // While the test holds a connection, another caller must wait for it rather than open a
    // fresh (empty) database: it sees c1 once the held one is back.
    let held = store.conn().unwrap();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || store.list_clusters().map(|c| c.len()))
    };
    // Long enough for the reader to reach the pool; if it raced past, the held connection is
    // the one it gets and the test still passes for a correct store.
    std::thread::sleep(std::time::Duration::from_millis(200));
    drop(held);
    let seen = reader.join().expect("the reader ran").unwrap();
    assert_eq!(
        seen, 1,
        "a second connection saw a different in-memory database"
    );
    store
        .set_setting(SettingKey::DefaultOsystem, "ubuntu")
        .unwrap();
    assert_eq!(store.list_clusters().unwrap().len(), 1);
    assert_eq!(
        store
            .get_setting(SettingKey::DefaultOsystem)
            .unwrap()
            .as_deref(),
        Some("ubuntu")
    );
}

#[test]
fn sqlite_connections_use_wal_busy_timeout_and_foreign_keys() {
    let db = TestDb::sqlite();
    let store = db.open();
    let conn = &mut *store.conn().unwrap();
    let connection::AnyConnection::Sqlite(conn) = conn else {
        panic!("expected SQLite");
    };
    #[derive(diesel::QueryableByName)]
    struct Pragma {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let pragma = |conn: &mut diesel::SqliteConnection, name: &str, column: &str| -> String {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "SELECT CAST({column} AS TEXT) AS v FROM pragma_{name}"
        ))
        .get_result::<Pragma>(conn)
        .unwrap()
        .v
    };
    assert_eq!(pragma(conn, "journal_mode", "journal_mode"), "wal");
    assert_eq!(pragma(conn, "foreign_keys", "foreign_keys"), "1");
    assert_eq!(pragma(conn, "busy_timeout", "timeout"), "5000");
}

// ---------------------------------------------------------------- clusters

#[test]
fn cluster_upsert_keeps_first_seen_and_updates_name_and_last_seen() {
    for_each_backend(|db| {
        let store = db.open();
        store.upsert_cluster_seen(&cid("b"), "bee", 10).unwrap();
        store.upsert_cluster_seen(&cid("a"), "ay", 20).unwrap();
        store
            .upsert_cluster_seen(&cid("b"), "bee renamed", 30)
            .unwrap();
        let all = store.list_clusters().unwrap();
        let ids: Vec<_> = all.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"], "sorted by id");
        let b = &all[1];
        assert_eq!(
            (b.name.as_str(), b.first_seen_ms, b.last_seen_ms),
            ("bee renamed", 10, 30)
        );
        assert_eq!(b.snapshot, None);
        assert_eq!(store.get_cluster(&cid("zz")).unwrap(), None);
        // Two regions write last-seen from their own queues: an older time arriving later
        // does not move it back, and the name still follows the latest writer.
        store
            .upsert_cluster_seen(&cid("b"), "bee late", 25)
            .unwrap();
        let b = store.get_cluster(&cid("b")).unwrap().expect("b");
        assert_eq!((b.name.as_str(), b.last_seen_ms), ("bee late", 30));
    });
}

#[test]
fn snapshot_round_trips_and_needs_a_known_cluster() {
    with_store(|store| {
        store.save_snapshot(&cid("c1"), &snapshot(), 500).unwrap();
        let c1 = store.get_cluster(&cid("c1")).unwrap().unwrap();
        assert_eq!(c1.snapshot, Some((snapshot(), 500)));
        let err = store
            .save_snapshot(&cid("nope"), &snapshot(), 1)
            .unwrap_err();
        assert!(
            matches!(
                err,
                DbError::NotFound {
                    what: "cluster",
                    ..
                }
            ),
            "{err:?}"
        );
    });
}

#[test]
fn corrupt_snapshot_json_is_an_error_not_a_panic() {
    with_store(|store| {
        store.save_snapshot(&cid("c1"), &snapshot(), 500).unwrap();
        store
            .conn()
            .unwrap()
            .batch_execute("UPDATE clusters SET last_snapshot = '{not json' WHERE id = 'c1'")
            .unwrap();
        let err = store.get_cluster(&cid("c1")).unwrap_err();
        assert!(
            matches!(
                err,
                DbError::Corrupt {
                    what: "cluster snapshot",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(store.list_clusters().is_err());
    });
}

// ---------------------------------------------------------------- license keys

fn key<'a>(os: &'a str, series: &'a str, k: &'a str, by: &'a ClusterId) -> NewLicenseKey<'a> {
    NewLicenseKey {
        osystem: os,
        distro_series: series,
        license_key: k,
        validated_by: by,
        validated_at_ms: 7,
    }
}

#[test]
fn license_keys_crud_refuses_a_second_key_for_a_pair_and_masks() {
    with_store(|store| {
        let c1 = cid("c1");
        let c2 = cid("c2");
        let win = store
            .insert_license_key(
                &key("windows", "win2022", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", &c1),
                100,
            )
            .unwrap();
        assert_eq!(win.masked(), "*****-*****-*****-*****-EEEEE");
        assert!(
            !format!("{win:?}").contains("AAAAA"),
            "Debug must not show the key"
        );
        store
            .insert_license_key(&key("windows", "win2019", "K2", &c1), 101)
            .unwrap();
        store
            .insert_license_key(&key("rhel", "9", "K3", &c1), 102)
            .unwrap();

        let dup = store
            .insert_license_key(&key("windows", "win2022", "OTHER", &c2), 103)
            .unwrap_err();
        assert!(
            matches!(
                dup,
                DbError::Conflict {
                    what: "license key",
                    ..
                }
            ),
            "{dup:?}"
        );
        let unknown = store
            .insert_license_key(&key("x", "y", "K", &cid("ghost")), 1)
            .unwrap_err();
        assert!(
            matches!(
                unknown,
                DbError::NotFound {
                    what: "cluster",
                    ..
                }
            ),
            "{unknown:?}"
        );

        let updated = store
            .update_license_key(&key("windows", "win2022", "ZZZZZ-YYYYY", &c2), 200)
            .unwrap();
        assert_eq!(
            (
                updated.license_key.as_str(),
                updated.validated_by.as_str(),
                updated.created_at_ms,
                updated.updated_at_ms
            ),
            ("ZZZZZ-YYYYY", "c2", 100, 200)
        );
        assert_eq!(
            store.get_license_key("windows", "win2022").unwrap(),
            Some(updated)
        );

        let pairs: Vec<_> = store
            .list_license_keys()
            .unwrap()
            .into_iter()
            .map(|k| (k.osystem, k.distro_series))
            .collect();
        let expected = [
            ("rhel", "9"),
            ("windows", "win2019"),
            ("windows", "win2022"),
        ];
        assert_eq!(pairs, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));

        store.delete_license_key("windows", "win2019").unwrap();
        assert_eq!(store.get_license_key("windows", "win2019").unwrap(), None);
        assert!(matches!(
            store.delete_license_key("windows", "win2019"),
            Err(DbError::NotFound { .. })
        ));
        assert!(matches!(
            store.update_license_key(&key("windows", "win2019", "K", &c1), 1),
            Err(DbError::NotFound { .. })
        ));
    });
}

// ---------------------------------------------------------------- settings

#[test]
fn settings_are_upserted_and_listed() {
    with_store(|store| {
        assert!(store.get_settings().unwrap().is_empty());
        store
            .set_setting(SettingKey::DefaultOsystem, "ubuntu")
            .unwrap();
        store
            .set_setting(SettingKey::DefaultDistroSeries, "focal")
            .unwrap();
        store
            .set_setting(SettingKey::DefaultDistroSeries, "jammy")
            .unwrap();
        let all = store.get_settings().unwrap();
        let expected = [
            (SettingKey::DefaultOsystem, "ubuntu".to_owned()),
            (SettingKey::DefaultDistroSeries, "jammy".to_owned()),
        ];
        assert_eq!(all, expected.into_iter().collect());
        assert_eq!(
            store
                .get_setting(SettingKey::CommissioningDistroSeries)
                .unwrap(),
            None
        );
    });
}

// ---------------------------------------------------------------- nodes

fn node(hostname: &str, arch: &str, cluster: &str) -> NewNode {
    NewNode {
        system_id: None,
        hostname: hostname.into(),
        arch: arch.into(),
        subarch: "generic".into(),
        cluster_id: cid(cluster),
        power_type: Some("ipmi".into()),
        power_parameters: Some(serde_json::json!({"power_address": "10.0.0.1"})),
    }
}

fn request<'a>(arch: &'a str, clusters: &'a [ClusterId]) -> AllocationRequest<'a> {
    AllocationRequest {
        arch,
        subarch: None,
        cluster_ids: clusters,
        hostname: None,
        osystem: "ubuntu",
        distro_series: "jammy",
    }
}

#[test]
fn nodes_crud() {
    with_store(|store| {
        let a = store.create_node(&node("a", "amd64", "c1"), 10).unwrap();
        let b = store
            .create_node(
                &NewNode {
                    system_id: Some("sys-b".into()),
                    power_parameters: None,
                    ..node("b", "arm64", "c2")
                },
                11,
            )
            .unwrap();
        assert!(a.id < b.id);
        assert_eq!(
            (a.status, a.osystem.as_deref(), a.allocated_at_ms),
            (NodeStatus::Ready, None, None)
        );
        assert_eq!(
            a.power_parameters,
            Some(serde_json::json!({"power_address": "10.0.0.1"}))
        );
        assert_eq!(store.get_node(b.id).unwrap(), Some(b.clone()));
        assert_eq!(store.list_nodes().unwrap(), vec![a.clone(), b.clone()]);

        let dup = store
            .create_node(&node("a", "amd64", "c1"), 12)
            .unwrap_err();
        assert!(
            matches!(dup, DbError::Conflict { what: "node", .. }),
            "{dup:?}"
        );
        let orphan = store
            .create_node(&node("z", "amd64", "ghost"), 12)
            .unwrap_err();
        assert!(
            matches!(
                orphan,
                DbError::NotFound {
                    what: "cluster",
                    ..
                }
            ),
            "{orphan:?}"
        );

        store.delete_node(a.id).unwrap();
        assert_eq!(store.get_node(a.id).unwrap(), None);
        assert!(matches!(
            store.delete_node(a.id),
            Err(DbError::NotFound { .. })
        ));
        assert!(matches!(
            store.release_node(a.id),
            Err(DbError::NotFound { .. })
        ));
        assert_eq!(store.list_nodes().unwrap(), vec![b]);
    });
}

#[test]
fn allocation_picks_matching_arch_and_cluster_lowest_id_first() {
    with_store(|store| {
        let _arm = store.create_node(&node("arm", "arm64", "c1"), 1).unwrap();
        let _elsewhere = store
            .create_node(&node("elsewhere", "amd64", "c3"), 1)
            .unwrap();
        let first = store.create_node(&node("first", "amd64", "c1"), 1).unwrap();
        let second = store
            .create_node(&node("second", "amd64", "c2"), 1)
            .unwrap();
        let clusters = [cid("c1"), cid("c2")];

        assert_eq!(store.count_ready_nodes("amd64", &clusters).unwrap(), 2);
        let got = store
            .allocate(&request("amd64", &clusters), 50)
            .unwrap()
            .unwrap();
        assert_eq!(got.id, first.id);
        assert_eq!(
            (
                got.status,
                got.osystem.as_deref(),
                got.distro_series.as_deref(),
                got.allocated_at_ms
            ),
            (
                NodeStatus::Allocated,
                Some("ubuntu"),
                Some("jammy"),
                Some(50)
            )
        );
        assert_eq!(
            store
                .allocate(&request("amd64", &clusters), 51)
                .unwrap()
                .unwrap()
                .id,
            second.id
        );
        assert_eq!(
            store.allocate(&request("amd64", &clusters), 52).unwrap(),
            None,
            "c3 and arm64 never match"
        );
        assert_eq!(store.count_ready_nodes("amd64", &clusters).unwrap(), 0);
        assert_eq!(store.allocate(&request("amd64", &[]), 52).unwrap(), None);

        let released = store.release_node(first.id).unwrap();
        assert_eq!(
            (released.status, released.osystem, released.allocated_at_ms),
            (NodeStatus::Ready, None, None)
        );
        let by_name = AllocationRequest {
            hostname: Some("first"),
            ..request("amd64", &clusters)
        };
        assert_eq!(store.allocate(&by_name, 60).unwrap().unwrap().id, first.id);
        let only_c1 = [cid("c1")];
        let wrong_subarch = AllocationRequest {
            subarch: Some("hwe-22.04"),
            ..request("arm64", &only_c1)
        };
        assert_eq!(store.allocate(&wrong_subarch, 61).unwrap(), None);
    });
}

#[test]
fn concurrent_allocation_hands_out_each_node_exactly_once() {
    const THREADS: usize = 100;
    const NODES: usize = 10;
    for_each_backend(|db| {
        let store = db.open_with(&StoreOptions {
            pool_size: 16,
            ..StoreOptions::default()
        });
        for c in ["c1", "c2", "c3"] {
            store.upsert_cluster_seen(&cid(c), c, 1).unwrap();
        }
        for i in 0..NODES {
            let cluster = if i % 2 == 0 { "c1" } else { "c2" };
            store
                .create_node(&node(&format!("n{i}"), "amd64", cluster), 1)
                .unwrap();
        }
        // Decoys that must never be handed out.
        store
            .create_node(&node("decoy-arch", "arm64", "c1"), 1)
            .unwrap();
        store
            .create_node(&node("decoy-cluster", "amd64", "c3"), 1)
            .unwrap();

        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let store = store.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let clusters = [cid("c1"), cid("c2")];
                    barrier.wait();
                    store.allocate(&request("amd64", &clusters), 1000 + i as i64)
                })
            })
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("allocating thread panicked"))
            .collect();
        let errors: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(
            errors.is_empty(),
            "[{}] allocation errors under contention: {errors:?}",
            db.label
        );
        let won: Vec<_> = results.into_iter().filter_map(|r| r.unwrap()).collect();
        let distinct: BTreeSet<_> = won.iter().map(|n| n.id).collect();
        assert_eq!(
            (won.len(), distinct.len()),
            (NODES, NODES),
            "[{}]",
            db.label
        );
        assert!(
            won.iter().all(|n| n.hostname.starts_with('n')),
            "[{}] a decoy was allocated",
            db.label
        );
        let allocated = store
            .list_nodes()
            .unwrap()
            .into_iter()
            .filter(|n| n.status == NodeStatus::Allocated)
            .count();
        assert_eq!(allocated, NODES, "[{}]", db.label);
    });
}

// ---------------------------------------------------------------- preseeds

#[test]
fn preseed_from_a_cluster_is_created_then_reports_are_idempotent() {
    with_store(|store| {
        let c1 = cid("c1");
        let first = store.record_cluster_template("generic", Some("ubuntu"), "v1 text", &c1, 10);
        assert_eq!(first.unwrap(), PreseedOutcome::Created { version: 1 });
        let again = store.record_cluster_template("generic", Some("ubuntu"), "v1 text", &c1, 20);
        assert_eq!(
            again.unwrap(),
            PreseedOutcome::Unchanged { current_version: 1 }
        );
        let other_cluster =
            store.record_cluster_template("generic", Some("ubuntu"), "v1 text", &cid("c2"), 20);
        assert_eq!(
            other_cluster.unwrap(),
            PreseedOutcome::Unchanged { current_version: 1 }
        );

        let record = store.get_preseed("generic").unwrap().unwrap();
        assert_eq!(record.conflict, None);
        assert_eq!(record.current.version, 1);
        assert_eq!(record.current.origin, PreseedOrigin::Cluster(c1));
        assert_eq!(record.current.content_hash.len(), 64);
        assert_eq!(store.history("generic").unwrap().len(), 1);
        assert_eq!(store.get_preseed("missing").unwrap(), None);
        assert!(matches!(
            store.history("missing"),
            Err(DbError::NotFound { .. })
        ));
    });
}

#[test]
fn cluster_change_without_operator_edit_becomes_current() {
    with_store(|store| {
        let c1 = cid("c1");
        store
            .record_cluster_template("generic", None, "v1", &c1, 10)
            .unwrap();
        let outcome = store
            .record_cluster_template("generic", None, "v2", &c1, 20)
            .unwrap();
        assert_eq!(outcome, PreseedOutcome::Updated { version: 2 });
        let current = store.get_preseed("generic").unwrap().unwrap().current;
        assert_eq!(
            (
                current.version,
                current.content.as_str(),
                current.parent_version
            ),
            (2, "v2", Some(1))
        );
    });
}

#[test]
fn operator_edit_needs_the_current_version() {
    with_store(|store| {
        let c1 = cid("c1");
        store
            .record_cluster_template("generic", Some("ubuntu"), "v1", &c1, 10)
            .unwrap();
        let edited = store.operator_edit("generic", "mine", 1, 20).unwrap();
        let v = &edited.current;
        assert_eq!(
            (
                v.version,
                v.origin.clone(),
                v.parent_version,
                v.osystem.as_deref(),
                v.content.as_str()
            ),
            (2, PreseedOrigin::Operator, Some(1), Some("ubuntu"), "mine")
        );
        let stale = store.operator_edit("generic", "late", 1, 30).unwrap_err();
        assert!(
            matches!(
                &stale,
                DbError::Stale {
                    based_on: 1,
                    current: 2,
                    ..
                }
            ),
            "{stale:?}"
        );
        assert!(matches!(
            store.operator_edit("missing", "x", 1, 30),
            Err(DbError::NotFound { .. })
        ));
        assert_eq!(
            store.history("generic").unwrap().len(),
            2,
            "a refused edit stores nothing"
        );
    });
}

#[test]
fn cluster_change_after_operator_edit_keeps_both_and_reports_conflict() {
    with_store(|store| {
        let c1 = cid("c1");
        store
            .record_cluster_template("generic", None, "v1", &c1, 10)
            .unwrap();
        store.operator_edit("generic", "mine", 1, 20).unwrap();
        // Re-reporting the old template is not a change.
        assert_eq!(
            store
                .record_cluster_template("generic", None, "v1", &c1, 25)
                .unwrap(),
            PreseedOutcome::Unchanged { current_version: 2 }
        );
        let outcome = store
            .record_cluster_template("generic", None, "v3 upstream", &c1, 30)
            .unwrap();
        let conflict = PreseedConflict {
            operator_version: 2,
            cluster_version: 3,
        };
        assert_eq!(outcome, PreseedOutcome::Conflict(conflict));
        let record = store.get_preseed("generic").unwrap().unwrap();
        assert_eq!(
            (record.current.content.as_str(), record.conflict),
            ("mine", Some(conflict))
        );
        let history = store.history("generic").unwrap();
        let contents: Vec<_> = history
            .iter()
            .map(|v| (v.version, v.content.as_str()))
            .collect();
        assert_eq!(contents, [(1, "v1"), (2, "mine"), (3, "v3 upstream")]);
        assert_eq!(
            history[2].parent_version,
            Some(1),
            "the cluster's change derives from its own v1"
        );

        // A further upstream change moves the cluster side of the conflict.
        let outcome = store
            .record_cluster_template("generic", None, "v4 upstream", &c1, 40)
            .unwrap();
        assert_eq!(
            outcome,
            PreseedOutcome::Conflict(PreseedConflict {
                operator_version: 2,
                cluster_version: 4
            })
        );
        let listed = store.list_preseeds().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].current.version,
                listed[0].conflict.map(|c| c.cluster_version)
            ),
            (2, Some(4))
        );

        // The operator merges, based on the current version: conflict resolved.
        let merged = store.operator_edit("generic", "mine + v4", 2, 50).unwrap();
        assert_eq!((merged.current.version, merged.conflict), (5, None));
        assert_eq!(
            store.history("generic").unwrap().len(),
            5,
            "no version is ever lost"
        );
    });
}

#[test]
fn resolving_a_conflict_picks_a_side_without_a_new_version() {
    with_store(|store| {
        let c1 = cid("c1");
        store
            .record_cluster_template("generic", None, "v1", &c1, 10)
            .unwrap();
        store.operator_edit("generic", "mine", 1, 20).unwrap();
        assert!(matches!(
            store.resolve_conflict("generic", 2, 25),
            Err(DbError::Invalid(_))
        ));
        store
            .record_cluster_template("generic", None, "v3", &c1, 30)
            .unwrap();
        assert!(matches!(
            store.resolve_conflict("generic", 1, 35),
            Err(DbError::Invalid(_))
        ));

        let resolved = store.resolve_conflict("generic", 3, 40).unwrap();
        assert_eq!((resolved.current.version, resolved.conflict), (3, None));
        assert_eq!(store.history("generic").unwrap().len(), 3);
        // Current is the cluster's again, so its next change simply advances.
        let outcome = store
            .record_cluster_template("generic", None, "v4", &c1, 50)
            .unwrap();
        assert_eq!(outcome, PreseedOutcome::Updated { version: 4 });
    });
}

#[test]
fn preseeds_are_listed_by_name_with_their_current_version() {
    with_store(|store| {
        let c1 = cid("c1");
        store
            .record_cluster_template("zeta", None, "z", &c1, 10)
            .unwrap();
        store
            .record_cluster_template("alpha", None, "a1", &c1, 10)
            .unwrap();
        store
            .record_cluster_template("alpha", None, "a2", &c1, 11)
            .unwrap();
        let listed: Vec<_> = store
            .list_preseeds()
            .unwrap()
            .into_iter()
            .map(|p| (p.current.name, p.current.version, p.current.content))
            .collect();
        assert_eq!(
            listed,
            [
                ("alpha".to_owned(), 2, "a2".to_owned()),
                ("zeta".to_owned(), 1, "z".to_owned())
            ]
        );
    });
}

#[test]
fn preseed_versions_cannot_be_updated_or_deleted() {
    with_store(|store| {
        store
            .record_cluster_template("generic", None, "v1", &cid("c1"), 10)
            .unwrap();
        {
            let conn = &mut *store.conn().unwrap();
            for sql in [
                "UPDATE preseed_versions SET content = 'x'",
                "DELETE FROM preseed_versions",
            ] {
                let err = conn
                    .batch_execute(sql)
                    .expect_err("the trigger refuses it")
                    .to_string();
                assert!(
                    err.contains("preseed versions are immutable"),
                    "{sql}: refused for another reason: {err}"
                );
            }
        }
        assert_eq!(store.history("generic").unwrap()[0].content, "v1");
    });
}

#[test]
fn concurrent_operator_edits_have_exactly_one_winner() {
    const EDITORS: usize = 12;
    for_each_backend(|db| {
        let store = db.open_with(&StoreOptions {
            pool_size: 16,
            ..StoreOptions::default()
        });
        store.upsert_cluster_seen(&cid("c1"), "c1", 1).unwrap();
        store
            .record_cluster_template("generic", None, "v1", &cid("c1"), 10)
            .unwrap();
        let barrier = Arc::new(Barrier::new(EDITORS));
        let handles: Vec<_> = (0..EDITORS)
            .map(|i| {
                let store = store.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    store.operator_edit("generic", &format!("edit {i}"), 1, 20)
                })
            })
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("editor panicked"))
            .collect();
        let wins = results.iter().filter(|r| r.is_ok()).count();
        let stale = results
            .iter()
            .filter(|r| matches!(r, Err(DbError::Stale { current: 2, .. })))
            .count();
        assert_eq!(
            (wins, stale),
            (1, EDITORS - 1),
            "[{}] {results:?}",
            db.label
        );
        assert_eq!(store.history("generic").unwrap().len(), 2, "[{}]", db.label);
    });
}

// ---------------------------------------------------------------- concurrent first writes

/// Runs `work(i)` for `i` in `0..n` on `n` threads released together; results in order.
fn at_once<T: Send + 'static>(
    n: usize,
    work: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let work = Arc::new(work);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let work = Arc::clone(&work);
            std::thread::spawn(move || {
                barrier.wait();
                work(i)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("a worker panicked"))
        .collect()
}

#[test]
fn ten_clusters_reporting_the_same_new_template_at_once_create_it_once() {
    const CLUSTERS: usize = 10;
    for_each_backend(|db| {
        let store = db.open_with(&StoreOptions {
            pool_size: 16,
            ..StoreOptions::default()
        });
        for i in 0..CLUSTERS {
            store
                .upsert_cluster_seen(&cid(&format!("c{i}")), "c", 1)
                .unwrap();
        }
        let results = {
            let store = store.clone();
            at_once(CLUSTERS, move |i| {
                store.record_cluster_template(
                    "generic",
                    Some("ubuntu"),
                    "same content everywhere",
                    &cid(&format!("c{i}")),
                    10,
                )
            })
        };
        let label = db.label;
        let outcomes: Vec<_> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("[{label}] a first report failed: {e}")))
            .collect();
        let created = outcomes
            .iter()
            .filter(|o| matches!(o, PreseedOutcome::Created { version: 1 }))
            .count();
        assert_eq!(created, 1, "[{label}] {outcomes:?}");
        let appended = outcomes
            .iter()
            .filter(|o| !matches!(o, PreseedOutcome::Unchanged { .. }))
            .count();
        let versions: Vec<i32> = store
            .history("generic")
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(
            versions,
            (1..=appended as i32).collect::<Vec<_>>(),
            "[{label}] one version per appending report, numbered without gaps: {outcomes:?}"
        );
        assert_eq!(store.list_preseeds().unwrap().len(), 1, "[{label}]");
    });
}

#[test]
fn concurrent_first_set_setting_on_an_unset_key_keeps_one_value() {
    const WRITERS: usize = 10;
    for_each_backend(|db| {
        let store = db.open_with(&StoreOptions {
            pool_size: 16,
            ..StoreOptions::default()
        });
        assert_eq!(store.get_setting(SettingKey::DefaultOsystem).unwrap(), None);
        let results = {
            let store = store.clone();
            at_once(WRITERS, move |i| {
                store.set_setting(SettingKey::DefaultOsystem, &format!("os{i}"))
            })
        };
        for r in &results {
            assert!(r.is_ok(), "[{}] {results:?}", db.label);
        }
        let value = store
            .get_setting(SettingKey::DefaultOsystem)
            .unwrap()
            .expect("a value");
        let written: BTreeSet<String> = (0..WRITERS).map(|i| format!("os{i}")).collect();
        assert!(written.contains(&value), "[{}] {value}", db.label);
    });
}

#[test]
fn several_stores_migrating_one_fresh_database_at_once() {
    const STORES: usize = 4;
    // `TestDb` gives a fresh SQLite path and, when configured, a fresh empty PostgreSQL schema
    // (dropped after); nothing has migrated either yet.
    for_each_backend(|db| {
        let url = db.url.clone();
        let results = at_once(STORES, move |_| {
            Store::open(&url).map(|s| s.list_clusters())
        });
        for r in results {
            match r {
                Ok(Ok(clusters)) => assert!(clusters.is_empty(), "[{}]", db.label),
                Ok(Err(e)) | Err(e) => panic!("[{}] a concurrent first open failed: {e}", db.label),
            }
        }
        let store = db.open();
        store.upsert_cluster_seen(&cid("c1"), "one", 1).unwrap();
        assert_eq!(store.list_clusters().unwrap().len(), 1, "[{}]", db.label);
    });
}

// ---------------------------------------------------------------- cluster templates

/// A (cluster, name) row as (cluster, name, state, version, error).
type Lane = (String, String, TemplateState, Option<i32>, Option<String>);

/// Each (cluster, name) row, sorted.
fn lanes(store: &Store) -> Vec<Lane> {
    store
        .list_cluster_templates()
        .unwrap()
        .into_iter()
        .map(|l| (l.cluster.0, l.name, l.state, l.version, l.error))
        .collect()
}

#[test]
fn cluster_templates_are_keyed_by_cluster_and_pending_until_an_admin_decides() {
    use TemplateState::*;
    with_store(|store| {
        let (c1, c2) = (cid("c1"), cid("c2"));
        store
            .record_cluster_template("generic", None, "same", &c1, 10)
            .unwrap();
        // The same text from another cluster adds no version but is that cluster's own row.
        store
            .record_cluster_template("generic", None, "same", &c2, 11)
            .unwrap();
        store
            .record_cluster_template("zzz_ubuntu", None, "evil", &c2, 12)
            .unwrap();
        let row = |c: &str, n: &str, st, v| (c.to_owned(), n.to_owned(), st, Some(v), None);
        assert_eq!(
            lanes(store),
            [
                row("c1", "generic", Pending, 1),
                row("c2", "generic", Pending, 1),
                row("c2", "zzz_ubuntu", Pending, 1),
            ]
        );
        let approved = store
            .decide_cluster_template(&c1, "generic", Approved, 20)
            .unwrap();
        assert_eq!((approved.state, approved.updated_at_ms), (Approved, 20));
        store
            .decide_cluster_template(&c2, "zzz_ubuntu", Refused, 21)
            .unwrap();
        // A change from c2 is c2's: its row moves, c1's does not, and an admin's word stays.
        store
            .record_cluster_template("generic", None, "c2 changed", &c2, 30)
            .unwrap();
        store
            .record_cluster_template("zzz_ubuntu", None, "evil 2", &c2, 31)
            .unwrap();
        store
            .record_cluster_template("generic", None, "same", &c1, 32)
            .unwrap();
        assert_eq!(
            lanes(store),
            [
                row("c1", "generic", Approved, 1),
                row("c2", "generic", Pending, 2),
                row("c2", "zzz_ubuntu", Refused, 2),
            ]
        );
        assert!(matches!(
            store.decide_cluster_template(&c1, "zzz_ubuntu", Approved, 40),
            Err(DbError::NotFound { .. })
        ));
        assert!(matches!(
            store.decide_cluster_template(&c1, "generic", Pending, 40),
            Err(DbError::Invalid(_))
        ));
        // Removing a cluster removes its rows: its approvals do not outlive it. (A cluster
        // whose versions are in the history cannot be removed: they reference it.)
        let c3 = cid("c3");
        let broken = ClusterTemplate {
            name: "x",
            osystem: None,
            content: "{% if %}",
            refusal: Some("syntax"),
        };
        store
            .record_cluster_templates(&[broken], &c3, 50, 5)
            .unwrap();
        store
            .decide_cluster_template(&c3, "x", Approved, 51)
            .unwrap();
        assert_eq!(lanes(store).len(), 4);
        assert!(store.remove_cluster(&c3).unwrap());
        assert_eq!(lanes(store).len(), 3);
    });
}

#[test]
fn a_template_failing_its_arrival_check_is_recorded_and_never_versioned() {
    with_store(|store| {
        let c1 = cid("c1");
        let t = |content, refusal| ClusterTemplate {
            name: "curtin",
            osystem: None,
            content,
            refusal,
        };
        let refused = store.record_cluster_templates(&[t("{% if %}", Some("syntax"))], &c1, 10, 5);
        assert_eq!(refused.unwrap(), [PreseedOutcome::Refused]);
        assert_eq!(store.get_preseed("curtin").unwrap(), None, "no history");
        let rows = store.list_cluster_templates().unwrap();
        assert_eq!(
            (rows[0].state, rows[0].version, rows[0].error.as_deref()),
            (TemplateState::Pending, None, Some("syntax"))
        );
        // A good version clears the error; a broken one later keeps the good one in place.
        store
            .record_cluster_templates(&[t("good", None)], &c1, 20, 5)
            .unwrap();
        store
            .decide_cluster_template(&c1, "curtin", TemplateState::Approved, 21)
            .unwrap();
        let again = store.record_cluster_templates(&[t("{% bad", Some("again"))], &c1, 30, 5);
        assert_eq!(again.unwrap(), [PreseedOutcome::Refused]);
        let row = &store.list_cluster_templates().unwrap()[0];
        assert_eq!(
            (
                row.state,
                row.version,
                row.error.as_deref(),
                row.updated_at_ms
            ),
            (TemplateState::Approved, Some(1), Some("again"), 30)
        );
        assert_eq!(store.history("curtin").unwrap().len(), 1);
    });
}

#[test]
fn a_cluster_catching_up_with_the_operator_leaves_the_operator_version_current() {
    with_store(|store| {
        let c1 = cid("c1");
        store
            .record_cluster_template("generic", None, "v1", &c1, 10)
            .unwrap();
        store.operator_edit("generic", "mine", 1, 20).unwrap();
        store
            .record_cluster_template("generic", None, "v3", &c1, 30)
            .unwrap();
        let outcome = store
            .record_cluster_template("generic", None, "mine", &c1, 40)
            .unwrap();
        assert_eq!(outcome, PreseedOutcome::CaughtUp { version: 4 });
        let record = store.get_preseed("generic").unwrap().unwrap();
        assert_eq!(
            (
                record.current.version,
                record.current.origin,
                record.conflict
            ),
            (2, PreseedOrigin::Operator, None)
        );
        assert_eq!(
            lanes(store)[0].3,
            Some(4),
            "the cluster's row names its copy"
        );
    });
}

/// Runs the migrations before `…_cluster_templates` on `db`, then `sql`.
fn before_cluster_templates(db: &TestDb, sql: &str) {
    use diesel::backend::Backend;
    use diesel::migration::MigrationSource;
    use diesel::Connection;
    use diesel_migrations::MigrationHarness;
    fn run<C, B>(conn: &mut C, source: fn() -> diesel_migrations::EmbeddedMigrations, sql: &str)
    where
        B: Backend,
        C: MigrationHarness<B> + SimpleConnection,
        diesel_migrations::EmbeddedMigrations: MigrationSource<B>,
    {
        while !conn.pending_migrations(source()).unwrap()[0]
            .name()
            .to_string()
            .ends_with("_cluster_templates")
        {
            conn.run_next_migration(source()).unwrap();
        }
        conn.batch_execute(sql).unwrap();
    }
    if db.label == "sqlite" {
        let path = db.url.trim_start_matches("sqlite://");
        let mut conn = diesel::SqliteConnection::establish(path).unwrap();
        run(&mut conn, || connection::SQLITE_MIGRATIONS, sql);
    } else {
        let mut conn = diesel::PgConnection::establish(&db.url).unwrap();
        run(&mut conn, || connection::POSTGRES_MIGRATIONS, sql);
    }
}

#[test]
fn templates_stored_before_the_rule_stay_approved_for_the_cluster_that_shipped_them() {
    for_each_backend(|db| {
        before_cluster_templates(
            db,
            "INSERT INTO clusters (id, name, first_seen_ms, last_seen_ms)
                 VALUES ('c1', 'c1', 1, 1), ('c2', 'c2', 1, 1);
             INSERT INTO preseeds (name, current_version, updated_at_ms) VALUES ('generic', 4, 40);
             INSERT INTO preseed_versions
                 (name, version, origin, origin_cluster, content, content_hash, created_at_ms)
                 VALUES ('generic', 1, 'cluster', 'c1', 'a', 'ha', 10),
                        ('generic', 2, 'cluster', 'c2', 'b', 'hb', 20),
                        ('generic', 3, 'cluster', 'c1', 'c', 'hc', 30),
                        ('generic', 4, 'operator', NULL, 'd', 'hd', 40);",
        );
        let store = db.open();
        let rows: Vec<_> = store
            .list_cluster_templates()
            .unwrap()
            .into_iter()
            .map(|r| {
                let id = (r.cluster.0, r.name, r.state, r.version);
                (id, r.content_hash, r.first_seen_ms, r.updated_at_ms)
            })
            .collect();
        let approved = |c: &str, v| {
            (
                c.to_owned(),
                "generic".to_owned(),
                TemplateState::Approved,
                Some(v),
            )
        };
        assert_eq!(
            rows,
            [
                (approved("c1", 3), "hc".to_owned(), 10, 30),
                (approved("c2", 2), "hb".to_owned(), 20, 20),
            ],
            "[{}]",
            db.label
        );
    });
}

// ---------------------------------------------------------------- bounds

#[test]
fn a_template_report_over_the_per_cluster_bound_is_refused_whole() {
    with_store(|store| {
        let c1 = cid("c1");
        let t = |name| ClusterTemplate {
            name,
            osystem: None,
            content: "text",
            refusal: None,
        };
        let first = store.record_cluster_templates(&[t("a"), t("b")], &c1, 10, 3);
        assert_eq!(first.unwrap().len(), 2);
        let over = store.record_cluster_templates(&[t("c"), t("d")], &c1, 20, 3);
        assert!(matches!(over, Err(DbError::Invalid(_))), "{over:?}");
        assert_eq!(
            store.get_preseed("c").unwrap(),
            None,
            "nothing of it stored"
        );
        // Names the cluster already ships do not count again; another cluster has its own.
        let again = store.record_cluster_templates(&[t("a"), t("c")], &c1, 30, 3);
        assert_eq!(again.unwrap().len(), 2);
        let other = store.record_cluster_templates(&[t("x"), t("y")], &cid("c2"), 30, 3);
        assert_eq!(other.unwrap().len(), 2);
    });
}

#[test]
fn history_is_read_a_page_at_a_time() {
    with_store(|store| {
        let c1 = cid("c1");
        for (i, text) in ["v1", "v2", "v3", "v4", "v5"].iter().enumerate() {
            store
                .record_cluster_template("generic", None, text, &c1, i as i64)
                .unwrap();
        }
        let versions =
            |page: Vec<PreseedVersion>| -> Vec<i32> { page.iter().map(|v| v.version).collect() };
        let page = |after, limit| versions(store.history_page("generic", after, limit).unwrap());
        assert_eq!(page(None, 2), [1, 2]);
        assert_eq!(page(Some(2), 2), [3, 4]);
        assert_eq!(page(Some(4), 2), [5]);
        assert!(page(Some(5), 2).is_empty());
        assert!(matches!(
            store.history_page("missing", None, 2),
            Err(DbError::NotFound { .. })
        ));
    });
}

#[test]
fn removing_a_cluster_that_history_names_hides_it_and_keeps_the_history() {
    with_store(|store| {
        let c1 = cid("c1");
        store
            .insert_license_key(
                &key("windows", "win2022", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", &c1),
                100,
            )
            .unwrap();
        store.create_node(&node("n1", "amd64", "c1"), 100).unwrap();
        store.save_snapshot(&c1, &snapshot(), 100).unwrap();
        // The key and the node refer to c1: removal must not trip over them.
        assert!(store.remove_cluster(&c1).unwrap());
        assert_eq!(store.get_cluster(&c1).unwrap(), None);
        assert!(store.list_clusters().unwrap().iter().all(|c| c.id != c1));
        assert!(store.list_cluster_ids().unwrap().iter().all(|c| *c != c1));
        assert!(!store.remove_cluster(&c1).unwrap(), "already removed");
        assert!(store.save_snapshot(&c1, &snapshot(), 110).is_err());
        let keys = store.list_license_keys().unwrap();
        assert_eq!(keys[0].validated_by, c1, "history still names it");
        // The same id registering again is a new cluster: first seen now, no snapshot.
        store.upsert_cluster_seen(&c1, "back", 200).unwrap();
        let back = store.get_cluster(&c1).unwrap().expect("back");
        assert_eq!((back.first_seen_ms, back.last_seen_ms), (200, 200));
        assert_eq!(back.snapshot, None);
    });
}

#[test]
fn a_late_last_seen_write_never_brings_back_a_removed_cluster() {
    with_store(|store| {
        let c1 = cid("c1");
        store.record_cluster_last_seen(&c1, "one", 50).unwrap();
        let seen = store.get_cluster(&c1).unwrap().expect("c1");
        assert_eq!((seen.name.as_str(), seen.last_seen_ms), ("one", 50));
        store.record_cluster_last_seen(&c1, "one", 40).unwrap();
        assert_eq!(store.get_cluster(&c1).unwrap().unwrap().last_seen_ms, 50);
        assert!(store.remove_cluster(&c1).unwrap());
        // Another region's link to it closes after the removal: nothing comes back.
        store.record_cluster_last_seen(&c1, "one", 60).unwrap();
        assert_eq!(store.get_cluster(&c1).unwrap(), None);
        store
            .record_cluster_last_seen(&cid("never"), "x", 60)
            .unwrap();
        assert_eq!(store.get_cluster(&cid("never")).unwrap(), None);
    });
}

#[test]
fn exclusions_name_the_revoked_and_the_removed() {
    with_store(|store| {
        assert_eq!(store.cluster_exclusions().unwrap(), Default::default());
        assert!(store.revoke_cluster(&cid("c2"), 10).unwrap());
        assert!(store.remove_cluster(&cid("c3")).unwrap());
        let excluded = store.cluster_exclusions().unwrap();
        assert_eq!(excluded.revoked, [cid("c2")]);
        assert_eq!(excluded.removed, [cid("c3")]);
        // Enrolled again, c2 is no longer excluded.
        store.create_enrollment(&cid("c2"), "h", 1_000, 20).unwrap();
        assert!(store.cluster_exclusions().unwrap().revoked.is_empty());
    });
}
