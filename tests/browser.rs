//! The mesh page in a real headless Chromium, driven through WebDriver (W3C protocol, spoken
//! here over `ureq`: the handful of commands the flow needs, no WebDriver crate and its HTTP
//! stack to build).
//!
//! Against the demo's mesh (a real `regiond` and three real `clusterd` processes holding the
//! demo's three sample trees and templates, as `osmesh demo` runs them, but as processes so
//! that one can be killed): log in with a token; the matrix shows the three clusters and their
//! divergent availability; kill a cluster and see it marked disconnected without a reload; add
//! a license key through the form and see it masked with its validator; enlist and allocate a
//! node; no errors in the browser console. Each view's screenshot is taken (see
//! [`screenshot_dir`]: the README's are in `docs/ui/`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test prints why and passes, except under CI (`CI` set), where it fails.

mod common;

use common::*;
use osmesh_cluster::sample::{write_sample_templates, write_sample_tree};
use osmesh_cluster::{Args as ClusterArgs, ClusterConfig};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const ENTER: &str = "\u{E007}";

/// Where a program is on `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// `chromedriver` on a port it picked, killed when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Driver {
    fn start(binary: &Path) -> Driver {
        let mut child = Command::new(binary)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let stdout = child.stdout.take().expect("chromedriver stdout");
        // "ChromeDriver was started successfully on port 37053."
        let mut port = None;
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.expect("chromedriver output");
            if let Some(rest) = line.split("successfully on port ").nth(1) {
                port = rest.trim_end_matches('.').trim().parse::<u16>().ok();
                break;
            }
        }
        // Keep reading what it prints later, so it never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let port = port.expect("chromedriver did not say its port");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
struct Browser {
    base: String,
}

