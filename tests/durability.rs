//! Durability of acknowledged writes: `regiond` is killed with SIGKILL right after it
//! acknowledged license keys, preseed edits, settings and node changes, started again on the
//! same SQLite file, and every acknowledged write must be there.

mod common;

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const WINDOWS_KEY: &str = "ABCDE-12345-FGHIJ-67890-KLMNO";

/// The admin token every call sends.
static TOKEN: OnceLock<String> = OnceLock::new();

/// A child process killed (SIGKILL) when dropped, so a failing test leaves nothing behind.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_region(dir: &Path, rpc: u16, http: u16) -> Daemon {
    let child = Command::new(env!("CARGO_BIN_EXE_regiond"))
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("region.db").display()))
        .args(["--rpc-listen", &format!("127.0.0.1:{rpc}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .arg("--secret-file")
        .arg(dir.join("secret"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn regiond");
    Daemon(child)
}

fn start_cluster(dir: &Path, rpc: u16) -> Daemon {
    let child = Command::new(env!("CARGO_BIN_EXE_clusterd"))
        .args(["--name", "c1"])
        .args(["--region", &format!("127.0.0.1:{rpc}")])
        .arg("--secret-file")
        .arg(dir.join("secret"))
        .arg("--images")
        .arg(dir.join("images"))
        .arg("--preseeds")
        .arg(dir.join("preseeds"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn clusterd");
    Daemon(child)
}

/// Sends a request; the status and the JSON body (`null` when empty), or `None` if the
/// region cannot be reached.
fn call(http: u16, method: &str, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
    let mut request = ureq::request(method, &format!("http://127.0.0.1:{http}{path}"))
        .timeout(Duration::from_secs(10));
    if let Some(token) = TOKEN.get() {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(_) => return None,
    };
    let status = response.status();
    let text = response.into_string().ok()?;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).ok()?
    };
    Some((status, value))
}

fn ok(http: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, value) = call(http, method, path, body).expect("the region answers");
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {value}"
    );
    value
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cluster_ready(http: u16) -> bool {
    let Some((200, clusters)) = call(http, "GET", "/api/v1/clusters", None) else {
        return false;
    };
    let Some((200, preseeds)) = call(http, "GET", "/api/v1/preseeds", None) else {
        return false;
    };
    let reported = clusters.as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["connected"] == true && !c["snapshot_age_ms"].is_null())
    });
    reported && preseeds.as_array().is_some_and(|ps| ps.len() >= 2)
}

#[test]
fn acknowledged_writes_survive_a_kill_9_of_regiond() {
    let dir = tempfile::tempdir().expect("temp dir");
    common::write_secret(
        &dir.path().join("secret"),
        "durability-test-secret-0123456789abcdef\n",
    );
    let db_url = format!("sqlite://{}", dir.path().join("region.db").display());
    let _ = TOKEN.set(common::create_token(&db_url, "durability", "admin"));
    osmesh_cluster::sample::write_sample_tree(&dir.path().join("images"), 1).unwrap();
    osmesh_cluster::sample::write_sample_templates(&dir.path().join("preseeds"), 1).unwrap();

    let (rpc, http) = (free_port(), free_port());
    let mut region = start_region(dir.path(), rpc, http);
    let _cluster = start_cluster(dir.path(), rpc);
    wait_for("the cluster to connect and report", || cluster_ready(http));

    let key = json!({"osystem": "windows", "distro_series": "win2019", "license_key": WINDOWS_KEY});
    ok(http, "POST", "/api/v1/license-keys", Some(key));
    let settings = json!({"default_osystem": "ubuntu", "default_distro_series": "jammy"});
    ok(http, "PUT", "/api/v1/settings", Some(settings.clone()));
    let node = json!({"hostname": "w1", "cluster": "c1", "arch": "amd64"});
    ok(http, "POST", "/api/v1/nodes", Some(node));
    let alloc = json!({"osystem": "windows", "distro_series": "win2019", "arch": "amd64"});
    let allocated = ok(http, "POST", "/api/v1/nodes/allocate", Some(alloc));
    let mut edits = Vec::new();
    for n in 0..5 {
        let current = ok(http, "GET", "/api/v1/preseeds/generic", None)["current"]["version"]
            .as_i64()
            .unwrap();
        let content = format!("operator edit {n} for {{{{ hostname }}}}\n");
        let edit = json!({"content": content, "based_on_version": current});
        let answer = ok(http, "PUT", "/api/v1/preseeds/generic", Some(edit));
        edits.push((answer["current"]["version"].as_i64().unwrap(), content));
    }
    // Killed at once after the last acknowledgement: no shutdown, no flush.
    region.0.kill().expect("kill -9 regiond");
    region.0.wait().unwrap();

    let http = free_port();
    let _region = start_region(dir.path(), free_port(), http);
    wait_for("regiond to restart", || {
        call(http, "GET", "/api/v1/settings", None).is_some()
    });

    let keys = ok(http, "GET", "/api/v1/license-keys", None);
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
    assert_eq!(keys[0]["license_key"], "*****-*****-*****-*****-KLMNO");
    assert_eq!(keys[0]["validated_by"], "c1");
    let stored = ok(http, "GET", "/api/v1/settings", None);
    assert_eq!(stored["default_osystem"], settings["default_osystem"]);
    assert_eq!(
        stored["default_distro_series"],
        settings["default_distro_series"]
    );
    let node = ok(
        http,
        "GET",
        &format!("/api/v1/nodes/{}", allocated["id"]),
        None,
    );
    assert_eq!(
        (node["status"].as_str(), node["osystem"].as_str()),
        (Some("allocated"), Some("windows"))
    );
    let history = ok(http, "GET", "/api/v1/preseeds/generic/history", None);
    let versions = history.as_array().unwrap();
    assert_eq!(versions.len(), 1 + edits.len(), "{history}");
    for (version, content) in &edits {
        let found = versions
            .iter()
            .find(|v| v["version"].as_i64() == Some(*version));
        assert_eq!(
            found.map(|v| v["content"].clone()),
            Some(json!(content)),
            "version {version}"
        );
    }
    let current = ok(http, "GET", "/api/v1/preseeds/generic", None);
    assert_eq!(
        current["current"]["version"].as_i64(),
        edits.last().map(|(v, _)| *v)
    );
}
