//! Cluster identity against real processes (issue 13): `regiond` with enrolled certificates
//! only, `clusterd` enrolling with a one-time token, and links made here with a cluster's
//! saved credentials to play the forger, the duplicate and the link that never registers.

mod common;

use common::{authorize, get, get_status, output_within, reported_clusters, send_status, Site};
use osmesh_cluster::credentials::{self, CredentialFiles};
use osmesh_core::ClusterId;
use osmesh_net::handshake::{dial_handshake, HandshakeConfig, HandshakeError};
use osmesh_net::messages::{Register, Registered};
use osmesh_net::peer::{spawn_peer, Peer, PeerConfig};
use osmesh_net::tls::{cluster_client_config, RegionTrust, TlsDialer};
use osmesh_net::{Dialer, ErrorKind, DEFAULT_MAX_FRAME};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const CALL: Duration = Duration::from_secs(10);

/// A one-time enrollment token for `name`, from the API (admin).
fn enroll(site: &Site, name: &str) -> String {
    let (status, body) = send_status(
        &site.api(),
        "POST",
        &format!("/api/v1/clusters/{name}/enroll"),
    );
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("a token").to_owned()
}

fn connected(site: &Site, name: &str) -> Option<bool> {
    let clusters = get(&site.api(), "/api/v1/clusters").ok()?;
    clusters
        .as_array()?
        .iter()
        .find(|c| c["id"] == name)
        .map(|c| c["connected"] == true)
}

fn listed(site: &Site) -> Vec<String> {
    get(&site.api(), "/api/v1/clusters")
        .expect("clusters")
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect()
}

