//! Secret hygiene of the daemons, end to end: secret files open to others or too short are
//! refused, and a database password never reaches the error output.

mod common;

use common::{write_secret, Site};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn regiond(site: &Site, secret: &std::path::Path, database_url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_regiond"))
        .args(["--database-url", database_url])
        .args([
            "--rpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--secret-file")
        .arg(secret)
        .arg("--state-dir")
        .arg(site.path("region-state"))
        .output()
        .expect("run regiond");
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
            // It refuses the secret before it dials, so the region address is never used.
            .args(["--name", "c", "--region", "127.0.0.1:9", "--images"])
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

#[test]
fn login_saves_a_private_token_and_secrets_are_never_taken_from_argv() {
    let site = Site::new();
    let _region = site.start_region();
    let token = common::create_token(&site.db_url(), "alice", "operator");
    let credentials = site.path("config/osmesh/credentials.json");
    let osmesh = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_osmesh"))
            .args(args)
            .args(["--api", &site.api()])
            .env("OSMESH_CREDENTIALS", &credentials)
            .env_remove("OSMESH_TOKEN")
            .env_remove("OSMESH_LICENSE_KEY")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run osmesh");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = osmesh(&["clusters"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("osmesh login"));

    let out = osmesh(&["login"], &format!("{token}\n"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("as alice (operator)"), "{stdout}");
    let mode = std::fs::metadata(&credentials)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = osmesh(&["clusters", "--json"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let key = "ABCDE-12345-FGHIJ-67890-KLMNO";
    let out = osmesh(
        &[
            "license-keys",
            "add",
            "windows",
            "win2019",
            "--license-key",
            key,
        ],
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("not taken on the command line"),
        "{stderr}"
    );
    // From standard input it reaches the region, which refuses the operator (admin only).
    let out = osmesh(
        &[
            "license-keys",
            "add",
            "windows",
            "win2019",
            "--license-key",
            "-",
        ],
        key,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("403 forbidden"), "{stderr}");
    assert!(!stderr.contains(key));
}

#[test]
fn regiond_on_postgresql_without_a_state_directory_refuses_to_start_and_writes_no_key() {
    let site = Site::new();
    let cwd = site.path("cwd");
    std::fs::create_dir_all(&cwd).expect("cwd");
    // The refusal comes before the database is opened, so no server is needed.
    let out = common::output_within(
        Command::new(env!("CARGO_BIN_EXE_regiond"))
            .current_dir(&cwd)
            .args(["--database-url", "postgres://osmesh@127.0.0.1:1/region"])
            .args([
                "--rpc-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .arg("--secret-file")
            .arg(&site.secret_file),
        std::time::Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--state-dir"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&cwd).expect("cwd").collect();
    assert!(
        left.is_empty(),
        "regiond wrote into its working directory: {left:?}"
    );
}
