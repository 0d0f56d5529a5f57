//! Issue 14, "bounded under abuse": each attack of the issue's table against a real `regiond`
//! (and a real `clusterd` where a genuine cluster matters), over loopback only, while a poller
//! reads the cached view every 50 ms. Each test asserts the bound: the cached read keeps
//! answering (never stalled: p99 under 1.5 s), region RSS stays under `RSS_BOUND_MIB`, the attacker is refused
//! or cut off, and where it matters a genuine cluster (re)connects.
//!
//! Attack sizes are scaled down from the issue's (hundreds of connections, not 20,000) so the
//! file runs in well under three minutes on a loaded two-core machine; each still exceeds the
//! bound it exercises. Attackers that must be told apart from genuine clients by address
//! connect from 127.0.0.2 (still loopback) to regiond on 127.0.0.1.
//!
//! Each test prints one `FIGURE` line (`--nocapture`) before asserting, for the before/after
//! table. `ABUSE_REGIOND=/path/to/regiond` runs the same attacks against another build.

mod common;

use common::{Daemon, Site};
use osmesh_net::envelope::{encode_body, encode_frame, Kind};
use osmesh_net::messages::{method, PreseedTemplate, Register, ReportPreseedTemplates};
use osmesh_net::{dial_handshake, Dialer, FrameConn, HandshakeConfig, Secret};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The RSS figure regiond must stay under during every attack (debug build; idle is ~20 MiB).
const RSS_BOUND_MIB: u64 = 300;

/// What "still served" means for the cached read during an attack: never a stall. A region
/// whose thread an attacker holds shows seconds here (issue #11 measured 10.5 s); the bound is
/// wide on purpose, because a debug build on a loaded 2-core CI machine sees 200 ms p99s with no
/// attack at all. The p99 itself is printed as a FIGURE line; speed targets live in benchmarks.
const P99_BOUND: Duration = Duration::from_millis(1500);

/// The secret the site's files hold (see `common::Site`).
const SECRET: &[u8] = common::SITE_SECRET.as_bytes();

// ------------------------------------------------------------------ harness

/// Starts regiond (or `ABUSE_REGIOND`) on port 0 and waits for its API.
fn start_region(site: &Site) -> Daemon {
    let binary =
        std::env::var("ABUSE_REGIOND").unwrap_or_else(|_| env!("CARGO_BIN_EXE_regiond").into());
    site.start_region_with(std::path::Path::new(&binary))
}

/// Every API request of this file passes through here: the site's admin token goes on it.
fn authorized(request: ureq::Request) -> ureq::Request {
    common::authorize(request)
}

/// One API call: (status, body as JSON or `Null`).
fn api(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let request = authorized(ureq::request(method, &format!("{base}{path}")))
        .timeout(Duration::from_secs(30));
    let result = match body {
        Some(body) => request.send_json(body.clone()),
        None => request.call(),
    };
    match result {
        Ok(r) => (r.status(), r.into_json().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or_default()),
        Err(_) => (0, serde_json::Value::Null),
    }
}

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Reads the cached view every 50 ms over one keep-alive connection, and samples the
/// region's RSS, until stopped.
struct Poller {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<Duration>, usize, u64)>,
}

struct PollFigures {
    p99: Duration,
    failures: usize,
    reads: usize,
    peak_rss_mib: u64,
}

impl Poller {
    fn start(base: &str, pid: u32) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let (base, flag) = (base.to_owned(), stop.clone());
        let thread = std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build();
            let (mut times, mut failures, mut peak) = (Vec::new(), 0, 0);
            // One untimed read opens the keep-alive connection the timed ones reuse.
            let _ = authorized(agent.get(&format!("{base}/api/v1/osystems"))).call();
            let started = Instant::now();
            // At least 2 s of reads, so a short attack still gives a p99 of ~40 reads.
            while !flag.load(Ordering::Relaxed) || started.elapsed() < Duration::from_secs(2) {
                let started = Instant::now();
                let ok = authorized(agent.get(&format!("{base}/api/v1/osystems")))
                    .call()
                    .is_ok_and(|r| r.status() == 200 && r.into_string().is_ok());
                times.push(started.elapsed());
                failures += usize::from(!ok);
                peak = peak.max(rss_mib(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            (times, failures, peak)
        });
        Poller { stop, thread }
    }

