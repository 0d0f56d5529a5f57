//! Helpers for end-to-end tests of real `regiond` and `clusterd` processes on loopback.

#![allow(dead_code)]

use osmesh_cluster::sample::{sample_declares_os, write_sample_tree, SAMPLE_DECLARED_OS};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The admin token of each site's API (by URL), which `get` and `get_status` send.
static TOKENS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Creates a token in the database at `db_url` with `regiond token create`, as an operator
/// bootstraps one; the token.
pub fn create_token(db_url: &str, name: &str, role: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_regiond"))
        .args([
            "--database-url",
            db_url,
            "token",
            "create",
            "--name",
            name,
            "--role",
            role,
        ])
        .output()
        .expect("run regiond token create");
    assert!(
        out.status.success(),
        "regiond token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Puts the admin token of the site whose API `request` goes to on it.
pub fn authorize(request: ureq::Request) -> ureq::Request {
    let url = request.url().to_owned();
    let token = {
        let tokens = TOKENS.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .iter()
            .find(|(api, _)| url.starts_with(api.as_str()))
            .map(|(_, t)| format!("Bearer {t}"))
    };
    match token {
        Some(value) => request.set("Authorization", &value),
        None => request,
    }
}

/// Registers `token` as the one `get` and `get_status` send to `api`.
pub fn register_token(api: &str, token: &str) {
    TOKENS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(api.to_owned(), token.to_owned());
}

/// The token registered for `api`, as an `Authorization` header value.
pub fn bearer(api: &str) -> Option<String> {
    let tokens = TOKENS.lock().unwrap_or_else(|p| p.into_inner());
    tokens.get(api).map(|t| format!("Bearer {t}"))
}

fn authorized(api: &str, request: ureq::Request) -> ureq::Request {
    match bearer(api) {
        Some(value) => request.set("Authorization", &value),
        None => request,
    }
}

/// Writes a secret file as the daemons require it: mode 0600, created new.
pub fn write_secret(path: &Path, contents: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .expect("write the secret file");
}

/// The shared secret every site's secret file holds (the file adds a newline).
pub const SITE_SECRET: &str = "e2e-shared-secret-0123456789abcdef";

/// The variable `regiond` reads to report the addresses it bound (see its `main.rs`).
pub const ADDR_FILE_ENV: &str = "OSMESH_ADDR_FILE";

/// Where one test's processes keep their files, where its region listens, and its admin token.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub secret_file: PathBuf,
    /// `(rpc, http)` as the region reported them after binding; kept for its restarts.
    addrs: RefCell<Option<(String, String)>>,
    /// An admin token made with `regiond token create` before the region first starts.
    pub token: String,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret_file = dir.path().join("secret");
        write_secret(&secret_file, &format!("{SITE_SECRET}\n"));
        let site = Site {
            secret_file,
            dir,
            addrs: RefCell::new(None),
            token: String::new(),
        };
        Site {
            token: create_token(&site.db_url(), "e2e-admin", "admin"),
            ..site
        }
    }

    pub fn db_url(&self) -> String {
        format!("sqlite://{}", self.path("region.db").display())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn addrs(&self) -> (String, String) {
        self.addrs
            .borrow()
            .clone()
            .expect("the region has not started yet: its addresses are known once it binds")
    }

    /// The region's RPC address (after `start_region`).
    pub fn rpc(&self) -> String {
        self.addrs().0
    }

    /// The region's HTTP address (after `start_region`).
    pub fn http(&self) -> String {
        self.addrs().1
    }

    pub fn api(&self) -> String {
        format!("http://{}", self.http())
    }

    /// Starts `regiond` on SQLite in the site's directory; its log goes to `regiond.log`. The
    /// first start binds port 0 and reads the ports back from the region; a restart binds
    /// the same ones again (the clusters keep dialing that address).
    pub fn start_region(&self) -> Daemon {
        self.start_region_with(Path::new(env!("CARGO_BIN_EXE_regiond")))
    }

    /// `start_region` with another `regiond` binary (an older build, to compare).
    pub fn start_region_with(&self, binary: &Path) -> Daemon {
        self.start_region_as(binary, true)
    }

    /// Starts `regiond` with enrolled certificates only: no shared secret (compatibility mode
    /// off, the default).
    pub fn start_region_enrolled_only(&self) -> Daemon {
        self.start_region_as(Path::new(env!("CARGO_BIN_EXE_regiond")), false)
    }

    fn start_region_as(&self, binary: &Path, compatibility: bool) -> Daemon {
        let log = self.path("regiond.log");
        let addr_file = self.path("regiond.addrs");
        let _ = std::fs::remove_file(&addr_file);
        let (rpc, http) = self
            .addrs
            .borrow()
            .clone()
            .unwrap_or_else(|| ("127.0.0.1:0".into(), "127.0.0.1:0".into()));
        let mut cmd = Command::new(binary);
        cmd.arg("--database-url")
            .arg(self.db_url())
            .args(["--rpc-listen", &rpc, "--http-listen", &http])
            .env(ADDR_FILE_ENV, &addr_file);
        if compatibility {
            cmd.arg("--secret-file").arg(&self.secret_file);
        }
        let mut daemon = Daemon::spawn(cmd, log);
        let mut reported = None;
        self.wait_for(
            "the region to report its addresses",
            Duration::from_secs(60),
            || {
                if let Ok(Some(status)) = daemon.child.try_wait() {
                    panic!("regiond exited ({status}): {}", daemon.log_text());
                }
                reported = read_addrs(&addr_file);
                reported.is_some()
            },
        );
        *self.addrs.borrow_mut() = reported;
        register_token(&self.api(), &self.token);
        self.wait_for("the region API", Duration::from_secs(30), || {
            get(&self.api(), "/api/v1/clusters").is_ok()
        });
        daemon
    }

    /// Starts `clusterd` with sample tree `variant`, authenticating with `secret_file`.
    pub fn start_cluster_with_secret(
        &self,
        name: &str,
        variant: usize,
        secret_file: &Path,
    ) -> Daemon {
        let cmd = self.cluster_command(name, variant, secret_file);
        Daemon::spawn(cmd, self.path(name).join("clusterd.log"))
    }

    /// The `clusterd` command line `start_cluster_with_secret` runs (its sample tree written),
    /// for a test to add to.
    pub fn cluster_command(&self, name: &str, variant: usize, secret_file: &Path) -> Command {
        let root = self.path(name);
        let images = root.join("boot-resources");
        if !images.exists() {
            write_sample_tree(&images, variant).expect("sample tree");
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterd"));
        cmd.args(["--name", name, "--region", &self.rpc()])
            .arg("--secret-file")
            .arg(secret_file)
            .arg("--images")
            .arg(&images)
            .args(["--rescan-secs", "1"]);
        if sample_declares_os(variant) {
            let declared = root.join("declared-os.toml");
            std::fs::write(&declared, SAMPLE_DECLARED_OS).expect("declared OS");
            cmd.arg("--declared-os").arg(declared);
        }
        cmd
    }

    /// Starts `clusterd` with sample tree `variant` and its credentials in
    /// `<site>/<name>/state`, enrolling with `token` first when one is given.
    pub fn start_enrolled_cluster(
        &self,
        name: &str,
        variant: usize,
        token: Option<&str>,
    ) -> Daemon {
        self.start_enrolled_cluster_with(name, variant, token, None)
    }

    /// [`Site::start_enrolled_cluster`], shipping the templates in `preseeds` if given.
    pub fn start_enrolled_cluster_with(
        &self,
        name: &str,
        variant: usize,
        token: Option<&str>,
        preseeds: Option<&Path>,
    ) -> Daemon {
        let root = self.path(name);
        let images = root.join("boot-resources");
        if !images.exists() {
            write_sample_tree(&images, variant).expect("sample tree");
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterd"));
        cmd.args(["--name", name, "--region", &self.rpc()])
            .arg("--state-dir")
            .arg(root.join("state"))
            .arg("--images")
            .arg(&images)
            .args(["--rescan-secs", "1"]);
        if let Some(token) = token {
            let file = root.join("enroll-token");
            let _ = std::fs::remove_file(&file);
            write_secret(&file, token);
            cmd.arg("--enroll-token-file").arg(file);
        }
        if let Some(preseeds) = preseeds {
            cmd.arg("--preseeds").arg(preseeds);
        }
        Daemon::spawn(cmd, root.join("clusterd.log"))
    }

    pub fn start_cluster(&self, name: &str, variant: usize) -> Daemon {
        self.start_cluster_with_secret(name, variant, &self.secret_file.clone())
    }

    /// Polls `ready` every 100 ms until it holds, failing the test after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out after {limit:?} waiting for {what}");
    }
}

/// `(rpc, http)` from a region's address file, once it is there whole.
pub fn read_addrs(path: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut rpc = None;
    let mut http = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("rpc", addr)) => rpc = Some(addr.to_owned()),
            Some(("http", addrs)) => http = addrs.split(' ').next().map(str::to_owned),
            _ => {}
        }
    }
    Some((rpc?, http?))
}

