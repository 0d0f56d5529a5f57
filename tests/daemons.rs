//! End to end: real `regiond` and `clusterd` processes on loopback TCP, a real SQLite file.

mod common;

use common::{get, get_status, output_within, reported_clusters, Site};
use serde_json::Value;
use std::time::{Duration, Instant};

const ALL: [&str; 3] = ["cluster-a", "cluster-b", "cluster-c"];

fn parts(answer: &Value) -> Vec<(String, bool, Value)> {
    answer["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .map(|p| {
            (
                p["cluster"].as_str().unwrap_or_default().to_string(),
                p["connected"] == true,
                p["no_answer"].clone(),
            )
        })
        .collect()
}

fn not_answered(answer: &Value) -> Vec<String> {
    answer["view"]["not_answered"]
        .as_object()
        .expect("not_answered")
        .keys()
        .cloned()
        .collect()
}

fn jammy_amd64(answer: &Value) -> Vec<String> {
    jammy_arch(answer, "amd64")
}

fn jammy_arch(answer: &Value, arch: &str) -> Vec<String> {
    let ubuntu = answer["view"]["osystems"]
        .as_array()
        .expect("osystems")
        .iter()
        .find(|os| os["name"] == "ubuntu")
        .expect("ubuntu");
    let jammy = ubuntu["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .find(|r| r["name"] == "jammy")
        .expect("jammy");
    jammy["available"][arch]
        .as_object()
        .map(|clusters| clusters.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn region_survives_cluster_and_region_restarts_and_names_the_silent() {
    let site = Site::new();
    let mut region = site.start_region();
    let api = site.api();
    let mut clusters: Vec<_> = ALL
        .iter()
        .enumerate()
        .map(|(variant, name)| site.start_cluster(name, variant))
        .collect();
    site.wait_for("three clusters to report", Duration::from_secs(30), || {
        reported_clusters(&api) == ALL
    });

    // Both read paths see the divergent image sets of all three clusters.
    let cached = get(&api, "/api/v1/osystems").expect("cached");
    assert_eq!(cached["source"], "cached");
    assert_eq!(jammy_amd64(&cached), ["cluster-a", "cluster-b"]);
    // A deadline no loaded machine misses: the answer comes as soon as all three answer.
    let live = get(&api, "/api/v1/osystems?live=true&timeout_ms=30000").expect("live");
    assert_eq!(live["source"], "live");
    assert!(not_answered(&live).is_empty());
    assert_eq!(live["view"], cached["view"]);

    // A new image on cluster-a is pushed by its next rescan and shows in the cached view.
    let new_image = site.path("cluster-a/boot-resources/ubuntu/arm64/generic/jammy/stable");
    std::fs::create_dir_all(&new_image).expect("image dir");
    for file in ["boot-kernel", "boot-initrd"] {
        std::fs::write(new_image.join(file), b"").expect("image file");
    }
    site.wait_for("the pushed image set", Duration::from_secs(30), || {
        let cached = get(&api, "/api/v1/osystems").expect("cached");
        jammy_arch(&cached, "arm64") == ["cluster-a", "cluster-b"]
    });

    // SIGKILL one cluster: the live read names it, by its deadline; the cache still answers.
    clusters[1].kill();
    let deadline_ms = 1500;
    let asked = Instant::now();
    let live = get(
        &api,
        &format!("/api/v1/osystems?live=true&timeout_ms={deadline_ms}"),
    )
    .expect("live");
    let took = asked.elapsed();
    assert_eq!(not_answered(&live), ["cluster-b"]);
    // That the answer never comes after its deadline is checked on virtual time (the
    // simulator); on real time on a shared machine, only that it comes, not forever later.
    let elapsed = live["elapsed_ms"].as_u64().expect("elapsed");
    assert!(elapsed <= deadline_ms + 10_000, "elapsed {elapsed} ms");
    assert!(
        took < Duration::from_millis(deadline_ms + 20_000),
        "live read took {took:?}"
    );
    let cached = get(&api, "/api/v1/osystems").expect("cached");
    let b = parts(&cached)
        .into_iter()
        .find(|p| p.0 == "cluster-b")
        .expect("b is named");
    assert!(!b.1, "cluster-b still shown connected");
    let b_part = cached["clusters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["cluster"] == "cluster-b"))
        .expect("b part");
    assert!(
        b_part["age_ms"].as_i64().is_some(),
        "the cached part of b has no age"
    );
    // b's images are kept, but only as last known: never available while it is gone.
    assert_eq!(
        jammy_amd64(&cached),
        ["cluster-a"],
        "available only on connected clusters"
    );
    let ubuntu = cached["view"]["osystems"]
        .as_array()
        .and_then(|oses| oses.iter().find(|os| os["name"] == "ubuntu"))
        .expect("ubuntu");
    let jammy = ubuntu["releases"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == "jammy"))
        .expect("jammy");
    assert!(
        jammy["last_known"]["amd64"]["cluster-b"].is_array(),
        "last-reported images kept as last known: {jammy}"
    );
    assert!(b_part["disconnected_since_ms"].is_i64(), "{b_part}");

    // Restart it: it rejoins.
    clusters[1] = site.start_cluster("cluster-b", 1);
    site.wait_for("cluster-b to rejoin", Duration::from_secs(30), || {
        reported_clusters(&api) == ALL
    });

    // Restart the region on the same database: it remembers every cluster at once, and
    // they all reconnect.
    region.kill();
    region = site.start_region();
    let known = get(&api, "/api/v1/clusters").expect("clusters");
    let ids: Vec<_> = known
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, ALL, "the restarted region forgot clusters");
    site.wait_for("all clusters to reconnect", Duration::from_secs(40), || {
        reported_clusters(&api) == ALL
    });
    let live = get(&api, "/api/v1/osystems?live=true&timeout_ms=30000").expect("live");
    assert!(not_answered(&live).is_empty());
    drop(region);
}

#[test]
fn a_cluster_with_the_wrong_secret_is_refused_and_never_connected() {
    let site = Site::new();
    let region = site.start_region();
    let api = site.api();
    let good = site.start_cluster("cluster-a", 0);
    let wrong = site.path("wrong-secret");
    common::write_secret(&wrong, "not-the-secret-but-just-as-long-0123");
    let intruder = site.start_cluster_with_secret("intruder", 1, &wrong);
    site.wait_for("the good cluster", Duration::from_secs(30), || {
        reported_clusters(&api) == ["cluster-a"]
    });
    site.wait_for("the refusal to be logged", Duration::from_secs(30), || {
        region.log_text().contains("handshake refused")
    });
    let clusters = get(&api, "/api/v1/clusters").expect("clusters");
    let ids: Vec<_> = clusters
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["cluster-a"],
        "the intruder appears in the cluster list"
    );
    let log = region.log_text();
    assert!(!log.contains("not-the-secret") && !log.contains("e2e-shared-secret"));
    site.wait_for(
        "the intruder to log its refusal",
        Duration::from_secs(30),
        || intruder.log_text().contains("cannot reach the region"),
    );
    drop(good);
}

#[test]
fn bad_requests_get_json_4xx_never_500() {
    let site = Site::new();
    let _region = site.start_region();
    let api = site.api();
    let _cluster = site.start_cluster("cluster-a", 0);
    site.wait_for("the cluster", Duration::from_secs(30), || {
        reported_clusters(&api) == ["cluster-a"]
    });
    let cases = [
        (
            "/api/v1/osystems/nosuchos/releases/x",
            404,
            "no_such_osystem",
        ),
        (
            "/api/v1/osystems/ubuntu/releases/warty",
            404,
            "no_such_release",
        ),
        ("/api/v1/osystems?live=maybe", 400, "bad_query"),
        ("/api/v1/osystems?live=true&timeout_ms=-5", 400, "bad_query"),
        (
            "/api/v1/osystems?live=true&timeout_ms=0",
            400,
            "bad_timeout",
        ),
        (
            "/api/v1/osystems?live=true&timeout_ms=999999999",
            400,
            "bad_timeout",
        ),
        ("/api/v1/osystems?timeout_ms=10", 400, "bad_query"),
        ("/api/v1/osystems?surprise=1", 400, "bad_query"),
        ("/api/v1/nowhere", 404, "no_such_route"),
    ];
    for (path, status, code) in cases {
        let (got, body) = get_status(&api, path);
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{path}"
        );
    }
    let (status, release) = get_status(&api, "/api/v1/osystems/ubuntu/releases/jammy");
    assert_eq!(status, 200);
    assert!(
        release["title"]
            .as_str()
            .is_some_and(|t| t.contains("22.04")),
        "{release}"
    );
}

