//! Part 2: one region (`regiond`, a child process, so its resident memory is its own) and
//! many clusters over real loopback TCP, read through the HTTP API.
//!
//! The clusters run in "cluster host" children: this same executable started with
//! `--cluster-host`, each hosting `CLUSTERS_PER_HOST` cluster actors in one actix `System`.
//! Stopping 10% of the clusters is stopping one host: first `SIGSTOP` (connections stay open
//! and nothing answers, so the live read must give up at its deadline), then `SIGKILL`
//! (connections reset, so the region knows at once).

use crate::stats::{median_of, Figures};
use anyhow::{bail, Context, Result};
use osmesh_cluster::sample::{sample_declares_os, write_sample_tree, SAMPLE_DECLARED_OS};
use osmesh_cluster::{Args as ClusterArgs, ClusterConfig};
use serde::Serialize;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How many sample image trees the clusters take turns with (they differ, so views merge).
const SAMPLE_VARIANTS: usize = 3;
/// How long all clusters get to connect and push their first snapshot: 180 s, and 30 s more
/// per 1,000 clusters beyond the first 1,000.
fn connect_deadline(clusters: usize) -> Duration {
    Duration::from_secs(180 + 30 * (clusters.saturating_sub(1_000) / 1_000) as u64)
}
/// What "returns by its deadline" allows on top of the deadline: HTTP and JSON (issue 17:
/// 510 ms for a 500 ms deadline; the merge is inside the deadline).
pub const DEADLINE_MARGIN_MS: f64 = 10.0;

/// The sizes of one fan-out run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FanoutPlan {
    pub clusters: usize,
    pub clusters_per_host: usize,
    /// Sequential requests per read path with every cluster up.
    pub requests: usize,
    /// Sequential live requests with 10% of the clusters stopped or killed.
    pub degraded_requests: usize,
    /// The live reads' deadline (`timeout_ms`).
    pub live_deadline_ms: u64,
    /// Whether to restart the region once and measure the clusters' reconnect storm.
    pub restart: bool,
}

/// One read path's latencies and what the answers said.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReadFigures {
    pub latency: Figures,
    /// Fewest clusters that answered in any one response (live), or were in the view (cached).
    pub answered_min: usize,
    /// Most clusters named as not answering in one response, by reason.
    pub timed_out_max: usize,
    pub not_connected_max: usize,
    /// Live reads: the median of the region's own `elapsed_ms` (fan-out and merge, before the
    /// answer is rendered as JSON and sent).
    pub region_elapsed_p50_ms: Option<f64>,
    /// The median size of an answer's JSON body.
    pub body_bytes: usize,
}

/// The reads with one host stopped or killed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DegradedFigures {
    pub how: String,
    pub stopped_clusters: usize,
    pub live: ReadFigures,
    pub cached: ReadFigures,
    /// Whether every live read returned within the deadline plus `DEADLINE_MARGIN_MS`.
    pub live_within_deadline: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FanoutFigures {
    pub clusters: usize,
    pub live_deadline_ms: u64,
    pub connect_secs: f64,
    pub live: ReadFigures,
    pub cached: ReadFigures,
    /// The compact forms of the cached read (issue 17), all clusters up: `view=summary`,
    /// an unchanged view revalidated with `If-None-Match` (304, no body), and the full form
    /// compressed (`Accept-Encoding: gzip`; its `body_bytes` are the bytes on the wire).
    pub cached_summary: ReadFigures,
    pub cached_revalidated: ReadFigures,
    pub cached_gzip: ReadFigures,
    /// The floor under every read: `GET /api/v1/whoami` (the bearer token checked against
    /// the database, a tiny body), on the same keep-alive connection.
    pub floor: ReadFigures,
    pub stopped: DegradedFigures,
    pub killed: DegradedFigures,
    /// The region's VmRSS with every cluster connected, after the live reads.
    pub region_rss_mib: f64,
    /// The region's peak resident memory (VmHWM) over the whole run (of the restarted
    /// region when the run restarts it).
    pub region_peak_rss_mib: f64,
    /// The reconnect storm after the region restarted (`--restart`), if measured.
    pub reconnect: Option<ReconnectFigures>,
}