/// Starts an enrolled `name` and waits until it has reported.
fn enrolled_cluster(site: &Site, name: &str, variant: usize) -> common::Daemon {
    let token = enroll(site, name);
    let cluster = site.start_enrolled_cluster(name, variant, Some(&token));
    site.wait_for(&format!("{name} to report"), WAIT, || {
        reported_clusters(&site.api()).contains(&name.to_string())
    });
    cluster
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A TLS link presenting the credentials saved in `site/<holder>/state`, claiming `claimed`.
async fn link_as(site: &Site, holder: &str, claimed: &str) -> Result<Peer, HandshakeError> {
    let files = CredentialFiles::in_dir(&site.path(holder).join("state"));
    let (ca, chain, key) = credentials::load(&files, holder).expect("saved credentials");
    let tls = cluster_client_config(RegionTrust::Ca(ca), Some((chain, key))).expect("TLS");
    let conn = TlsDialer::new(tls, DEFAULT_MAX_FRAME)
        .dial(&site.rpc())
        .await?;
    let auth = dial_handshake(conn, &HandshakeConfig::certificates(claimed), [5; 32]).await?;
    let (peer, _incoming) = spawn_peer(auth, PeerConfig::default());
    Ok(peer)
}

async fn register(peer: &Peer, id: &str) -> Result<Registered, osmesh_net::RpcError> {
    let req = Register {
        cluster: ClusterId::new(id),
        name: id.into(),
        capabilities: vec![],
    };
    peer.call_typed(&req, CALL).await
}

#[test]
fn an_enrolled_cluster_joins_and_keeps_its_key_private() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    let _region = site.start_region_enrolled_only();
    let _a = enrolled_cluster(&site, "cluster-a", 0);
    let files = CredentialFiles::in_dir(&site.path("cluster-a").join("state"));
    for file in [&files.key, &files.cert, &files.ca] {
        let mode = std::fs::metadata(file).expect("saved").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
    // The token was one-time: a second cluster presenting it is refused.
    let token = std::fs::read_to_string(site.path("cluster-a").join("enroll-token")).unwrap();
    let mut again = site.start_enrolled_cluster("cluster-a2", 1, Some(&token));
    let status = again.child.wait().expect("clusterd exits");
    assert!(!status.success());
    assert!(
        again.log_text().contains("enrollment"),
        "{}",
        again.log_text()
    );
}

#[test]
fn a_forged_identity_is_refused() {
    let site = Site::new();
    let _region = site.start_region_enrolled_only();
    let _a = enrolled_cluster(&site, "cluster-a", 0);
    let _b = enrolled_cluster(&site, "cluster-b", 1);
    runtime().block_on(async {
        // cluster-a's certificate, claiming to be cluster-b: refused in the handshake.
        let err = link_as(&site, "cluster-a", "cluster-b").await.unwrap_err();
        assert!(err.to_string().contains("certificate names"), "{err}");
        // cluster-a's certificate, claiming cluster-a, registering as cluster-b: refused.
        let peer = link_as(&site, "cluster-a", "cluster-a")
            .await
            .expect("link");
        let err = register(&peer, "cluster-b").await.unwrap_err();
        assert!(err.message.contains("registering as"), "{}", err.message);
    });
    // The shared secret is not accepted unless compatibility mode is on.
    let mut rogue = site.start_cluster("cluster-c", 2);
    site.wait_for("the secret holder to be refused", WAIT, || {
        rogue.log_text().contains("compatibility mode")
    });
    rogue.kill();
    assert_eq!(listed(&site), ["cluster-a", "cluster-b"]);
    assert_eq!(connected(&site, "cluster-b"), Some(true));
}

#[test]
fn a_revoked_cluster_is_cut_off_at_once_and_refused_on_redial() {
    let site = Site::new();
    let _region = site.start_region_enrolled_only();
    let a = enrolled_cluster(&site, "cluster-a", 0);
    let (status, body) = send_status(&site.api(), "POST", "/api/v1/clusters/cluster-a/revoke");
    assert_eq!(
        (status, body["link_closed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    site.wait_for("the link to be gone", Duration::from_secs(5), || {
        connected(&site, "cluster-a") == Some(false)
    });
    // clusterd keeps redialing with its backoff; every attempt is refused as revoked.
    site.wait_for("a redial to be refused", WAIT, || {
        a.log_text().contains("is revoked")
    });
    assert_eq!(connected(&site, "cluster-a"), Some(false));
}

#[test]
fn a_handshake_without_register_leaves_no_cluster() {
    let site = Site::new();
    let _region = site.start_region_enrolled_only();
    let mut a = enrolled_cluster(&site, "cluster-a", 0);
    a.kill();
    site.wait_for("cluster-a to disconnect", WAIT, || {
        connected(&site, "cluster-a") == Some(false)
    });
    let (status, _) = send_status(&site.api(), "DELETE", "/api/v1/clusters/cluster-a");
    assert_eq!(status, 200);
    runtime().block_on(async {
        // Authenticated with a valid certificate, but never registering.
        let token = enroll(&site, "cluster-a");
        let files = CredentialFiles::in_dir(&site.path("cluster-a").join("state"));
        for file in [&files.key, &files.cert, &files.ca] {
            std::fs::remove_file(file).expect("old credentials");
        }
        let token = credentials::Token::parse(&token).expect("token");
        credentials::enroll("cluster-a", &[site.rpc()], &token, &files)
            .await
            .expect("enrolled");
        let peer = link_as(&site, "cluster-a", "cluster-a")
            .await
            .expect("link");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(listed(&site).is_empty(), "{:?}", listed(&site));
        peer.close();
        peer.closed().await;
    });
    assert!(listed(&site).is_empty());
}

#[test]
fn a_duplicate_identity_does_not_flap() {
    let site = Site::new();
    let _region = site.start_region_enrolled_only();
    let a = enrolled_cluster(&site, "cluster-a", 0);
    let before = get(&site.api(), "/api/v1/clusters").expect("clusters");
    runtime().block_on(async {
        for _ in 0..20 {
            let peer = link_as(&site, "cluster-a", "cluster-a")
                .await
                .expect("link");
            let err = register(&peer, "cluster-a").await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Unavailable, "{}", err.message);
            assert!(err.message.contains("already connected"), "{}", err.message);
            peer.closed().await;
        }
    });
    assert_eq!(connected(&site, "cluster-a"), Some(true));
    assert!(
        !a.log_text().contains("lost the region"),
        "{}",
        a.log_text()
    );
    let after = get(&site.api(), "/api/v1/clusters").expect("clusters");
    assert_eq!(before[0]["connected"], after[0]["connected"]);
}

#[test]
fn a_cluster_holding_a_wrong_ca_fingerprint_refuses_the_region() {
    let site = Site::new();
    let _region = site.start_region_enrolled_only();
    let token = enroll(&site, "cluster-a");
    let mut parts: Vec<&str> = token.split('.').collect();
    let wrong = "0".repeat(64);
    parts[1] = &wrong;
    let tampered = parts.join(".");
    let mut a = site.start_enrolled_cluster("cluster-a", 0, Some(&tampered));
    let status = a.child.wait().expect("clusterd exits");
    assert!(!status.success());
    let log = a.log_text();
    assert!(log.contains("pinned fingerprint"), "{log}");
    assert!(!log.contains(parts[2]), "the token's secret leaked: {log}");
    assert!(listed(&site).is_empty());
    // The genuine token was never presented: it still enrolls.
    let _a = site.start_enrolled_cluster("cluster-a", 0, Some(&token));
    site.wait_for("cluster-a to report", WAIT, || {
        reported_clusters(&site.api()) == ["cluster-a"]
    });
}

#[test]
fn remove_deletes_a_disconnected_cluster_and_refuses_a_connected_one() {
    let site = Site::new();
    let mut region = site.start_region_enrolled_only();
    let mut a = enrolled_cluster(&site, "cluster-a", 0);
    let (status, body) = send_status(&site.api(), "DELETE", "/api/v1/clusters/cluster-a");
    assert_eq!(status, 409, "{body}");
    a.kill();
    site.wait_for("cluster-a to disconnect", WAIT, || {
        connected(&site, "cluster-a") == Some(false)
    });
    let (status, body) = send_status(&site.api(), "DELETE", "/api/v1/clusters/cluster-a");
    assert_eq!(status, 200, "{body}");
    assert!(listed(&site).is_empty());
    region.kill();
    let _region = site.start_region_enrolled_only();
    assert!(
        listed(&site).is_empty(),
        "the removal did not last a restart"
    );
    let (status, _) = send_status(&site.api(), "DELETE", "/api/v1/clusters/cluster-a");
    assert_eq!(status, 404);
}

#[test]
fn enrollment_keeps_trying_while_the_region_is_unreachable() {
    let site = Site::new();
    let mut region = site.start_region_enrolled_only();
    let token = enroll(&site, "cluster-a");
    region.kill();
    // Installed before its region is back: it waits and retries rather than exiting.
    let mut a = site.start_enrolled_cluster("cluster-a", 0, Some(&token));
    site.wait_for("a second enrollment retry to be logged", WAIT, || {
        a.log_text().matches("retrying in").count() >= 2
    });
    assert!(
        a.child.try_wait().expect("status").is_none(),
        "{}",
        a.log_text()
    );
    assert!(!a.log_text().contains(token.split('.').nth(2).unwrap()));
    let _region = site.start_region_enrolled_only();
    site.wait_for("cluster-a to enroll and report", WAIT, || {
        reported_clusters(&site.api()) == ["cluster-a"]
    });
}

/// Writes `templates` (file name, text) into `<site>/<name>/preseeds`, for `--preseeds`.
fn template_dir(site: &Site, name: &str, templates: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = site.path(name).join("preseeds");
    std::fs::create_dir_all(&dir).expect("preseeds directory");
    for (file, text) in templates {
        std::fs::write(dir.join(file), text).expect("template");
    }
    dir
}

/// `osmesh preseeds ARGS…` against the site, as its admin; stdout.
fn preseeds_cli(site: &Site, args: &[&str]) -> String {
    let token = common::bearer(&site.api()).expect("the site's admin token");
    let out = output_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_osmesh"))
            .args(["preseeds", "--api", &site.api()])
            .args(args)
            .env("OSMESH_TOKEN", token.trim_start_matches("Bearer "))
            .env("HOME", site.path("cli-home")),
        WAIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "osmesh preseeds {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Issue 13's template attack against the release binaries: a rogue cluster ships a template
/// more specific than any other; it never serves another cluster's node, and its own only
/// once an admin approved it; a broken one is refused on arrival.
#[test]
fn a_rogue_clusters_template_never_serves_another_clusters_node() {
    let site = Site::new();
    let _region = site.start_region_enrolled_only();
    let own = template_dir(
        &site,
        "cluster-a",
        &[("generic", "generic for {{ hostname }}\n")],
    );
    let rogue = template_dir(
        &site,
        "evil",
        &[
            ("curtin_ubuntu", "late_commands: [evil]\n"),
            ("broken", "{% if %}\n"),
        ],
    );
    let mut daemons = Vec::new();
    for (name, dir) in [("cluster-a", &own), ("evil", &rogue)] {
        let token = enroll(&site, name);
        daemons.push(site.start_enrolled_cluster_with(name, 0, Some(&token), Some(dir)));
    }
    site.wait_for("three cluster templates", WAIT, || {
        get(&site.api(), "/api/v1/cluster-templates")
            .is_ok_and(|rows| rows.as_array().is_some_and(|r| r.len() == 3))
    });
    let pending = preseeds_cli(&site, &["pending"]);
    let lines: Vec<&str> = pending.lines().collect();
    assert_eq!(lines.len(), 4, "{pending}");
    assert!(lines[0].starts_with("CLUSTER"), "{pending}");
    assert!(lines[1].starts_with("cluster-a  generic"), "{pending}");
    assert!(
        lines[2].starts_with("evil       broken") && lines[2].contains("syntax error"),
        "{pending}"
    );
    assert!(
        lines[3].starts_with("evil       curtin_ubuntu"),
        "{pending}"
    );

    let node = authorize(ureq::post(&format!("{}/api/v1/nodes", site.api())))
        .send_json(serde_json::json!({"hostname": "a1", "cluster": "cluster-a", "arch": "amd64"}))
        .expect("enlist")
        .into_json::<serde_json::Value>()
        .expect("a node");
    let defaults =
        serde_json::json!({"default_osystem": "ubuntu", "default_distro_series": "jammy"});
    authorize(ureq::put(&format!("{}/api/v1/settings", site.api())))
        .send_json(defaults)
        .expect("settings");
    let render = || {
        get_status(
            &site.api(),
            &format!("/api/v1/nodes/{}/preseed?type=curtin", node["id"]),
        )
    };
    assert_eq!(render().0, 404, "nothing approved yet: {:?}", render().1);
    for (cluster, name) in [("cluster-a", "generic"), ("evil", "curtin_ubuntu")] {
        preseeds_cli(&site, &["approve", name, "--cluster", cluster]);
    }
    assert_eq!(
        preseeds_cli(&site, &["pending"]).lines().count(),
        2,
        "only the broken one waits"
    );
    let (status, rendered) = render();
    assert_eq!(status, 200, "{rendered}");
    assert_eq!(
        (rendered["template"].as_str(), rendered["content"].as_str()),
        (Some("generic"), Some("generic for a1\n")),
        "cluster-a's node is served by its own template, never evil's"
    );
    // Each approval is in the audit log like any write.
    let audit = get(&site.api(), "/api/v1/audit").expect("audit log");
    let approvals = audit["entries"]
        .as_array()
        .expect("audit rows")
        .iter()
        .filter(|row| {
            row["route"]
                .as_str()
                .is_some_and(|r| r.ends_with("/approve"))
        })
        .count();
    assert_eq!(approvals, 2, "{audit}");
}