#[test]
fn clusterd_refuses_bad_configuration_with_a_clear_error() {
    let site = Site::new();
    let bad_toml = site.path("bad.toml");
    std::fs::write(&bad_toml, "[[os]]\nname = \"\"\ntitle = \"x\"\n").expect("toml");
    let images = site.path("images");
    std::fs::create_dir_all(&images).expect("images");
    let cases: [(&str, Vec<String>, &str); 3] = [
        (
            "missing image directory",
            vec!["--images".into(), site.path("nope").display().to_string()],
            "does not exist",
        ),
        (
            "unreadable secret",
            vec![
                "--images".into(),
                images.display().to_string(),
                "--secret-file".into(),
                site.path("no-secret").display().to_string(),
            ],
            "secret file",
        ),
        (
            "bad declared-OS TOML",
            vec![
                "--images".into(),
                images.display().to_string(),
                "--declared-os".into(),
                bad_toml.display().to_string(),
            ],
            "bad.toml:2",
        ),
    ];
    for (what, args, expected) in cases {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clusterd"));
        // Refused before it dials: any address will do.
        cmd.args(["--name", "c", "--region", "127.0.0.1:1"]);
        if !args.iter().any(|a| a == "--secret-file") {
            cmd.arg("--secret-file").arg(&site.secret_file);
        }
        let out = output_within(cmd.args(&args), Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: clusterd started");
        assert!(stderr.contains(expected), "{what}: {stderr}");
    }
}

#[test]
fn regiond_refuses_a_bad_config_file_naming_it() {
    let site = Site::new();
    let config = site.path("region.toml");
    std::fs::write(&config, "rpc_listen = \"127.0.0.1:1\"\nsurprise = true\n").expect("config");
    let out = output_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_regiond"))
            .arg("--config")
            .arg(&config)
            .arg("--secret-file")
            .arg(&site.secret_file),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("region.toml") && stderr.contains("surprise"),
        "{stderr}"
    );
}