/// How the clusters came back after a region restart: seconds from the new region's start
/// until a share of the clusters was connected with a snapshot again. The spread between
/// the first and the last is the backoff's (equal jitter, `osmesh_net::backoff`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReconnectFigures {
    pub down_secs: f64,
    pub first_secs: f64,
    pub p10_secs: f64,
    pub p50_secs: f64,
    pub p90_secs: f64,
    pub all_secs: f64,
    /// Connected clusters per second over the storm, at most (polled every 200 ms).
    pub peak_per_sec: f64,
}

/// Runs the whole fan-out part; `progress` prints one line per step.
pub fn fanout(plan: FanoutPlan, regiond: &Path, progress: &dyn Fn(&str)) -> Result<FanoutFigures> {
    let dir = tempfile::tempdir()?;
    let files = BenchFiles::write(dir.path())?;
    let (rpc_addr, http_addr) = (free_addr()?, free_addr()?);
    let region = start_region(regiond, &files, &rpc_addr, &http_addr, dir.path())?;
    let token = create_admin_token(regiond, dir.path())?;
    let api = Api::new(&http_addr, &token);
    api.wait_up(Duration::from_secs(30))?;
    progress(&format!(
        "region up (pid {}), starting {} clusters",
        region.id(),
        plan.clusters
    ));
    let started = Instant::now();
    let mut hosts = start_hosts(plan, &files, &rpc_addr)?;
    api.wait_connected(plan.clusters, progress)?;
    let mut figures = FanoutFigures {
        clusters: plan.clusters,
        live_deadline_ms: plan.live_deadline_ms,
        connect_secs: started.elapsed().as_secs_f64(),
        ..FanoutFigures::default()
    };
    api.live_reads(plan.live_deadline_ms, plan.requests.min(10))?;
    progress(&format!("{} live reads", plan.requests));
    figures.live = api.live_reads(plan.live_deadline_ms, plan.requests)?;
    progress(&format!("{} cached reads", plan.requests));
    figures.cached = api.cached_reads(plan.requests)?;
    progress(&format!(
        "{} cached reads each: summary, revalidated (304), gzip; {0} of /whoami",
        plan.requests
    ));
    figures.cached_summary = api.summary_reads(plan.requests)?;
    figures.cached_revalidated = api.revalidated_reads(plan.requests)?;
    figures.cached_gzip = api.gzip_reads(plan.requests)?;
    figures.floor = api.floor_reads(plan.requests)?;
    figures.region_rss_mib = memory_mib(region.id(), "VmRSS")?;
    let mut region = region;
    if plan.restart {
        progress("restarting the region: the reconnect storm");
        let down = Duration::from_secs(2);
        drop(region);
        std::thread::sleep(down);
        region = start_region(regiond, &files, &rpc_addr, &http_addr, dir.path())?;
        let started = Instant::now();
        api.wait_up(Duration::from_secs(30))?;
        let mut storm = api.reconnect_storm(plan.clusters, started, progress)?;
        storm.down_secs = down.as_secs_f64();
        figures.reconnect = Some(storm);
    }

    let victim = hosts.remove(0);
    let stopped = plan.clusters_per_host.min(plan.clusters);
    progress(&format!(
        "SIGSTOP {stopped} clusters; live and cached reads"
    ));
    signal(&victim, libc::SIGSTOP)?;
    figures.stopped = api.degraded("SIGSTOP", stopped, plan)?;
    progress(&format!(
        "SIGKILL {stopped} clusters; live and cached reads"
    ));
    signal(&victim, libc::SIGKILL)?;
    drop(victim);
    api.wait_disconnected(stopped, Duration::from_secs(20))?;
    figures.killed = api.degraded("SIGKILL", stopped, plan)?;
    figures.region_peak_rss_mib = memory_mib(region.id(), "VmHWM")?;
    drop(hosts);
    drop(region);
    Ok(figures)
}

// ---- the cluster host child ----------------------------------------------------------

/// The arguments of `--cluster-host`.
#[derive(Debug)]
pub struct HostArgs {
    pub region: String,
    pub dir: PathBuf,
    pub first: usize,
    pub count: usize,
}

impl HostArgs {
    pub fn parse(args: &[String]) -> Result<HostArgs> {
        let value = |name: &str| -> Result<String> {
            let at = args.iter().position(|a| a == name);
            at.and_then(|i| args.get(i + 1))
                .cloned()
                .with_context(|| format!("--cluster-host needs {name}"))
        };
        Ok(HostArgs {
            region: value("--region")?,
            dir: PathBuf::from(value("--dir")?),
            first: value("--first")?.parse()?,
            count: value("--count")?.parse()?,
        })
    }
}