    fn finish(self) -> PollFigures {
        self.stop.store(true, Ordering::Relaxed);
        let (mut times, failures, peak_rss_mib) = self.thread.join().expect("poller");
        times.sort();
        let p99 = times
            .get((times.len() * 99 / 100).min(times.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default();
        PollFigures {
            p99,
            failures,
            reads: times.len(),
            peak_rss_mib,
        }
    }
}

impl PollFigures {
    fn print(&self, attack: &str, extra: &str) {
        eprintln!(
            "FIGURE {attack}: cached p99 {} ms ({} reads, {} failed), peak RSS {} MiB; {extra}",
            self.p99.as_millis(),
            self.reads,
            self.failures,
            self.peak_rss_mib
        );
    }

    fn assert_bounded(&self) {
        assert!(self.p99 < P99_BOUND, "cached read p99 {:?}", self.p99);
        assert_eq!(self.failures, 0, "cached reads failed during the attack");
        assert!(
            self.peak_rss_mib < RSS_BOUND_MIB,
            "region RSS reached {} MiB",
            self.peak_rss_mib
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The address attackers connect from: 127.0.0.2 (loopback) so they are a different source
/// than the genuine clients on 127.0.0.1; 127.0.0.1 where the kernel refuses it.
async fn attacker_socket(to: &str) -> std::io::Result<tokio::net::TcpStream> {
    let to: std::net::SocketAddr = to.parse().expect("addr");
    let socket = tokio::net::TcpSocket::new_v4()?;
    if socket.bind("127.0.0.2:0".parse().expect("addr")).is_err() {
        let socket = tokio::net::TcpSocket::new_v4()?;
        return socket.connect(to).await;
    }
    socket.connect(to).await
}

/// An authenticated RPC connection as cluster `identity` (an insider turned hostile).
async fn authenticated(rpc: &str, identity: &str) -> FrameConn {
    // Compatibility mode (the site's regiond has a secret file): TLS without a client
    // certificate, the region authenticated by the secret's proofs.
    let tls = osmesh_net::tls::cluster_client_config(osmesh_net::RegionTrust::SecretProves, None)
        .expect("TLS client configuration");
    let conn = osmesh_net::TlsDialer::new(tls, osmesh_net::DEFAULT_MAX_FRAME)
        .dial(rpc)
        .await
        .expect("dial");
    let cfg = HandshakeConfig::new(identity, Secret::new(SECRET));
    dial_handshake(conn, &cfg, [9; 32])
        .await
        .expect("handshake")
        .conn
}

/// Sends one call and waits for its reply (or error) frame; `None` if the connection ended.
async fn call(conn: &mut FrameConn, id: u64, method: &str, body: &[u8]) -> Option<Kind> {
    use futures::{SinkExt, StreamExt};
    conn.sink
        .send(encode_frame(id, Kind::Call, method, body))
        .await
        .ok()?;
    loop {
        let frame = conn.stream.next().await?.ok()?;
        let envelope = osmesh_net::Envelope::decode(&frame).ok()?;
        if envelope.id == id && matches!(envelope.kind, Kind::Reply | Kind::Error) {
            return Some(envelope.kind);
        }
    }
}

/// A region with one genuine cluster reporting, and a poller on the cached view.
fn region_with_cluster(site: &Site) -> (Daemon, Daemon) {
    let region = start_region(site);
    let cluster = site.start_cluster("cluster-a", 0);
    site.wait_for("the cluster to report", Duration::from_secs(30), || {
        common::reported_clusters(&site.api()) == ["cluster-a"]
    });
    (region, cluster)
}

/// Restarts the genuine cluster and returns how long until the region lists it connected.
fn cluster_reconnect_time(site: &Site, cluster: &mut Daemon) -> Duration {
    cluster.kill();
    site.wait_for(
        "the region to see the cluster gone",
        Duration::from_secs(20),
        || common::reported_clusters(&site.api()).is_empty(),
    );
    let started = Instant::now();
    *cluster = site.start_cluster("cluster-a", 0);
    while started.elapsed() < Duration::from_secs(30) {
        if common::reported_clusters(&site.api()) == ["cluster-a"] {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Duration::from_secs(30)
}

/// Lets this test process hold more than 1,024 sockets (soft limit to the hard one).
fn raise_own_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// A genuine cluster (re)connects within this, process start-up included; the issue's bound
/// is 2 s, the margin is for a loaded two-core machine.
const RECONNECT_BOUND: Duration = Duration::from_secs(5);

// ------------------------------------------------------------------ HTTP

#[test]
fn slow_http_bodies_are_cut_off_at_the_request_deadline() {
    const CONNECTIONS: usize = 300;
    let site = Site::new();
    let region = start_region(&site);
    let poller = Poller::start(&site.api(), region.child.id());
    let rt = runtime();
    let http = site.http().clone();
    let (opened, closed_in_time, refused_at_once, elapsed) = rt.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let http = http.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = attacker_socket(&http).await.ok()?;
                let head = "PUT /api/v1/settings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";
                s.write_all(head.as_bytes()).await.ok()?;
                let mut buf = vec![0u8; 4096];
                let mut answer = Vec::new();
                // The server must answer or hang up; give it 40 s.
                let read = tokio::time::timeout(Duration::from_secs(40), async {
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => answer.extend_from_slice(&buf[..n]),
                        }
                    }
                });
                let closed = read.await.is_ok();
                Some((closed, answer.starts_with(b"HTTP/1.1 503")))
            }));
        }
        let (mut opened, mut closed, mut refused) = (0, 0, 0);
        for task in tasks {
            if let Ok(Some((done, at_once))) = task.await {
                opened += 1;
                closed += usize::from(done);
                refused += usize::from(at_once);
            }
        }
        (opened, closed, refused, started.elapsed())
    });
    let figures = poller.finish();
    figures.print(
        "slow HTTP bodies",
        &format!(
            "{closed_in_time} of {opened} connections closed by the server ({refused_at_once} at once, over the per-source budget), all within {} s",
            elapsed.as_secs()
        ),
    );
    assert_eq!(opened, CONNECTIONS);
    assert_eq!(
        closed_in_time, opened,
        "the region kept slow connections open"
    );
    assert!(
        refused_at_once > 0,
        "no connection over the per-source budget was refused"
    );
    figures.assert_bounded();
}

