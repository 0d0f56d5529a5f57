//! Operations end to end, on real processes: `--check-config` on the example files and on bad
//! ones, clusterd's status listener, regiond's `/metrics` after a handshake flood, and the
//! log's rate limit, JSON format and absence of colour codes when stderr is a file.

mod common;

use common::Site;
use prometheus_parse::Scrape;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const REGIOND: &str = env!("CARGO_BIN_EXE_regiond");
const CLUSTERD: &str = env!("CARGO_BIN_EXE_clusterd");

/// A daemon of this file's tests: stderr to a log file, SIGKILLed when dropped.
struct Proc {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, log: std::path::PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn daemon");
        Proc { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn contrib(name: &str) -> String {
    format!("{}/contrib/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs a daemon to completion with no OSMESH_* variables from the test's environment.
fn run(bin: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("OSMESH_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the daemon")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A secret file as the daemons require it: mode 0600, 32 bytes or more.
fn secret_file(dir: &Path) -> String {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("secret");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("secret file");
    file.write_all(b"do-not-print-this-secret-0123456789abcdef")
        .expect("secret");
    path.display().to_string()
}

#[test]
fn check_config_accepts_the_example_files_and_prints_them_with_secrets_masked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = secret_file(dir.path());
    let out = run(
        REGIOND,
        &[
            "--config",
            &contrib("regiond.toml"),
            "--secret-file",
            &secret,
            "--database-url",
            "postgres://osmesh:hunter2@127.0.0.1:5432/osmesh",
            "--check-config",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("rpc_listen = \"0.0.0.0:5250\""), "{stdout}");
    assert!(stdout.contains("refresh_interval_secs = 30"), "{stdout}");
    assert!(
        stdout.contains("database_url = \"postgres://osmesh:*")
            && stdout.contains("open_metrics = false"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2") && !stdout.contains("do-not-print"));

    let images = dir.path().join("images");
    std::fs::create_dir(&images).expect("images");
    let out = run(
        CLUSTERD,
        &[
            "--config",
            &contrib("clusterd.toml"),
            "--secret-file",
            &secret,
            "--images",
            &images.display().to_string(),
            "--check-config",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("name = \"rack-1\""), "{stdout}");
    assert!(
        stdout.contains("regions = [\"region.example.internal:5250\"]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("status_listen = \"127.0.0.1:5260\""),
        "{stdout}"
    );
    assert!(!stdout.contains("do-not-print"));
}

#[test]
fn check_config_refuses_bad_files_with_exit_1_and_says_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = secret_file(dir.path());
    let cases = [
        ("rpc_listn = \"127.0.0.1:1\"\n", "rpc_listn"),
        ("http_listen = \"no port here\"\n", "http_listen"),
        ("database_url = \"mysql://x\"\n", "mysql"),
        (
            "refresh_interval_secs = \"soon\"\n",
            "refresh_interval_secs",
        ),
    ];
    for (body, named) in cases {
        let file = dir.path().join("bad-regiond.toml");
        std::fs::write(&file, body).expect("config");
        let out = run(
            REGIOND,
            &[
                "--config",
                &file.display().to_string(),
                "--secret-file",
                &secret,
                "--check-config",
            ],
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body}: {stderr}");
        assert!(stderr.contains(named), "{body}: {stderr}");
        assert!(!text(&out.stdout).contains("configuration OK"));
    }
    // clusterd: a typo, a missing required key, an image directory that is not there.
    let file = dir.path().join("bad-clusterd.toml");
    for (body, named) in [
        ("nmae = \"x\"\n", "nmae"),
        ("regions = [\"r:1\"]\n", "cluster name is required"),
        (
            "name = \"x\"\nregions = [\"r:1\"]\nimages = \"/nonexistent/osmesh\"\n",
            "boot-resource directory",
        ),
    ] {
        std::fs::write(&file, body).expect("config");
        let out = run(
            CLUSTERD,
            &[
                "--config",
                &file.display().to_string(),
                "--secret-file",
                &secret,
                "--check-config",
            ],
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body}: {stderr}");
        assert!(stderr.contains(named), "{body}: {stderr}");
    }
}

/// Scrapes `base`/metrics, with the site's admin token where the API requires one.
fn scrape(base: &str) -> Scrape {
    let mut request = ureq::get(&format!("{base}/metrics")).timeout(Duration::from_secs(20));
    if let Some(value) = common::bearer(base) {
        request = request.set("Authorization", &value);
    }
    let body = request
        .call()
        .expect("GET /metrics")
        .into_string()
        .expect("body");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("exposition format")
}

fn status_of(url: &str) -> u16 {
    match ureq::get(url).timeout(Duration::from_secs(20)).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        // Not listening yet.
        Err(_) => 0,
    }
}

/// A free loopback port for clusterd's status listener, which does not report the port it
/// bound (bound, then released: a small race, acceptable for this one listener).
fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    socket.local_addr().expect("local addr").port()
}

fn wait(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn clusterd_status_listener_reports_readiness_by_region_link_and_serves_metrics() {
    let site = Site::new();
    // The region binds port 0 and reports its addresses; stopped, it leaves an address that
    // nothing answers, which the cluster dials until the region comes back on it.
    site.start_region().kill();
    let status = format!("127.0.0.1:{}", free_port());
    let images = site.path("images");
    std::fs::create_dir(&images).expect("images");
    let mut cmd = Command::new(CLUSTERD);
    cmd.args([
        "--name",
        "probe",
        "--region",
        &site.rpc(),
        "--status-listen",
        &status,
    ])
    .arg("--secret-file")
    .arg(&site.secret_file)
    .arg("--images")
    .arg(&images);
    let _cluster = Proc::spawn(cmd, site.path("clusterd.log"));
    let base = format!("http://{status}");
    wait("the status listener", Duration::from_secs(30), || {
        ureq::get(&format!("{base}/healthz")).call().is_ok()
    });
    // No region yet: not ready, and the failed check is named.
    let (code, body) = common::get_status(&base, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["failed"], serde_json::json!(["region_link"]));

    let _region = site.start_region();
    wait("the cluster to link", Duration::from_secs(60), || {
        status_of(&format!("{base}/readyz")) == 200
    });
    let scrape = scrape(&base);
    let links = scrape
        .samples
        .iter()
        .find(|s| s.metric == "osmesh_cluster_region_links")
        .expect("the link gauge");
    assert!(matches!(links.value, prometheus_parse::Value::Gauge(v) if v == 1.0));
    // The link is up at the handshake; the `Register` call is counted when its answer
    // arrives, which the region gives once the registration is stored.
    wait(
        "the Register call to be counted",
        Duration::from_secs(60),
        || {
            crate::scrape(&base).samples.iter().any(|s| {
                s.metric == "osmesh_rpc_client_calls_total"
                    && s.labels.get("method") == Some("Register")
            })
        },
    );
}

#[test]
fn a_handshake_flood_is_counted_in_metrics_and_rate_limited_in_the_json_log() {
    let site = Site::new();
    let log = site.path("regiond.log");
    let addr_file = site.path("regiond.addrs");
    let mut cmd = Command::new(REGIOND);
    cmd.arg("--database-url")
        .arg(site.db_url())
        .args([
            "--rpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--secret-file")
        .arg(&site.secret_file)
        .args(["--log-format", "json", "--open-metrics"])
        .env(common::ADDR_FILE_ENV, &addr_file);
    let region = Proc::spawn(cmd, log.clone());
    let mut addrs = None;
    wait(
        "regiond to report its addresses",
        Duration::from_secs(60),
        || {
            addrs = common::read_addrs(&addr_file);
            addrs.is_some()
        },
    );
    let (rpc, http) = addrs.expect("addresses");
    let api = format!("http://{http}");
    common::register_token(&api, &site.token);
    wait("regiond", Duration::from_secs(30), || {
        status_of(&format!("{api}/readyz")) == 200
    });
    // 300 connections that send a frame that is no handshake.
    const FLOOD: usize = 300;
    for _ in 0..FLOOD {
        if let Ok(mut conn) = std::net::TcpStream::connect(&rpc) {
            use std::io::Write;
            let _ = conn.write_all(b"\x00\x00\x00\x04junk");
        }
    }
    wait("every refusal counted", Duration::from_secs(60), || {
        let scrape = scrape(&api);
        let refused: f64 = scrape
            .samples
            .iter()
            .filter(|s| s.metric == "osmesh_handshake_failures_total")
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => 0.0,
            })
            .sum();
        refused >= FLOOD as f64
    });
    // The handshake warning is rate-limited where it is raised (`net::limits::RateLimitedWarn`,
    // one line a second): the next refusal after the interval carries the count of the
    // suppressed ones.
    std::thread::sleep(Duration::from_millis(1500));
    if let Ok(mut conn) = std::net::TcpStream::connect(&rpc) {
        use std::io::Write;
        let _ = conn.write_all(b"\x00\x00\x00\x04junk");
    }
    wait(
        "the line that counts the suppressed ones",
        Duration::from_secs(60),
        || {
            region.log_text().lines().any(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .is_ok_and(|v| v["fields"]["suppressed"].as_u64().is_some_and(|n| n > 0))
            })
        },
    );
    let text = region.log_text();
    assert!(!text.contains('\u{1b}'), "colour codes in a log file");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let refused = lines
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("handshake refused"))
        })
        .count();
    assert!(
        (1..FLOOD / 5).contains(&refused),
        "{refused} refusal lines for {FLOOD} refusals"
    );
    let suppressed: u64 = lines
        .iter()
        .filter_map(|l| l["fields"]["suppressed"].as_u64())
        .sum();
    assert!(suppressed > 0, "no summary counted the dropped lines");
}
