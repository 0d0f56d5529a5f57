//! Several regions on one PostgreSQL (issue 15), as real processes: two `regiond`s and three
//! `clusterd`s, every cluster linked to both regions though each was configured with one;
//! a kill -9 of one region leaves the other answering for every cluster; a region that comes
//! back is found by the clusters through the other's region list; 100 allocations spread
//! over both regions hand out each of 10 nodes exactly once. And the SQLite guard: a second
//! region on one SQLite file refuses to start.
//!
//! The PostgreSQL tests need `OSMESH_TEST_POSTGRES_URL` (`.ci/run` sets it); without it they
//! print why they are skipped. Each uses a fresh schema, dropped at the end.

mod common;

use common::{create_token, get, read_addrs, register_token, write_secret, Daemon, ADDR_FILE_ENV};
use osmesh_store::testing::{TestDb, PG_ENV};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SECRET: &str = "multi-region-secret-0123456789abcdef";

/// The PostgreSQL server to use, or `None` after saying why the test is skipped.
fn postgres() -> Option<TestDb> {
    match std::env::var(PG_ENV) {
        Ok(url) => Some(TestDb::postgres(&url)),
        Err(_) => {
            eprintln!(
                "skipped: {PG_ENV} is unset; several regions need PostgreSQL (.ci/run sets it)"
            );
            None
        }
    }
}

/// Regions and clusters of one test, sharing one database and secret.
struct Mesh {
    dir: tempfile::TempDir,
    db_url: String,
    secret_file: PathBuf,
    token: String,
}

/// A running region: its process and where it listens.
struct Region {
    daemon: Daemon,
    rpc: String,
    api: String,
}