impl Browser {
    fn open(driver: &Driver, chromium: &Path) -> Browser {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1400,1100"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let answer = call("POST", &format!("{}/session", driver.url), Some(caps));
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"));
        Browser {
            base: format!("{}/session/{id}", driver.url),
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(method, &format!("{}{path}", self.base), body)
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// Clicks the element `css` names. The page redraws a view on every live change, so an
    /// element found may be replaced before the click lands ("stale element reference"):
    /// then it is found again, a few times.
    fn click(&self, css: &str) {
        for _ in 0..5 {
            let e = self.find(css);
            let url = format!("{}/element/{e}/click", self.base);
            match ureq::post(&url)
                .timeout(Duration::from_secs(120))
                .send_json(json!({}))
            {
                Ok(_) => return,
                Err(ureq::Error::Status(404, r)) => {
                    let text = r.into_string().unwrap_or_default();
                    assert!(
                        text.contains("stale element"),
                        "WebDriver click {css}: {text}"
                    );
                }
                Err(err) => panic!("WebDriver click {css}: {err}"),
            }
        }
        panic!("{css} went stale five times in a row");
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn script(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Polls `script` (returning a boolean) every 100 ms until it is true.
    fn wait(&self, what: &str, script: &str) -> Duration {
        let start = Instant::now();
        let limit = Duration::from_secs(60);
        while start.elapsed() < limit {
            if self.script(script) == json!(true) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let page = self.script("return document.body ? document.body.innerText : ''");
        panic!("timed out after {limit:?} waiting for {what}; the page says: {page}");
    }

    fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = self.cmd("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("screenshot"))
            .expect("base64 screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("docs/ui");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("write screenshot");
    }

    /// The browser console's entries since the last call.
    fn console(&self) -> Vec<Value> {
        self.cmd("POST", "/se/log", Some(json!({"type": "browser"})))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.base).call();
    }
}

/// Where screenshots go: `OSMESH_UI_SCREENSHOTS` (relative to the workspace; the README's
/// come from `OSMESH_UI_SCREENSHOTS=docs/ui cargo test --test browser -- --include-ignored`),
/// else cargo's scratch directory, so an ordinary test run leaves the tree clean.
fn screenshot_dir() -> PathBuf {
    match std::env::var_os("OSMESH_UI_SCREENSHOTS") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR")).join(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui"),
    }
}

/// What the page shows now, checked as WCAG AA asks: every visible text at 4.5:1 contrast
/// against its background (3:1 for large text), every form control labelled.
const ACCESSIBILITY: &str = r#"
const lum = (c) => {
  const [r, g, b] = c.slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const rgba = (s) => { const m = s.match(/rgba?\(([^)]+)\)/); if (!m) return null; const p = m[1].split(',').map(parseFloat); return p.length === 4 ? p : [...p, 1]; };
const background = (el) => {
  for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor); if (c && c[3] > 0.5) return c; }
  return [255, 255, 255, 1];
};
const low = [];
for (const el of document.querySelectorAll('body *')) {
  if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
  const st = getComputedStyle(el);
  if (st.visibility === 'hidden' || st.display === 'none' || el.closest('.sr-only')) continue;
  const a = lum(rgba(st.color)); const b = lum(background(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(st.fontSize); const bold = parseInt(st.fontWeight, 10) >= 700;
  const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
  if (ratio < need) low.push(`${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 40)}": ${ratio.toFixed(2)}`);
}
const unlabelled = [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
  .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !(c.tagName === 'BUTTON' && c.textContent.trim()))
  .map((c) => c.id || c.name || c.outerHTML.slice(0, 60));
return [low, unlabelled];
"#;

fn check_accessible(browser: &Browser, view: &str) {
    let found = browser.script(ACCESSIBILITY);
    assert_eq!(
        found,
        json!([[], []]),
        "{view}: [low contrast, unlabelled controls]"
    );
}

/// One WebDriver command; its `value`.
fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    let request = ureq::request(method, url).timeout(Duration::from_secs(120));
    let response = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    match response {
        Ok(r) => r.into_json::<Value>().expect("WebDriver JSON")["value"].take(),
        Err(ureq::Error::Status(code, r)) => {
            panic!(
                "WebDriver {method} {url}: {code} {}",
                r.into_string().unwrap_or_default()
            )
        }
        Err(err) => panic!("WebDriver {method} {url}: {err}"),
    }
}

/// `clusterd` with the demo's sample tree, declared OS and templates of `variant`, and the
/// `changed` templates (name, content) instead of the sample's.
fn start_demo_cluster(site: &Site, name: &str, variant: usize, changed: &[(&str, &str)]) -> Daemon {
    let mut cmd = site.cluster_command(name, variant, &site.secret_file);
    let preseeds = site.path(name).join("preseeds");
    write_sample_templates(&preseeds, variant).expect("sample templates");
    for (template, content) in changed {
        std::fs::write(preseeds.join(template), content).expect("changed template");
    }
    cmd.arg("--preseeds").arg(&preseeds);
    Daemon::spawn(cmd, site.path(name).join("clusterd.log"))
}

/// The state (`available`, `supported`, `stale`, `none`) of the matrix cell of release
/// `os/release` for cluster `id`, as a script expression.
fn cell(os_release: &str, id: &str) -> String {
    format!(
        "(document.querySelector('tr[data-release=\"{os_release}\"] td[data-cluster=\"{id}\"]') || {{dataset: {{}}}}).dataset.state"
    )
}

#[test]
fn the_page_in_a_real_browser() {
    let Some((driver_bin, chromium)) = browser_binaries() else {
        return;
    };

    let site = Site::new();
    let _region = site.start_region();
    let names = ["cluster-a", "cluster-b", "cluster-c"];
    let mut clusters: Vec<Daemon> = names
        .iter()
        .enumerate()
        .map(|(variant, name)| start_demo_cluster(&site, name, variant, &[]))
        .collect();
    site.wait_for("three clusters", Duration::from_secs(60), || {
        reported_clusters(&site.api()).len() == 3
    });
    let ids: Vec<(String, String)> = get(&site.api(), "/api/v1/clusters")
        .expect("clusters")
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let id_of = |name: &str| {
        ids.iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id.clone())
            .unwrap_or_else(|| panic!("no cluster {name}: {ids:?}"))
    };
    // A second template version, so the preseed view has a history to compare.
    let generic = get(&site.api(), "/api/v1/preseeds/generic").expect("generic template");
    let edited = format!(
        "{}\n# edited by the browser test\n",
        generic["current"]["content"].as_str().unwrap_or_default()
    );
    authorize(ureq::put(&format!(
        "{}/api/v1/preseeds/generic",
        site.api()
    )))
    .send_json(json!({"content": edited, "based_on_version": generic["current"]["version"]}))
    .expect("edit the generic template");

    let driver = Driver::start(&driver_bin);
    let browser = Browser::open(&driver, &chromium);
    let api = site.api();

    // Without a session, the page sends the browser to the login form.
    browser.goto(&format!("{api}/"));
    browser.wait(
        "the login form",
        "return location.pathname === '/login' && !!document.getElementById('token')",
    );
    browser.screenshot("login");
    check_accessible(&browser, "login");
    // Typed and submitted from the keyboard (Enter in the field).
    browser.type_into("#token", &format!("{}{ENTER}", site.token));

    // The matrix: three clusters, and what differs between them.
    browser.wait(
        "the matrix with three clusters",
        "return document.querySelectorAll('#matrix thead th[data-cluster]').length === 3",
    );
    let (a, b, c) = (id_of("cluster-a"), id_of("cluster-b"), id_of("cluster-c"));
    let states = browser.script(&format!(
        "return [{}, {}, {}, {}, {}, {}]",
        cell("ubuntu/jammy", &a),
        cell("ubuntu/jammy", &c),
        cell("windows/win2019", &b),
        cell("windows/win2019", &a),
        cell("acme-linux/a2", &c),
        cell("acme-linux/a2", &a),
    ));
    assert_eq!(
        states,
        json!([
            "available",
            "none",
            "available",
            "supported",
            "available",
            "none"
        ]),
        "jammy held by a, unknown to c; win2019 held by b, known to a without images; \
         acme-linux a2 declared and held by c only"
    );
    browser.screenshot("matrix");
    check_accessible(&browser, "matrix");

    // Kill cluster-c: its column says so without a reload.
    browser.script("window.__noReload = 'still here'; return true");
    let header = format!("document.querySelector('#matrix thead th[data-cluster=\"{c}\"]')");
    let killed = Instant::now();
    clusters[2].kill();
    browser.wait(
        "cluster-c marked disconnected",
        &format!("const h = {header}; return !!h && h.textContent.includes('disconnected')"),
    );
    let shown_after = killed.elapsed();
    eprintln!("cluster-c shown disconnected {shown_after:?} after its process was killed");
    assert_eq!(
        browser.script("return window.__noReload || null"),
        json!("still here"),
        "the page was reloaded"
    );
    // Its part is now last known, not available.
    browser.wait(
        "cluster-c's acme-linux as last known",
        &format!("return {} === 'stale'", cell("acme-linux/a2", &c)),
    );
    // cluster-a gains focal images: its cell turns available, still without a reload (the
    // cluster rescans its tree every second and pushes the change).
    assert_eq!(
        browser.script(&format!("return {}", cell("ubuntu/focal", &a))),
        json!("none")
    );
    let focal = site.path("cluster-a/boot-resources/ubuntu/amd64/generic/focal/stable");
    std::fs::create_dir_all(&focal).expect("focal image directory");
    let added = Instant::now();
    for file in ["boot-kernel", "boot-initrd", "squashfs"] {
        std::fs::write(focal.join(file), b"").expect("focal image file");
    }
    browser.wait(
        "cluster-a's focal available",
        &format!("return {} === 'available'", cell("ubuntu/focal", &a)),
    );
    eprintln!(
        "cluster-a's new focal images shown {:?} after they were written (the cluster rescans every 1 s)",
        added.elapsed()
    );
    assert_eq!(
        browser.script("return window.__noReload || null"),
        json!("still here"),
        "the page was reloaded"
    );
    browser.screenshot("matrix-disconnected");
    check_accessible(&browser, "matrix-disconnected");

    // Clusters view, reached from the keyboard: Enter on the nav link.
    browser.type_into("#nav a[data-view=clusters]", ENTER);
    browser.wait(
        "the clusters table",
        &format!("const r = document.querySelector('#clusters tr[data-cluster=\"{c}\"] .state'); return !!r && r.textContent.includes('disconnected')"),
    );
    browser.screenshot("clusters");
    check_accessible(&browser, "clusters");

    // A license key through the form: masked, with the cluster that validated it.
    let key = "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY";
    browser.click("#nav a[data-view=license-keys]");
    browser.wait(
        "the key form",
        "return !!document.querySelector('#key-form option[value=\"windows|win2019\"]')",
    );
    browser.script("document.getElementById('key-release').value = 'windows|win2019'; return true");
    browser.type_into("#key-value", key);
    browser.click("#key-form button[type=submit]");
    browser.wait(
        "the key's row",
        "return !!document.querySelector('#license-keys tr[data-key=\"windows/win2019\"]')",
    );
    let row = browser.script(
        "const r = document.querySelector('#license-keys tr[data-key=\"windows/win2019\"]'); \
         return [r.querySelector('.masked').textContent, r.querySelector('.validator').textContent, \
                 document.getElementById('key-result').textContent, document.body.innerHTML.includes('ABCDE-FGHIJ')]",
    );
    let masked = row[0].as_str().unwrap_or_default();
    assert!(
        !masked.contains("ABCDE") && masked.ends_with("UVWXY"),
        "masked: {masked}"
    );
    assert_eq!(row[1], json!(b), "win2019 is held by cluster-b only");
    assert!(
        row[2].as_str().unwrap_or_default().contains(&b),
        "{}",
        row[2]
    );
    assert_eq!(row[3], json!(false), "the full key is nowhere in the page");
    browser.screenshot("license-keys");
    check_accessible(&browser, "license-keys");

    // Enlist a node, then allocate it with a choice the mesh can serve.
    browser.click("#nav a[data-view=nodes]");
    browser.wait(
        "the enlist form",
        "return !!document.getElementById('enlist-form')",
    );
    browser.type_into("#enlist-hostname", "node-1");
    browser.script(&format!(
        "document.getElementById('enlist-arch').value = 'amd64'; document.getElementById('enlist-cluster').value = '{a}'; return true"
    ));
    browser.click("#enlist-form button[type=submit]");
    browser.wait(
        "node-1 ready and ubuntu/jammy/amd64 offered",
        "return !!document.querySelector('#nodes tr[data-node=\"node-1\"]') && \
         !!document.querySelector('#alloc-choice option[value=\"ubuntu|jammy|amd64\"]')",
    );
    // Only what a connected cluster with a ready node can serve: nothing of cluster-c's.
    let offered = browser
        .script("return [...document.querySelectorAll('#alloc-choice option')].map(o => o.value)");
    assert!(
        offered.as_array().is_some_and(|o| !o.is_empty()
            && o.iter()
                .all(|v| !v.as_str().unwrap_or_default().starts_with("acme-linux"))),
        "{offered}"
    );
    browser.script(
        "document.getElementById('alloc-choice').value = 'ubuntu|jammy|amd64'; return true",
    );
    browser.click("#allocate-form button[type=submit]");
    browser.wait(
        "node-1 allocated",
        "const s = document.querySelector('#nodes tr[data-node=\"node-1\"] .status'); return !!s && s.textContent === 'allocated'",
    );
    browser.screenshot("nodes");
    check_accessible(&browser, "nodes");

    browser.click("#nav a[data-view=settings]");
    browser.wait(
        "settings",
        "return !!document.getElementById('settings-form')",
    );
    browser.screenshot("settings");
    check_accessible(&browser, "settings");

    // cluster-c comes back shipping a changed `generic`, which the operator had edited: a
    // conflict, shown side by side, resolved from the page.
    let cluster_side = "# generic preseed, cluster-c's own\n";
    clusters[2] = start_demo_cluster(&site, "cluster-c", 2, &[("generic", cluster_side)]);
    site.wait_for("the conflict on generic", Duration::from_secs(60), || {
        get(&site.api(), "/api/v1/preseeds/generic").is_ok_and(|p| p["in_conflict"] == json!(true))
    });
    browser.goto(&format!("{api}/#/preseeds/generic"));
    browser.wait(
        "the conflict side by side, and the diff",
        "return !!document.querySelector('#preseed-detail .side') && !!document.querySelector('#diff-out .diff .add')",
    );
    browser.screenshot("preseeds");
    check_accessible(&browser, "preseeds");
    browser.click("#keep-operator");
    site.wait_for("the conflict resolved", Duration::from_secs(30), || {
        get(&site.api(), "/api/v1/preseeds/generic").is_ok_and(|p| {
            p["in_conflict"] == json!(false) && p["current"]["origin"] == json!("operator")
        })
    });
    browser.click("#nav a[data-view=audit]");
    browser.wait(
        "the audit log",
        "return !!document.querySelector('#audit tbody tr')",
    );
    browser.screenshot("audit");
    check_accessible(&browser, "audit");

    // The clusters view's admin actions: enroll a new cluster (its token shown once), revoke
    // a connected one (cut off at once), remove a disconnected one.
    browser.click("#nav a[data-view=clusters]");
    browser.wait(
        "the enroll form",
        "return !!document.getElementById('enroll-form')",
    );
    browser.type_into("#enroll-name", "cluster-new");
    browser.click("#enroll-form button[type=submit]");
    browser.wait(
        "the enrollment token",
        "const t = document.getElementById('enroll-token'); return !!t && t.value.startsWith('osmj1.')",
    );
    check_accessible(&browser, "clusters-enrolled");
    browser.script("window.confirm = () => true; return true");
    let b = id_of("cluster-b");
    browser.click(&format!(
        "#clusters tr[data-cluster=\"{b}\"] button[aria-label=\"Revoke {b}\"]"
    ));
    site.wait_for("cluster-b cut off", Duration::from_secs(30), || {
        get(&site.api(), "/api/v1/clusters").is_ok_and(|list| {
            list.as_array()
                .into_iter()
                .flatten()
                .any(|c| c["id"] == json!(b) && c["connected"] == json!(false))
        })
    });
    let a = id_of("cluster-a");
    clusters[0].kill();
    browser.wait(
        "cluster-a disconnected, so it can be removed",
        &format!("const r = document.querySelector('#clusters tr[data-cluster=\"{a}\"] button[aria-label=\"Remove {a}\"]'); return !!r && !r.disabled"),
    );
    browser.click(&format!(
        "#clusters tr[data-cluster=\"{a}\"] button[aria-label=\"Remove {a}\"]"
    ));
    browser.wait(
        "cluster-a's row gone",
        &format!("return !document.querySelector('#clusters tr[data-cluster=\"{a}\"]')"),
    );
    assert!(!reported_clusters(&site.api()).contains(&a));

    let console = browser.console();
    let errors: Vec<&Value> = console
        .iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .collect();
    assert!(errors.is_empty(), "browser console: {errors:?}");
}

/// Chromium and chromedriver, or why not (the test then passes, except under CI).
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    match (
        which("chromedriver"),
        which("chromium").or_else(|| which("chromium-browser")),
    ) {
        (Some(driver), Some(chromium)) => Some((driver, chromium)),
        _ => {
            let why = "chromium and chromedriver are not installed (apt-get install chromium chromium-driver; .ci/run does)";
            if std::env::var_os("CI").is_some() {
                panic!("under CI the browser test must run: {why}");
            }
            eprintln!("browser test skipped: {why}");
            None
        }
    }
}

