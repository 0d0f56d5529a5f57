//! HTTPS end to end: regiond serving a certificate from a throwaway CA, and the osmesh CLI
//! trusting it by pin or by CA file, refusing it with a wrong pin or with only the system's
//! roots. Plain HTTP off loopback is refused at start.

mod common;

use common::{create_token, output_within, read_addrs, write_secret, Daemon, Site, ADDR_FILE_ENV};
use sha2::{Digest, Sha256};
use std::process::{Command, Output};
use std::time::Duration;

struct Pki {
    leaf_sha256: String,
}

/// A CA, and a server certificate it signed for localhost and 127.0.0.1, written to the site.
fn make_pki(site: &Site) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "osmesh test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(site.path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(site.path("cert.pem"), leaf.pem()).unwrap();
    write_secret(&site.path("key.pem"), &leaf_key.serialize_pem());
    Pki {
        leaf_sha256: hex::encode(Sha256::digest(leaf.der())),
    }
}

/// regiond on HTTPS, bound to port 0; the daemon and its HTTP address.
fn start_tls_region(site: &Site) -> (Daemon, String) {
    let addr_file = site.path("regiond-tls.addrs");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regiond"));
    cmd.args(["--database-url", &site.db_url()])
        .args([
            "--rpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--secret-file")
        .arg(&site.secret_file)
        .arg("--tls-cert")
        .arg(site.path("cert.pem"))
        .arg("--tls-key")
        .arg(site.path("key.pem"))
        .env(ADDR_FILE_ENV, &addr_file);
    let daemon = Daemon::spawn(cmd, site.path("regiond.log"));
    let mut http = String::new();
    site.wait_for(
        "the HTTPS listener",
        Duration::from_secs(60),
        || match read_addrs(&addr_file) {
            Some((_, addr)) => {
                http = addr;
                std::net::TcpStream::connect(&http).is_ok()
            }
            None => false,
        },
    );
    (daemon, http)
}

fn cli(site: &Site, http: &str, token: &str, extra: &[&str]) -> Output {
    output_within(
        Command::new(env!("CARGO_BIN_EXE_osmesh"))
            .args(["clusters", "--json", "--api", &format!("https://{http}")])
            .args(extra)
            .env("OSMESH_TOKEN", token)
            .env("HOME", site.dir.path())
            .env_remove("OSMESH_CA_FILE")
            .env_remove("OSMESH_PIN_SHA256"),
        Duration::from_secs(60),
    )
}

#[test]
fn the_cli_reaches_https_by_pin_or_ca_and_refuses_a_wrong_pin() {
    let site = Site::new();
    let pki = make_pki(&site);
    let token = create_token(&site.db_url(), "tls-admin", "admin");
    let (region, http) = start_tls_region(&site);

    let pinned = cli(&site, &http, &token, &["--pin-sha256", &pki.leaf_sha256]);
    let stdout = String::from_utf8_lossy(&pinned.stdout);
    assert!(
        pinned.status.success(),
        "pinned: {}\n{}",
        String::from_utf8_lossy(&pinned.stderr),
        region.log_text()
    );
    assert!(stdout.trim_start().starts_with('['), "{stdout}");

    let with_ca = cli(
        &site,
        &http,
        &token,
        &["--ca-file", &site.path("ca.pem").display().to_string()],
    );
    assert!(
        with_ca.status.success(),
        "CA file: {}",
        String::from_utf8_lossy(&with_ca.stderr)
    );

    let wrong = "00".repeat(32);
    let refused = cli(&site, &http, &token, &["--pin-sha256", &wrong]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("not the pinned one"), "{stderr}");

    let unknown = cli(&site, &http, &token, &[]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !unknown.status.success(),
        "the system's roots do not know the test CA"
    );
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

    assert!(
        region.log_text().contains(&pki.leaf_sha256),
        "regiond logs its fingerprint"
    );
}

#[test]
fn plain_http_off_loopback_is_refused() {
    let site = Site::new();
    // It refuses before binding anything, so port 0 is never bound.
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_regiond"))
            .args(["--database-url", &site.db_url()])
            .args(["--rpc-listen", "127.0.0.1:0", "--http-listen", "0.0.0.0:0"])
            .arg("--secret-file")
            .arg(&site.secret_file),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("refusing to serve the API over plain HTTP")
            && stderr.contains("--insecure-http"),
        "{stderr}"
    );
}