/// Runs `count` cluster actors in one actix `System` until stdin closes (the harness ended).
pub fn cluster_host(args: HostArgs) -> Result<()> {
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    let files = BenchFiles::at(&args.dir);
    let system = actix_rt::System::new();
    system.block_on(async {
        let mut clusters = Vec::with_capacity(args.count);
        for i in args.first..args.first + args.count {
            let config = ClusterConfig::from_args(files.cluster_args(i, &args.region))?;
            clusters.push(osmesh_cluster::start(config));
        }
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })
}

/// The shared files every process of the run reads: secret, image trees, declared OSes.
struct BenchFiles {
    dir: PathBuf,
}

impl BenchFiles {
    fn at(dir: &Path) -> BenchFiles {
        BenchFiles {
            dir: dir.to_path_buf(),
        }
    }

    fn write(dir: &Path) -> Result<BenchFiles> {
        let files = BenchFiles::at(dir);
        std::fs::write(files.secret(), hex::encode([7u8; 32]))?;
        // The daemons refuse a secret file others may read.
        std::fs::set_permissions(files.secret(), std::fs::Permissions::from_mode(0o600))?;
        std::fs::write(files.declared_os(), SAMPLE_DECLARED_OS)?;
        for variant in 0..SAMPLE_VARIANTS {
            write_sample_tree(&files.images(variant), variant)?;
        }
        Ok(files)
    }

    fn secret(&self) -> PathBuf {
        self.dir.join("shared-secret")
    }

    fn declared_os(&self) -> PathBuf {
        self.dir.join("declared-os.toml")
    }

    fn images(&self, variant: usize) -> PathBuf {
        self.dir.join(format!("boot-resources-{variant}"))
    }

    fn cluster_args(&self, index: usize, region: &str) -> ClusterArgs {
        let variant = index % SAMPLE_VARIANTS;
        ClusterArgs {
            id: None,
            name: format!("bench-cluster-{index:04}"),
            regions: vec![region.to_string()],
            secret_file: Some(self.secret()),
            state_dir: None,
            enroll_token_file: None,
            images: self.images(variant),
            declared_os: sample_declares_os(variant).then(|| self.declared_os()),
            preseeds: None,
            rescan_secs: 3600,
        }
    }
}

// ---- child processes -----------------------------------------------------------------

/// A child process that is killed and reaped when dropped.
struct ChildGuard(Child);