impl Mesh {
    fn new(db_url: &str) -> Mesh {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret_file = dir.path().join("secret");
        write_secret(&secret_file, &format!("{SECRET}\n"));
        let token = create_token(db_url, "multi-region-admin", "admin");
        Mesh {
            dir,
            db_url: db_url.to_owned(),
            secret_file,
            token,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `regiond` named `name` on port 0 and waits until it reports its addresses.
    fn start_region(&self, name: &str) -> Region {
        let addr_file = self.path(&format!("{name}.addrs"));
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = region_command(&self.db_url, &self.secret_file);
        cmd.args(["--name", name]).env(ADDR_FILE_ENV, &addr_file);
        let mut daemon = Daemon::spawn(cmd, self.path(&format!("{name}.log")));
        let mut addrs = None;
        wait_for(&format!("{name} to report its addresses"), || {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("regiond {name} exited ({status}): {}", daemon.log_text());
            }
            addrs = read_addrs(&addr_file);
            addrs.is_some()
        });
        let (rpc, http) = addrs.expect("addresses");
        let api = format!("http://{http}");
        register_token(&api, &self.token);
        Region { daemon, rpc, api }
    }

    /// Starts `clusterd` named `name` with sample tree `variant`, told only of `seed`.
    fn start_cluster(&self, name: &str, variant: usize, seed: &str) -> Daemon {
        let images = self.path(name).join("boot-resources");
        if !images.exists() {
            osmesh_cluster::sample::write_sample_tree(&images, variant).expect("sample tree");
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterd"));
        cmd.args(["--name", name, "--region", seed])
            .arg("--secret-file")
            .arg(&self.secret_file)
            .arg("--images")
            .arg(&images)
            .args(["--rescan-secs", "1"]);
        Daemon::spawn(cmd, self.path(&format!("{name}.log")))
    }
}

fn region_command(db_url: &str, secret_file: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regiond"));
    cmd.args(["--database-url", db_url])
        .args([
            "--rpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--secret-file")
        .arg(secret_file);
    // The test's directory (never the working directory) holds the RPC CA, one for every
    // region of the test: clusters trust each region they learn of by that one CA.
    if let Some(dir) = secret_file.parent() {
        cmd.arg("--state-dir").arg(dir);
    }
    cmd
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The ids of the clusters `api` lists as connected with a snapshot, sorted.
fn connected_clusters(api: &str) -> Vec<String> {
    common::reported_clusters(api)
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// `(name, state, connected_clusters)` of every region `api` lists, and the clusters it says
/// miss a live region.
fn regions_seen_by(api: &str) -> (Vec<(String, String, u64)>, Vec<String>) {
    let Ok(answer) = get(api, "/api/v1/regions") else {
        return (Vec::new(), Vec::new());
    };
    let regions = answer["regions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["state"].as_str().unwrap_or_default().to_owned(),
                r["connected_clusters"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let partial = answer["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["missing"].as_array().is_some_and(|m| !m.is_empty()))
        .filter_map(|c| c["cluster"].as_str().map(str::to_owned))
        .collect();
    (regions, partial)
}

fn live_answering(api: &str) -> Option<Vec<String>> {
    let answer = get(api, "/api/v1/osystems?live=true&timeout_ms=5000").ok()?;
    assert_eq!(answer["source"], "live", "{answer}");
    let mut answering: Vec<String> = answer["clusters"]
        .as_array()?
        .iter()
        .filter(|c| c["no_answer"].is_null() && c["connected"] == true)
        .filter_map(|c| c["cluster"].as_str().map(str::to_owned))
        .collect();
    answering.sort();
    Some(answering)
}

/// The value of an unlabelled gauge in `api`'s `/metrics`.
fn gauge(api: &str, token: &str, name: &str) -> Option<f64> {
    let text = ureq::get(&format!("{api}/metrics"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

fn three() -> Vec<String> {
    vec!["c1".to_owned(), "c2".to_owned(), "c3".to_owned()]
}

#[test]
fn clusters_link_to_every_region_and_survive_a_kill_9_of_one() {
    let Some(db) = postgres() else { return };
    let mesh = Mesh::new(&db.url);
    let mut r1 = mesh.start_region("r1");
    let r2 = mesh.start_region("r2");
    // Each cluster is told of one region only; the region list brings the other.
    let _c1 = mesh.start_cluster("c1", 0, &r1.rpc);
    let _c2 = mesh.start_cluster("c2", 1, &r1.rpc);
    let _c3 = mesh.start_cluster("c3", 2, &r2.rpc);

    for region in [&r1, &r2] {
        wait_for(
            &format!("{} to list all three clusters connected", region.api),
            || connected_clusters(&region.api) == three(),
        );
    }
    // The registry shows both regions up, each with three clusters, and no cluster partly
    // linked (the heartbeat carries the other region's count within a few seconds).
    wait_for("both regions up with three clusters each", || {
        regions_seen_by(&r1.api)
            == (
                vec![("r1".into(), "up".into(), 3), ("r2".into(), "up".into(), 3)],
                vec![],
            )
    });
    let cli = Command::new(env!("CARGO_BIN_EXE_osmesh"))
        .args(["regions", "--api", &r2.api])
        .env("OSMESH_TOKEN", &mesh.token)
        .output()
        .expect("run osmesh regions");
    let table = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        table.contains("every cluster is linked to every live region"),
        "{table}"
    );

    // kill -9 r1: r2's live read still has every cluster answering.
    r1.daemon.kill();
    assert_eq!(live_answering(&r2.api), Some(three()));
    wait_for("r2 to show r1 down", || {
        regions_seen_by(&r2.api).0
            == vec![
                ("r1".into(), "down".into(), 0),
                ("r2".into(), "up".into(), 3),
            ]
    });

    wait_for("r2's metrics to count one region down", || {
        gauge(&r2.api, &mesh.token, "osmesh_regions_down") == Some(1.0)
    });
    assert_eq!(gauge(&r2.api, &mesh.token, "osmesh_regions_up"), Some(1.0));

    // r1 returns on another port: the clusters learn it from r2's region list.
    let r1 = mesh.start_region("r1");
    wait_for(
        "the returned r1 to list all three clusters connected",
        || connected_clusters(&r1.api) == three(),
    );
    assert_eq!(live_answering(&r1.api), Some(three()));
}

#[test]
fn allocation_across_two_regions_hands_out_each_node_once() {
    let Some(db) = postgres() else { return };
    let mesh = Mesh::new(&db.url);
    let r1 = mesh.start_region("r1");
    let r2 = mesh.start_region("r2");
    let _c1 = mesh.start_cluster("c1", 0, &r1.rpc);
    for region in [&r1, &r2] {
        wait_for("c1 linked to both regions", || {
            connected_clusters(&region.api) == ["c1"]
        });
    }
    for n in 0..10 {
        let node = json!({"hostname": format!("n{n}"), "cluster": "c1", "arch": "amd64"});
        let (status, body) = post(&r1.api, &mesh.token, "/api/v1/nodes", &node);
        assert_eq!(status, 201, "{body}");
    }
    let apis = [r1.api.clone(), r2.api.clone()];
    let outcomes: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let api = &apis[i % 2];
                let token = &mesh.token;
                s.spawn(move || {
                    let request =
                        json!({"osystem": "ubuntu", "distro_series": "jammy", "arch": "amd64"});
                    post(api, token, "/api/v1/nodes/allocate", &request)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    });
    let won: Vec<i64> = outcomes
        .iter()
        .filter(|(status, _)| *status == 200)
        .filter_map(|(_, node)| node["id"].as_i64())
        .collect();
    let refused: Vec<&Value> = outcomes
        .iter()
        .filter(|(status, _)| *status == 409)
        .map(|(_, body)| body)
        .collect();
    let distinct: BTreeSet<i64> = won.iter().copied().collect();
    assert_eq!((won.len(), distinct.len()), (10, 10), "{outcomes:?}");
    assert_eq!(refused.len(), 90, "{outcomes:?}");
    assert!(
        refused.iter().all(|b| b["code"] == "no_free_node"),
        "{refused:?}"
    );
    // Both regions answered some of the winners and some of the refusals' regions alike: every
    // node is allocated once, whichever region is asked.
    for api in &apis {
        let nodes = get(api, "/api/v1/nodes").expect("nodes");
        let allocated = nodes
            .as_array()
            .expect("a list")
            .iter()
            .filter(|n| n["status"] == "allocated")
            .count();
        assert_eq!(allocated, 10, "{nodes}");
    }
}

fn post(api: &str, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let request = ureq::post(&format!("{api}{path}"))
        .set("Authorization", &format!("Bearer {token}"))
        .timeout(Duration::from_secs(30));
    match request.send_json(body.clone()) {
        Ok(response) => (response.status(), response.into_json().unwrap_or_default()),
        Err(ureq::Error::Status(code, response)) => {
            (code, response.into_json().unwrap_or_default())
        }
        Err(err) => panic!("POST {path}: {err}"),
    }
}

#[test]
fn a_second_region_on_one_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("secret");
    write_secret(&secret_file, &format!("{SECRET}\n"));
    let db_url = format!("sqlite://{}", dir.path().join("region.db").display());
    let addr_file = dir.path().join("first.addrs");
    let mut cmd = region_command(&db_url, &secret_file);
    cmd.env(ADDR_FILE_ENV, &addr_file);
    let mut first = Daemon::spawn(cmd, dir.path().join("first.log"));
    wait_for("the first region to listen", || {
        read_addrs(&addr_file).is_some()
    });

    let second = common::output_within(
        &mut region_command(&db_url, &secret_file),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "the second region started: {stderr}"
    );
    assert!(stderr.contains("SQLite is single-region"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())),
        "{stderr}"
    );
    assert!(
        first.child.try_wait().expect("first region").is_none(),
        "the refused start must not disturb the running region"
    );

    // The lock dies with its holder: after a kill -9 the next region starts.
    first.kill();
    let addr_file = dir.path().join("next.addrs");
    let mut cmd = region_command(&db_url, &secret_file);
    cmd.env(ADDR_FILE_ENV, &addr_file);
    let mut next = Daemon::spawn(cmd, dir.path().join("next.log"));
    wait_for("a region to start after the holder died", || {
        if let Ok(Some(status)) = next.child.try_wait() {
            panic!("regiond exited ({status}): {}", next.log_text());
        }
        read_addrs(&addr_file).is_some()
    });
}

/// SIGTERM, then waits for the process to exit (a clean stop: it leaves the registry).
fn stop(region: &mut Region) {
    let pid = region.daemon.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid}");
    wait_for("regiond to stop on SIGTERM", || {
        region.daemon.child.try_wait().expect("wait").is_some()
    });
}

#[test]
fn a_rolling_restart_never_leaves_the_mesh_without_a_region() {
    let Some(db) = postgres() else { return };
    let mesh = Mesh::new(&db.url);
    let mut regions = [mesh.start_region("r1"), mesh.start_region("r2")];
    let _c1 = mesh.start_cluster("c1", 0, &regions[0].rpc);
    let _c2 = mesh.start_cluster("c2", 1, &regions[1].rpc);
    let both = vec!["c1".to_owned(), "c2".to_owned()];
    for region in &regions {
        wait_for("both clusters on both regions", || {
            connected_clusters(&region.api) == both
        });
    }
    for (restarting, name) in [(0, "r1"), (1, "r2")] {
        let other = 1 - restarting;
        stop(&mut regions[restarting]);
        // The other region serves every cluster at once, and lists only itself: the stopped
        // region deleted its row.
        assert_eq!(live_answering(&regions[other].api), Some(both.clone()));
        let (seen, partial) = regions_seen_by(&regions[other].api);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(partial.is_empty(), "{partial:?}");
        // Back on a new port: the clusters learn it from the other region's list.
        regions[restarting] = mesh.start_region(name);
        wait_for(&format!("both clusters on the restarted {name}"), || {
            connected_clusters(&regions[restarting].api) == both
        });
    }
    assert_eq!(live_answering(&regions[0].api), Some(both.clone()));
    assert_eq!(live_answering(&regions[1].api), Some(both));
}

/// The `connected` flag `api` lists for cluster `id`, if it lists it.
fn listed_connected(api: &str, id: &str) -> Option<bool> {
    let clusters = get(api, "/api/v1/clusters").ok()?;
    clusters
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["connected"] == true)
}

#[test]
fn a_revocation_through_one_region_cuts_the_cluster_off_every_region() {
    let Some(db) = postgres() else { return };
    let mesh = Mesh::new(&db.url);
    let r1 = mesh.start_region("r1");
    let r2 = mesh.start_region("r2");
    let _c1 = mesh.start_cluster("c1", 0, &r1.rpc);
    let _c2 = mesh.start_cluster("c2", 1, &r1.rpc);
    for region in [&r1, &r2] {
        wait_for(&format!("{} to list both clusters", region.api), || {
            connected_clusters(&region.api) == ["c1", "c2"]
        });
    }
    let (status, body) = post(
        &r1.api,
        &mesh.token,
        "/api/v1/clusters/c1/revoke",
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    // r1 cut it at once; r2 reads the revocation at its next heartbeat (5 s) and cuts its own
    // link; the cluster's redials are refused by both.
    wait_for("c1 cut off r2 too", || {
        listed_connected(&r2.api, "c1") == Some(false)
    });
    assert_eq!(listed_connected(&r1.api, "c1"), Some(false));
    std::thread::sleep(Duration::from_secs(6));
    for region in [&r1, &r2] {
        assert_eq!(
            listed_connected(&region.api, "c1"),
            Some(false),
            "{}",
            region.api
        );
        assert_eq!(
            listed_connected(&region.api, "c2"),
            Some(true),
            "{}",
            region.api
        );
    }
}