#[test]
fn oversized_bodies_and_long_uris_get_json_refusals() {
    let site = Site::new();
    let _region = start_region(&site);
    let big = serde_json::json!({ "value": "x".repeat(2 << 20) });
    let (status, body) = api(&site.api(), "PUT", "/api/v1/settings", Some(&big));
    let long = format!("/api/v1/osystems/{}/releases/x", "a".repeat(10_000));
    let (uri_status, uri_body) = api(&site.api(), "GET", &long, None);
    eprintln!(
        "FIGURE oversized body / long URI: body {status} {body}; URI {uri_status} {uri_body}"
    );
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "body_too_large");
    assert_eq!(uri_status, 414, "{uri_body}");
    assert_eq!(uri_body["code"], "uri_too_long");
}

// ------------------------------------------------------------------ templates

fn a_preseed(site: &Site, rt: &tokio::runtime::Runtime) -> i64 {
    let rpc = site.rpc().clone();
    rt.block_on(async move {
        let mut conn = authenticated(&rpc, "tmpl-cluster").await;
        let register = Register {
            cluster: osmesh_core::ClusterId::new("tmpl-cluster"),
            name: "tmpl-cluster".into(),
            capabilities: vec![],
        };
        call(&mut conn, 1, method::REGISTER, &encode_body(&register)).await;
        let report = ReportPreseedTemplates {
            templates: vec![PreseedTemplate {
                name: "generic".into(),
                osystem: None,
                content: "ok {{ hostname }}\n".into(),
            }],
        };
        call(
            &mut conn,
            2,
            method::REPORT_PRESEED_TEMPLATES,
            &encode_body(&report),
        )
        .await;
    });
    1
}