/// The page with 1,000 clusters (the benchmark's mesh size), in-process over loopback TCP
/// against a real regiond: the matrix pages its columns, and the time to the first view is
/// printed (a figure, not asserted: see the report in the issue).
#[test]
#[ignore = "starts 1,000 clusters; run with --ignored to measure the first render"]
fn the_page_at_a_thousand_clusters() {
    const CLUSTERS: usize = 1_000;
    let Some((driver_bin, chromium)) = browser_binaries() else {
        return;
    };
    let site = Site::new();
    // `OSMESH_BROWSER_REGIOND=target/release/regiond` measures a release build.
    let _region = match std::env::var_os("OSMESH_BROWSER_REGIOND") {
        Some(binary) => site.start_region_with(Path::new(&binary)),
        None => site.start_region(),
    };
    for variant in 0..3 {
        write_sample_tree(&site.path(&format!("tree-{variant}")), variant).expect("sample tree");
    }
    let rpc = site.rpc();
    let dir = site.dir.path().to_path_buf();
    let secret = site.secret_file.clone();
    std::thread::spawn(move || {
        let system = actix_rt::System::new();
        system.block_on(async move {
            for i in 0..CLUSTERS {
                let config = ClusterConfig::from_args(ClusterArgs {
                    id: None,
                    name: format!("c{i:04}"),
                    regions: vec![rpc.clone()],
                    // Compatibility mode: 1,000 enrollments would measure enrollment, not the page.
                    secret_file: Some(secret.clone()),
                    state_dir: None,
                    enroll_token_file: None,
                    images: dir.join(format!("tree-{}", i % 3)),
                    declared_os: None,
                    preseeds: None,
                    rescan_secs: 3600,
                })
                .expect("cluster config");
                osmesh_cluster::start(config);
            }
        });
        system.run().ok();
    });
    let started = Instant::now();
    site.wait_for("1,000 clusters", Duration::from_secs(900), || {
        std::thread::sleep(Duration::from_millis(900));
        reported_clusters(&site.api()).len() == CLUSTERS
    });
    eprintln!("{CLUSTERS} clusters reported in {:?}", started.elapsed());
    let driver = Driver::start(&driver_bin);
    let browser = Browser::open(&driver, &chromium);
    let api = site.api();
    browser.goto(&format!("{api}/login"));
    browser.type_into("#token", &format!("{}{ENTER}", site.token));
    for round in 0..3 {
        // A new query string each round: a full load, not a same-document hash change.
        browser.goto(&format!("{api}/?round={round}#/matrix"));
        browser.wait(
            "the first page of columns",
            "return document.querySelectorAll('#matrix thead th[data-cluster]').length === 12",
        );
        let figures = browser.script(
            "const m = performance.getEntriesByName('osmesh:first-view')[0]; \
             const n = performance.getEntriesByType('navigation')[0]; \
             const v = performance.getEntriesByType('resource').find(r => r.name.endsWith('/api/v1/osystems')); \
             return [m ? m.startTime : null, n ? n.responseEnd : null, \
                     document.querySelector('.pager span').textContent, \
                     v ? [v.startTime, v.responseEnd, v.encodedBodySize, v.decodedBodySize] : null]",
        );
        eprintln!(
            "round {round}: first view at {} ms after navigation start (document loaded at {} ms; \
             the view [requested at ms, received at ms, bytes on the wire, bytes]: {}); {}",
            figures[0], figures[1], figures[3], figures[2]
        );
        assert_eq!(figures[2], json!("Clusters 1–12 of 1,000"));
    }
    browser.screenshot("matrix-1000");
    let errors: Vec<Value> = browser
        .console()
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "browser console: {errors:?}");
}