impl ChildGuard {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An admin token for the run, made in the region's database as an operator bootstraps one.
fn create_admin_token(regiond: &Path, dir: &Path) -> Result<String> {
    let out = Command::new(regiond)
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("region.db").display()))
        .args(["token", "create", "--name", "bench", "--role", "admin"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "regiond token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn start_region(
    regiond: &Path,
    files: &BenchFiles,
    rpc: &str,
    http: &str,
    dir: &Path,
) -> Result<ChildGuard> {
    let log = std::fs::File::create(dir.join("regiond.log"))?;
    let child = Command::new(regiond)
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("region.db").display()))
        .args(["--rpc-listen", rpc, "--http-listen", http])
        .arg("--secret-file")
        .arg(files.secret())
        .args(["--name", "bench-region"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", regiond.display()))?;
    Ok(ChildGuard(child))
}

fn start_hosts(plan: FanoutPlan, files: &BenchFiles, region: &str) -> Result<Vec<ChildGuard>> {
    let exe = std::env::current_exe()?;
    let mut hosts = Vec::new();
    let mut first = 0;
    while first < plan.clusters {
        let count = plan.clusters_per_host.min(plan.clusters - first);
        let child = Command::new(&exe)
            .arg("--cluster-host")
            .args(["--region", region])
            .arg("--dir")
            .arg(&files.dir)
            .args(["--first", &first.to_string(), "--count", &count.to_string()])
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start a cluster host")?;
        hosts.push(ChildGuard(child));
        first += count;
    }
    Ok(hosts)
}

fn signal(child: &ChildGuard, signal: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(child.id())?;
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    if unsafe { libc::kill(pid, signal) } != 0 {
        bail!("kill({pid}, {signal}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// An address on loopback that was free a moment ago (the daemon binds it next).
fn free_addr() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// A figure from /proc/<pid>/status (`VmRSS`, `VmHWM`), in MiB.
pub fn memory_mib(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kib / 1024.0)
}

// ---- the HTTP API --------------------------------------------------------------------

/// A keep-alive HTTP client of the region's API.
struct Api {
    agent: ureq::Agent,
    base: String,
    /// The `Authorization` header's value.
    bearer: String,
}

/// One HTTP exchange as the harness saw it (the body as ureq hands it: decompressed).
struct Reply {
    status: u16,
    etag: Option<String>,
    body: Vec<u8>,
    took: Duration,
}

/// How many clusters one answer names as answered, timed out and not connected.
#[derive(Clone, Copy, Default)]
struct AnswerCounts {
    answered: usize,
    timed_out: usize,
    not_connected: usize,
}

impl Api {
    fn new(http_addr: &str, token: &str) -> Api {
        Api {
            bearer: format!("Bearer {token}"),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(70))
                .build(),
            base: format!("http://{http_addr}/api/v1"),
        }
    }

    fn get(&self, path: &str) -> Result<serde_json::Value> {
        Ok(self.timed_get(path)?.0)
    }

    /// The answer, the size of its body, and how long the HTTP exchange took: from sending
    /// the request to the last byte of the body, not counting the harness's JSON parse.
    fn timed_get(&self, path: &str) -> Result<(serde_json::Value, usize, Duration)> {
        // ureq asks for gzip unless told otherwise, and the API compresses (#17): keep the
        // main rows uncompressed, comparable with the earlier runs.
        let reply = self.exchange(path, &[("Accept-Encoding", "identity")])?;
        let url = format!("{}{path}", self.base);
        let body = String::from_utf8(reply.body).with_context(|| format!("{url}: not UTF-8"))?;
        let value =
            serde_json::from_str(&body).with_context(|| format!("{url} answered {body:.200}"))?;
        Ok((value, body.len(), reply.took))
    }

    /// One GET with `headers`: status, `ETag`, the body's bytes, and the time from sending the request to the body's last byte.
    fn exchange(&self, path: &str, headers: &[(&str, &str)]) -> Result<Reply> {
        let url = format!("{}{path}", self.base);
        let started = Instant::now();
        let mut request = self.agent.get(&url).set("Authorization", &self.bearer);
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let response = request.call()?;
        let status = response.status();
        let etag = response.header("ETag").map(str::to_owned);
        let mut body = Vec::new();
        response.into_reader().read_to_end(&mut body)?;
        let took = started.elapsed();
        Ok(Reply {
            status,
            etag,
            body,
            took,
        })
    }

    fn wait_up(&self, within: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            match self.get("/clusters") {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() > within => bail!("the region never answered: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Connected clusters, and how many of them have pushed a snapshot.
    fn connected(&self) -> Result<(usize, usize)> {
        let clusters = self.get("/clusters")?;
        let list = clusters.as_array().context("/clusters is not a list")?;
        let connected: Vec<_> = list.iter().filter(|c| c["connected"] == true).collect();
        let with_snapshot = connected
            .iter()
            .filter(|c| !c["snapshot_age_ms"].is_null())
            .count();
        Ok((connected.len(), with_snapshot))
    }

    fn wait_connected(&self, clusters: usize, progress: &dyn Fn(&str)) -> Result<()> {
        let started = Instant::now();
        let mut last_report = Instant::now();
        loop {
            let (connected, with_snapshot) = self.connected()?;
            if connected == clusters && with_snapshot == clusters {
                progress(&format!(
                    "{clusters} clusters connected in {:.1} s",
                    started.elapsed().as_secs_f64()
                ));
                return Ok(());
            }
            let deadline = connect_deadline(clusters);
            if started.elapsed() > deadline {
                bail!("only {connected} of {clusters} clusters connected in {deadline:?}");
            }
            if last_report.elapsed() > Duration::from_secs(5) {
                progress(&format!(
                    "  {connected}/{clusters} connected, {with_snapshot} with snapshots"
                ));
                last_report = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls `/clusters` until all `clusters` are connected with a snapshot again, noting
    /// when each share of them was.
    fn reconnect_storm(
        &self,
        clusters: usize,
        started: Instant,
        progress: &dyn Fn(&str),
    ) -> Result<ReconnectFigures> {
        let mut series: Vec<(f64, usize)> = Vec::new();
        loop {
            let (_, back) = self.connected()?;
            let at = started.elapsed().as_secs_f64();
            series.push((at, back));
            if back >= clusters {
                break;
            }
            if started.elapsed() > connect_deadline(clusters) {
                bail!("only {back} of {clusters} clusters came back within the deadline");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let when = |share: f64| {
            let wanted = ((clusters as f64 * share).ceil() as usize).max(1);
            series
                .iter()
                .find(|(_, back)| *back >= wanted)
                .map_or(0.0, |(at, _)| *at)
        };
        let peak_per_sec = series
            .windows(2)
            .map(|w| (w[1].1.saturating_sub(w[0].1)) as f64 / (w[1].0 - w[0].0).max(1e-3))
            .fold(0.0, f64::max);
        let figures = ReconnectFigures {
            down_secs: 0.0,
            first_secs: when(1.0 / clusters as f64),
            p10_secs: when(0.1),
            p50_secs: when(0.5),
            p90_secs: when(0.9),
            all_secs: when(1.0),
            peak_per_sec,
        };
        progress(&format!(
            "{clusters} clusters back in {:.1} s (first {:.1}, half {:.1})",
            figures.all_secs, figures.first_secs, figures.p50_secs
        ));
        Ok(figures)
    }

    fn wait_disconnected(&self, stopped: usize, within: Duration) -> Result<()> {
        let started = Instant::now();
        let total = self.get("/clusters")?.as_array().map_or(0, Vec::len);
        while started.elapsed() < within {
            if self.connected()?.0 + stopped <= total {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("the region still counts killed clusters as connected after {within:?}")
    }

    fn reads(&self, path: &str, requests: usize) -> Result<ReadFigures> {
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(requests);
        let mut worst = AnswerCounts {
            answered: usize::MAX,
            ..AnswerCounts::default()
        };
        let mut elapsed = Vec::new();
        let mut sizes = Vec::new();
        for _ in 0..requests {
            let (answer, size, took) = self.timed_get(path)?;
            latencies.push(took);
            sizes.push(size as f64);
            if let Some(ms) = answer["elapsed_ms"].as_f64() {
                elapsed.push(ms);
            }
            let counts = count_answers(&answer)?;
            worst.answered = worst.answered.min(counts.answered);
            worst.timed_out = worst.timed_out.max(counts.timed_out);
            worst.not_connected = worst.not_connected.max(counts.not_connected);
        }
        Ok(ReadFigures {
            latency: Figures::from_latencies(latencies, started.elapsed()),
            answered_min: worst.answered,
            timed_out_max: worst.timed_out,
            not_connected_max: worst.not_connected,
            region_elapsed_p50_ms: (!elapsed.is_empty()).then(|| median_of(elapsed)),
            body_bytes: median_of(sizes) as usize,
        })
    }

    fn live_reads(&self, deadline_ms: u64, requests: usize) -> Result<ReadFigures> {
        self.reads(
            &format!("/osystems?live=true&timeout_ms={deadline_ms}"),
            requests,
        )
    }

    fn cached_reads(&self, requests: usize) -> Result<ReadFigures> {
        self.reads("/osystems", requests)
    }

    /// `view=summary`: counts by OS and release, no cluster lists.
    fn summary_reads(&self, requests: usize) -> Result<ReadFigures> {
        let path = "/osystems?view=summary";
        let mut answered = usize::MAX;
        self.timed_reads(requests, || {
            let (answer, size, took) = self.timed_get(path)?;
            let counted = answer["answered"]
                .as_u64()
                .context("a summary without `answered`")?;
            answered = answered.min(counted as usize);
            Ok((size, took))
        })
        .map(|figures| ReadFigures {
            answered_min: answered,
            ..figures
        })
    }

    /// A poller re-reading an unchanged mesh: `If-None-Match` with the view's `ETag`, which
    /// must answer 304 with no body every time (the sample trees do not change). It asks with
    /// the same `Accept-Encoding` each time, as a poller does: each coding has its own tag.
    fn revalidated_reads(&self, requests: usize) -> Result<ReadFigures> {
        const IDENTITY: (&str, &str) = ("Accept-Encoding", "identity");
        let first = self.exchange("/osystems", &[IDENTITY])?;
        let etag = first.etag.context("a cached read without an ETag")?;
        self.timed_reads(requests, || {
            let reply =
                self.exchange("/osystems", &[IDENTITY, ("If-None-Match", etag.as_str())])?;
            if reply.status != 304 || !reply.body.is_empty() {
                bail!(
                    "an unchanged view revalidated with its ETag answered {} with {} bytes",
                    reply.status,
                    reply.body.len()
                );
            }
            Ok((0, reply.took))
        })
    }

    /// The full cached form compressed: what a client asking for gzip waits for (ureq
    /// decompresses as it reads, as a client would). `body_bytes` is what crossed the wire,
    /// from one request on a plain socket (ureq hides the encoding it undid).
    fn gzip_reads(&self, requests: usize) -> Result<ReadFigures> {
        let (head, wire_bytes) = self.raw_get("/osystems", "gzip")?;
        if !head.to_ascii_lowercase().contains("content-encoding: gzip") {
            bail!("a cached read asking for gzip was not compressed: {head}");
        }
        let figures = self.timed_reads(requests, || {
            let reply = self.exchange("/osystems", &[("Accept-Encoding", "gzip")])?;
            Ok((reply.body.len(), reply.took))
        })?;
        Ok(ReadFigures {
            body_bytes: wire_bytes,
            ..figures
        })
    }

    /// One GET on its own connection (`Connection: close`), read raw: the response head and
    /// the number of body bytes on the wire (chunk framing included).
    fn raw_get(&self, path: &str, accept_encoding: &str) -> Result<(String, usize)> {
        use std::io::Write;
        let address = self
            .base
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .context("the API's base URL")?;
        let api_path = &self.base[self.base.find("/api").context("the API's base URL")?..];
        let mut stream = std::net::TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "GET {api_path}{path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: {}\r\n\
             Accept-Encoding: {accept_encoding}\r\nConnection: close\r\n\r\n",
            self.bearer
        )?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("a response without a head")?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        Ok((head, raw.len() - split - 4))
    }

    /// The HTTP and authentication floor: `/whoami`, no view at all.
    fn floor_reads(&self, requests: usize) -> Result<ReadFigures> {
        self.timed_reads(requests, || {
            let reply = self.exchange("/whoami", &[("Accept-Encoding", "identity")])?;
            Ok((reply.body.len(), reply.took))
        })
    }

    /// `requests` sequential reads, each answering its body size and latency.
    fn timed_reads(
        &self,
        requests: usize,
        mut read: impl FnMut() -> Result<(usize, Duration)>,
    ) -> Result<ReadFigures> {
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(requests);
        let mut sizes = Vec::with_capacity(requests);
        for _ in 0..requests {
            let (size, took) = read()?;
            latencies.push(took);
            sizes.push(size as f64);
        }
        Ok(ReadFigures {
            latency: Figures::from_latencies(latencies, started.elapsed()),
            body_bytes: median_of(sizes) as usize,
            ..ReadFigures::default()
        })
    }

    fn degraded(&self, how: &str, stopped: usize, plan: FanoutPlan) -> Result<DegradedFigures> {
        let live = self.live_reads(plan.live_deadline_ms, plan.degraded_requests)?;
        let cached = self.cached_reads(plan.requests)?;
        let limit_us = (plan.live_deadline_ms as f64 + DEADLINE_MARGIN_MS) * 1000.0;
        Ok(DegradedFigures {
            how: how.to_string(),
            stopped_clusters: stopped,
            live_within_deadline: live.latency.max_us <= limit_us,
            live,
            cached,
        })
    }
}

/// Counts the `clusters` parts of an `/osystems` answer by outcome.
fn count_answers(answer: &serde_json::Value) -> Result<AnswerCounts> {
    let parts = answer["clusters"]
        .as_array()
        .context("an /osystems answer without `clusters`")?;
    let mut counts = AnswerCounts::default();
    for part in parts {
        match &part["no_answer"] {
            serde_json::Value::Null => counts.answered += 1,
            serde_json::Value::String(s) if s == "Timeout" => counts.timed_out += 1,
            serde_json::Value::String(s) if s == "NotConnected" => counts.not_connected += 1,
            _ => {}
        }
    }
    Ok(counts)
}