#[test]
fn hostile_templates_are_refused_by_their_limits_while_reads_keep_answering() {
    let site = Site::new();
    let region = start_region(&site);
    let rt = runtime();
    let version = a_preseed(&site, &rt);
    let poller = Poller::start(&site.api(), region.child.id());
    let looping =
        "{% for a in range(100000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}ok";
    let base = site.api();
    let edit = |content: &str| {
        let body = serde_json::json!({"content": content, "based_on_version": version});
        let started = Instant::now();
        let (status, answer) = api(&base, "PUT", "/api/v1/preseeds/generic", Some(&body));
        (status, answer, started.elapsed())
    };
    // Two at once, as in the issue.
    let (first, second) = std::thread::scope(|s| {
        let a = s.spawn(|| edit(looping));
        let b = s.spawn(|| edit(looping));
        (a.join().expect("edit"), b.join().expect("edit"))
    });
    let huge = edit(r#"{% for i in range(4) %}{{ "x" * 100000000 }}{% endfor %}"#);
    let figures = poller.finish();
    figures.print(
        "hostile templates",
        &format!(
            "loop: {} and {} in {} and {} ms; 400 MB output: {} in {} ms ({})",
            first.0,
            second.0,
            first.2.as_millis(),
            second.2.as_millis(),
            huge.0,
            huge.2.as_millis(),
            huge.1["message"]
        ),
    );
    for (status, answer, took) in [&first, &second] {
        assert_eq!(*status, 422, "{answer}");
        assert_eq!(answer["code"], "template_limit");
        assert!(*took < Duration::from_secs(5), "refused after {took:?}");
    }
    // The output bound or, on a slow machine, the deadline before it.
    assert_eq!(huge.0, 422, "{}", huge.1);
    assert_eq!(huge.1["code"], "template_limit", "{}", huge.1);
    figures.assert_bounded();
    // Nothing of it was stored.
    let (_, shown) = api(&site.api(), "GET", "/api/v1/preseeds/generic", None);
    assert_eq!(shown["current"]["version"], 1, "{shown}");
}

// ------------------------------------------------------------------ RPC before authentication

#[test]
fn large_frames_before_the_handshake_are_refused_at_the_prefix() {
    const CONNECTIONS: usize = 300;
    const ANNOUNCED: usize = 4 * 1024 * 1024;
    let site = Site::new();
    let region = start_region(&site);
    let poller = Poller::start(&site.api(), region.child.id());
    let rt = runtime();
    let rpc = site.rpc().clone();
    let (cut, elapsed) = rt.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let started = Instant::now();
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let rpc = rpc.clone();
                tokio::spawn(async move {
                    let mut s = attacker_socket(&rpc).await.ok()?;
                    s.write_all(&(ANNOUNCED as u32).to_be_bytes()).await.ok()?;
                    let chunk = vec![0u8; 64 * 1024];
                    let sent = tokio::time::timeout(Duration::from_secs(20), async {
                        for _ in 0..(ANNOUNCED / chunk.len()) {
                            if s.write_all(&chunk).await.is_err() {
                                return false;
                            }
                        }
                        true
                    });
                    let all_sent = sent.await.unwrap_or(true);
                    // Cut off means the server hung up before taking the whole frame.
                    let mut byte = [0u8; 1];
                    let hung_up = matches!(
                        tokio::time::timeout(Duration::from_secs(20), s.read(&mut byte)).await,
                        Ok(Ok(0) | Err(_))
                    );
                    Some(!all_sent || hung_up)
                })
            })
            .collect();
        let mut cut = 0;
        for task in tasks {
            cut += usize::from(matches!(task.await, Ok(Some(true))));
        }
        (cut, started.elapsed())
    });
    let figures = poller.finish();
    figures.print(
        "4 MiB frames before the handshake",
        &format!(
            "{cut} of {CONNECTIONS} cut off, {} ms in all",
            elapsed.as_millis()
        ),
    );
    assert_eq!(cut, CONNECTIONS);
    figures.assert_bounded();
}

