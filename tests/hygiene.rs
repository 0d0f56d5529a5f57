//! Secret hygiene of the daemons, end to end: secret files open to others or too short are
//! refused, and a database password never reaches the error output.

mod common;

use common::{free_port, write_secret, Site};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn regiond(site: &Site, secret: &std::path::Path, database_url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_regiond"))
        .args(["--database-url", database_url])
        .args(["--rpc-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--secret-file")
        .arg(secret)
        .output()
        .expect("run regiond");
    let _ = site;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn daemons_refuse_secret_files_open_to_others_or_short() {
    let site = Site::new();
    let loose = site.path("loose-secret");
    write_secret(&loose, "a-secret-long-enough-to-be-fine-0123456789");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::create_dir_all(site.path("images")).unwrap();
    let short = site.path("short-secret");
    write_secret(&short, "only-31-bytes-long-0123456789ab");
    for (file, expected) in [(&loose, "chmod 600"), (&short, "at least 32")] {
        let (ok, stderr) = regiond(&site, file, &site.db_url());
        assert!(!ok && stderr.contains(expected), "regiond: {stderr}");
        let out = Command::new(env!("CARGO_BIN_EXE_clusterd"))
            .args(["--name", "c", "--region", &site.rpc, "--images"])
            .arg(site.path("images"))
            .arg("--secret-file")
            .arg(file)
            .output()
            .expect("run clusterd");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expected),
            "clusterd: {stderr}"
        );
    }
}

#[test]
fn a_database_password_never_reaches_the_error_output() {
    let site = Site::new();
    // Nothing listens on port 1: the open fails, and the message names the URL.
    for url in [
        "postgres://osmesh:S3cretPW@127.0.0.1:1/region?connect_timeout=2",
        "postgres://osmesh@127.0.0.1:1/region?password=S3cretPW&connect_timeout=2",
    ] {
        let (ok, stderr) = regiond(&site, &site.secret_file, url);
        assert!(!ok, "{stderr}");
        assert!(stderr.contains("cannot open the database"), "{stderr}");
        assert!(!stderr.contains("S3cretPW"), "{stderr}");
    }
}