/// Runs `cmd` to completion as `Command::output` does, but fails the test (killing the child)
/// if it has not exited within `limit`, rather than hanging.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// A child process, killed with SIGKILL when dropped.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn daemon");
        Daemon { child, log }
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// GET a JSON document from the API.
pub fn get(api: &str, path: &str) -> Result<serde_json::Value, String> {
    match authorized(api, ureq::get(&format!("{api}{path}")))
        .timeout(Duration::from_secs(20))
        .call()
    {
        Ok(response) => response.into_json().map_err(|e| e.to_string()),
        Err(ureq::Error::Status(code, response)) => Err(format!(
            "{code}: {}",
            response.into_string().unwrap_or_default()
        )),
        Err(err) => Err(err.to_string()),
    }
}

/// The status code and JSON body of a request with `method` (POST, DELETE…) and no body,
/// whatever the status.
pub fn send_status(api: &str, method: &str, path: &str) -> (u16, serde_json::Value) {
    match authorized(api, ureq::request(method, &format!("{api}{path}"))).call() {
        Ok(response) => (response.status(), response.into_json().unwrap_or_default()),
        Err(ureq::Error::Status(code, response)) => {
            (code, response.into_json().unwrap_or_default())
        }
        Err(err) => panic!("{method} {path}: {err}"),
    }
}

/// The status code and JSON body of a GET, whatever the status.
pub fn get_status(api: &str, path: &str) -> (u16, serde_json::Value) {
    match authorized(api, ureq::get(&format!("{api}{path}"))).call() {
        Ok(response) => (response.status(), response.into_json().unwrap_or_default()),
        Err(ureq::Error::Status(code, response)) => {
            (code, response.into_json().unwrap_or_default())
        }
        Err(err) => panic!("GET {path}: {err}"),
    }
}

/// The ids of the clusters the region lists with `connected == true` and a snapshot.
pub fn reported_clusters(api: &str) -> Vec<String> {
    let Ok(clusters) = get(api, "/api/v1/clusters") else {
        return Vec::new();
    };
    clusters
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["connected"] == true && !c["snapshot_age_ms"].is_null())
        .filter_map(|c| c["id"].as_str().map(String::from))
        .collect()
}