#[test]
fn silent_handshakes_from_one_source_leave_room_for_a_genuine_cluster() {
    // The issue's figure: more than the 1,024 global handshake slots.
    const CONNECTIONS: usize = 1_100;
    raise_own_fd_limit();
    let site = Site::new();
    let (region, mut cluster) = region_with_cluster(&site);
    let poller = Poller::start(&site.api(), region.child.id());
    let rpc = site.rpc().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // Silent connections, each re-opened as soon as the region closes it.
    let attack = std::thread::spawn(move || {
        runtime().block_on(async move {
            use tokio::io::AsyncReadExt;
            let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let tasks: Vec<_> = (0..CONNECTIONS)
                .map(|_| {
                    let (rpc, flag, refused) = (rpc.clone(), flag.clone(), refused.clone());
                    tokio::spawn(async move {
                        while !flag.load(Ordering::Relaxed) {
                            let Ok(mut s) = attacker_socket(&rpc).await else {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            };
                            let opened = Instant::now();
                            let mut byte = [0u8; 1];
                            let _ =
                                tokio::time::timeout(Duration::from_secs(12), s.read(&mut byte))
                                    .await;
                            if opened.elapsed() < Duration::from_millis(500) {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                let _ = task.await;
            }
            refused.load(Ordering::Relaxed)
        })
    });
    std::thread::sleep(Duration::from_secs(2));
    let reconnect = cluster_reconnect_time(&site, &mut cluster);
    stop.store(true, Ordering::Relaxed);
    let figures = poller.finish();
    let refused_at_once = attack.join().unwrap_or(0);
    let log = region.log_text();
    let warnings = log.lines().filter(|l| l.contains("handshake")).count();
    figures.print(
        "silent handshakes from one source",
        &format!(
            "genuine cluster reconnected in {} ms; {refused_at_once} attacker connections closed at once; {warnings} handshake log lines",
            reconnect.as_millis()
        ),
    );
    assert!(
        reconnect < RECONNECT_BOUND,
        "the genuine cluster needed {reconnect:?}"
    );
    assert!(
        refused_at_once > 0,
        "no attacker connection was refused at once"
    );
    assert!(warnings < 200, "{warnings} handshake log lines");
    figures.assert_bounded();
}

// ------------------------------------------------------------------ RPC after authentication

#[test]
fn a_peer_that_floods_pings_and_never_reads_is_cut_off() {
    let site = Site::new();
    let (region, mut cluster) = region_with_cluster(&site);
    let poller = Poller::start(&site.api(), region.child.id());
    let rt = runtime();
    let rpc = site.rpc().clone();
    let (cut, elapsed) = rt.block_on(async move {
        use futures::SinkExt;
        let mut conn = authenticated(&rpc, "flooder").await;
        let started = Instant::now();
        let ping = encode_frame(1, Kind::Ping, "", &[]);
        let flood = async {
            loop {
                for _ in 0..1000 {
                    if conn.sink.feed(ping.clone()).await.is_err() {
                        return true;
                    }
                }
                if conn.sink.flush().await.is_err() {
                    return true;
                }
            }
        };
        let cut = tokio::time::timeout(Duration::from_secs(20), flood)
            .await
            .unwrap_or(false);
        (cut, started.elapsed())
    });
    let reconnect = cluster_reconnect_time(&site, &mut cluster);
    let figures = poller.finish();
    figures.print(
        "ping flood, never reading",
        &format!(
            "cut off: {cut} after {} ms; genuine cluster reconnected in {} ms",
            elapsed.as_millis(),
            reconnect.as_millis()
        ),
    );
    assert!(cut, "the flooding peer was not cut off within 20 s");
    assert!(
        reconnect < RECONNECT_BOUND,
        "the genuine cluster needed {reconnect:?}"
    );
    figures.assert_bounded();
}

#[test]
fn a_peer_streaming_large_calls_without_reading_is_paced_and_bounded() {
    let site = Site::new();
    let region = start_region(&site);
    let poller = Poller::start(&site.api(), region.child.id());
    let rt = runtime();
    let rpc = site.rpc().clone();
    let (cut, sent_mib, elapsed) = rt.block_on(async move {
        use futures::SinkExt;
        let mut conn = authenticated(&rpc, "streamer").await;
        let started = Instant::now();
        // 1 MiB calls the region must decode and refuse, as fast as TCP takes them.
        let body = vec![0u8; 1 << 20];
        let mut sent = 0u64;
        let flood = async {
            for id in 1.. {
                if conn
                    .sink
                    .send(encode_frame(id, Kind::Call, "Unknown", &body))
                    .await
                    .is_err()
                {
                    return true;
                }
                sent += 1;
                if sent >= 500 {
                    return false;
                }
            }
            false
        };
        let cut = tokio::time::timeout(Duration::from_secs(20), flood)
            .await
            .unwrap_or(false);
        (cut, sent, started.elapsed())
    });
    let figures = poller.finish();
    figures.print(
        "1 MiB calls, never reading",
        &format!(
            "cut off: {cut} after {sent_mib} MiB sent in {} ms",
            elapsed.as_millis()
        ),
    );
    // Its replies are small, so a region that keeps up need not cut it off: inbound slots
    // and TCP backpressure pace it, and the bound is the region's memory and its readers.
    figures.assert_bounded();
}

#[test]
fn an_oversized_template_report_is_refused_whole() {
    // Over the bound of 1,000 per report; the issue's 110,000 only costs more to decode.
    const TEMPLATES: usize = 1_500;
    let site = Site::new();
    let region = start_region(&site);
    let poller = Poller::start(&site.api(), region.child.id());
    let rt = runtime();
    let rpc = site.rpc().clone();
    let db = site.path("region.db");
    let before = std::fs::metadata(&db).map_or(0, |m| m.len());
    let answers = rt.block_on(async move {
        let mut conn = authenticated(&rpc, "bulk-cluster").await;
        let register = Register {
            cluster: osmesh_core::ClusterId::new("bulk-cluster"),
            name: "bulk-cluster".into(),
            capabilities: vec![],
        };
        call(&mut conn, 1, method::REGISTER, &encode_body(&register)).await;
        let mut answers = Vec::new();
        for round in 0..3u64 {
            let report = ReportPreseedTemplates {
                templates: (0..TEMPLATES)
                    .map(|i| PreseedTemplate {
                        name: format!("t{round}_{i}"),
                        osystem: None,
                        content: "x".repeat(200),
                    })
                    .collect(),
            };
            let body = encode_body(&report);
            answers.push(
                call(
                    &mut conn,
                    2 + round,
                    method::REPORT_PRESEED_TEMPLATES,
                    &body,
                )
                .await,
            );
        }
        answers
    });
    let figures = poller.finish();
    let after = std::fs::metadata(&db).map_or(0, |m| m.len());
    let (_, list) = api(&site.api(), "GET", "/api/v1/preseeds", None);
    let stored = list.as_array().map_or(0, Vec::len);
    figures.print(
        "template reports of 1,500",
        &format!(
            "answers {answers:?}; {stored} preseeds stored; database {} → {} KiB",
            before / 1024,
            after / 1024
        ),
    );
    assert!(
        answers.iter().all(|a| *a == Some(Kind::Error)),
        "{answers:?}"
    );
    assert_eq!(stored, 0);
    figures.assert_bounded();
}

// ------------------------------------------------------------------ stored fields and history

#[test]
fn hostile_node_fields_are_refused() {
    let site = Site::new();
    let (_region, _cluster) = region_with_cluster(&site);
    let enlist = |system_id: &str, hostname: &str, power: serde_json::Value| {
        let body = serde_json::json!({
            "hostname": hostname, "arch": "amd64", "cluster": "cluster-a",
            "system_id": system_id, "power_type": "ipmi", "power_parameters": power,
        });
        api(&site.api(), "POST", "/api/v1/nodes", Some(&body))
    };
    // 900 KB: as long as fits under the 1 MiB body limit (a longer one is a 413).
    let mib = enlist(&"a".repeat(900_000), "n1", serde_json::json!({}));
    let nul = enlist("abc\0def", "n2", serde_json::json!({}));
    let bidi = enlist(
        "abc",
        "n3",
        serde_json::json!({"power_user": "admin\u{202E}nimda"}),
    );
    let fine = enlist(
        "abc123",
        "n4",
        serde_json::json!({"power_address": "10.0.0.1"}),
    );
    eprintln!(
        "FIGURE hostile node fields: 900 KB system_id {}, NUL {}, U+202E {}, genuine {}",
        mib.0, nul.0, bidi.0, fine.0
    );
    for (status, body) in [&mib, &nul, &bidi] {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body["code"], "bad_field", "{body}");
    }
    assert_eq!(fine.0, 201, "{}", fine.1);
}

#[test]
fn preseed_writes_are_bounded_rate_limited_and_history_paged() {
    let site = Site::new();
    let _region = start_region(&site);
    let rt = runtime();
    a_preseed(&site, &rt);
    let edit = |content: String, base: i64| {
        let body = serde_json::json!({"content": content, "based_on_version": base});
        api(&site.api(), "PUT", "/api/v1/preseeds/generic", Some(&body))
    };
    let megabyte = edit("x".repeat(1_000_000), 1);
    // Edits as fast as the client can: the burst passes, the rest are refused.
    let statuses: Vec<u16> = (1..=25)
        .map(|v| edit(format!("version {v}\n"), v).0)
        .collect();
    let history = format!("{}/api/v1/preseeds/generic/history", site.api());
    let response = authorized(ureq::get(&history)).call();
    let response = response.expect("history");
    let link = response.header("link").unwrap_or_default().to_owned();
    let page: serde_json::Value = response.into_json().expect("json");
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    eprintln!(
        "FIGURE preseed writes: 1 MB edit {}; 25 quick edits: {accepted} accepted, {limited} refused 429; history first page {} versions, next {link:?}",
        megabyte.0,
        page.as_array().map_or(0, Vec::len)
    );
    assert_eq!(megabyte.0, 422, "{}", megabyte.1);
    // The 1 MB edit spent one write of the burst of 20.
    assert_eq!((accepted, limited), (19, 6), "{statuses:?}");
    assert_eq!(page.as_array().map_or(0, Vec::len), 20);
    assert!(link.contains("after_version=20"), "{link}");
}
