//! What a run reports: progress lines on stderr, the aligned table, the JSON document, and
//! the targets checked against the figures (reported, never asserted).

use crate::fanout::{DegradedFigures, FanoutFigures, FanoutPlan, ReadFigures, DEADLINE_MARGIN_MS};
use crate::rpc::{PeerFigures, RpcPlan, DEPTH};
use crate::sim::SimFigures;
use serde::Serialize;
use std::fmt::Write;
use std::time::Instant;

/// Everything one run measured, as written to the JSON file.
#[derive(Debug, Serialize)]
pub struct Run {
    /// UTC, `date -u` style.
    pub date: String,
    pub smoke: bool,
    pub cores: usize,
    /// /proc/loadavg's 1, 5 and 15-minute averages when the run started and ended.
    pub load_start: [f64; 3],
    pub load_end: [f64; 3],
    pub reply_frame_bytes: usize,
    /// osmesh's codec alone on the reply body (what each call costs beyond moving bytes).
    pub codec: Option<crate::reply::CodecFigures>,
    pub rpc_plan: Option<RpcPlan>,
    pub rpc: Vec<PeerFigures>,
    pub fanout_plan: Option<FanoutPlan>,
    pub fanout: Option<FanoutFigures>,
    pub sim: Option<SimFigures>,
    pub targets: Vec<TargetCheck>,
}

/// One of the targets, and whether this run met it.
#[derive(Debug, Serialize)]
pub struct TargetCheck {
    pub target: String,
    pub measured: String,
    pub met: bool,
}

impl Run {
    pub fn start(smoke: bool) -> Run {
        Run {
            date: utc_now(),
            smoke,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_start: load_average(),
            load_end: [0.0; 3],
            reply_frame_bytes: crate::reply::osmesh_frame_sizes().1,
            codec: None,
            rpc_plan: None,
            rpc: Vec::new(),
            fanout_plan: None,
            fanout: None,
            sim: None,
            targets: Vec::new(),
        }
    }

    pub fn finish(&mut self) {
        self.load_end = load_average();
        self.targets = targets(self);
    }

    fn peer(&self, prefix: &str) -> Option<&PeerFigures> {
        self.rpc.iter().find(|p| p.peer.starts_with(prefix))
    }
}

/// Numbered steps and indented details on stderr, each with the time since the start.
pub struct Progress {
    started: Instant,
    steps: usize,
    step: std::cell::Cell<usize>,
}

impl Progress {
    pub fn new(steps: usize) -> Progress {
        Progress {
            started: Instant::now(),
            steps,
            step: std::cell::Cell::new(0),
        }
    }

    pub fn step(&self, what: &str) {
        self.step.set(self.step.get() + 1);
        eprintln!(
            "[{}/{}] {what}  ({:.0} s)",
            self.step.get(),
            self.steps,
            self.started.elapsed().as_secs_f64()
        );
    }

    pub fn detail(&self, what: &str) {
        eprintln!(
            "      {what}  ({:.0} s)",
            self.started.elapsed().as_secs_f64()
        );
    }
}

fn targets(run: &Run) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    let peers = (run.peer("tarpc"), run.peer("raw TCP"));
    for label in ["osmesh memo, reply unchanged", "osmesh memo, reply changes"] {
        let (Some(ours), (Some(tarpc), Some(raw))) = (run.peer(label), peers) else {
            continue;
        };
        let (p50, tarpc_p50, raw_p50) = (
            ours.sequential.p50_us,
            tarpc.sequential.p50_us,
            raw.sequential.p50_us,
        );
        checks.push(TargetCheck {
            target: format!("{label}: sequential p50 ≤ tarpc's and ≤ 1.1× raw TCP's"),
            measured: format!("{p50:.1} µs vs tarpc {tarpc_p50:.1}, raw {raw_p50:.1}"),
            met: p50 <= tarpc_p50 && p50 <= 1.1 * raw_p50,
        });
        let (pipe, raw_pipe) = (ours.pipelined.calls_per_sec, raw.pipelined.calls_per_sec);
        checks.push(TargetCheck {
            target: format!("{label}: pipelined ≥ 0.9× raw TCP"),
            measured: format!(
                "{pipe:.0} calls/s, {:.2}× raw, {:.2}× tarpc",
                pipe / raw_pipe,
                pipe / tarpc.pipelined.calls_per_sec
            ),
            met: pipe >= 0.9 * raw_pipe,
        });
    }
    if let Some(f) = &run.fanout {
        let n = f.clusters;
        let live = f.live.latency.p99_us / 1000.0;
        checks.push(TargetCheck {
            target: format!("live fan-out to {n} clusters p99 ≤ 40 ms"),
            measured: format!("{live:.1} ms"),
            met: live <= 40.0,
        });
        let cached = f.cached.latency.p99_us / 1000.0;
        // Issue 17: 300 MiB at 10,000 clusters; below that, the issue-7 bound of 200 MiB.
        let rss_target = if n >= 10_000 { 300.0 } else { 200.0 };
        checks.push(TargetCheck {
            target: "cached read p99 ≤ 1 ms, full form".into(),
            measured: format!("{cached:.2} ms"),
            met: cached <= 1.0,
        });
        for (form, read) in [
            ("summary form", &f.cached_summary),
            ("unchanged view revalidated (304)", &f.cached_revalidated),
        ] {
            let p99 = read.latency.p99_us / 1000.0;
            checks.push(TargetCheck {
                target: format!("cached read p99 ≤ 1 ms, {form}"),
                measured: format!("{p99:.2} ms"),
                met: p99 <= 1.0,
            });
        }
        checks.push(TargetCheck {
            target: format!("region ≤ {rss_target:.0} MiB with {n} clusters"),
            measured: format!(
                "{:.0} MiB (peak {:.0} MiB)",
                f.region_rss_mib, f.region_peak_rss_mib
            ),
            met: f.region_rss_mib <= rss_target,
        });
        for degraded in [&f.stopped, &f.killed] {
            checks.push(TargetCheck {
                target: format!(
                    "live read with 10% {} returns by its {} ms deadline + {DEADLINE_MARGIN_MS} ms",
                    degraded.how, f.live_deadline_ms
                ),
                measured: format!("max {:.1} ms", degraded.live.latency.max_us / 1000.0),
                met: degraded.live_within_deadline,
            });
        }
    }
    checks
}

/// The aligned table a person reads.
pub fn table(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nosmesh-bench{}  {}  {} cores  load {:.2} {:.2} {:.2} at start, {:.2} {:.2} {:.2} at end",
        if run.smoke { " (smoke)" } else { "" },
        run.date,
        run.cores,
        run.load_start[0],
        run.load_start[1],
        run.load_start[2],
        run.load_end[0],
        run.load_end[1],
        run.load_end[2],
    );
    rpc_table(run, &mut out);
    if let (Some(f), Some(plan)) = (&run.fanout, &run.fanout_plan) {
        fanout_table(f, plan, &mut out);
    }
    if let Some(sim) = &run.sim {
        sim_table(sim, &mut out);
    }
    if !run.targets.is_empty() {
        let _ = writeln!(out, "\nTargets (reported, not asserted)");
        for t in &run.targets {
            let verdict = if t.met { "met   " } else { "MISSED" };
            let _ = writeln!(out, "  {verdict}  {:<72} {}", t.target, t.measured);
        }
    }
    out
}

fn rpc_table(run: &Run, out: &mut String) {
    let (Some(plan), Some(osmesh)) = (run.rpc_plan, run.rpc.first()) else {
        return;
    };
    let _ = writeln!(
        out,
        "\nRPC, one loopback connection: ListOperatingSystems, reply frame {} bytes; {} sequential \
         and {} pipelined ({DEPTH} in flight) calls, median of {} runs (AMP: fewer calls)",
        run.reply_frame_bytes, plan.sequential_calls, plan.pipelined_calls, plan.runs
    );
    let _ = writeln!(
        out,
        "  {:<28} {:>10} {:>9} {:>9} {:>7}   {:>10} {:>9} {:>9} {:>7}",
        "peer", "seq/s", "p50 µs", "p99 µs", "×osmesh", "pipe/s", "p50 µs", "p99 µs", "×osmesh"
    );
    for peer in &run.rpc {
        let (s, p) = (&peer.sequential, &peer.pipelined);
        let _ = writeln!(
            out,
            "  {:<28} {:>10.0} {:>9.1} {:>9.1} {:>7.2}   {:>10.0} {:>9.1} {:>9.1} {:>7.2}",
            peer.peer,
            s.calls_per_sec,
            s.p50_us,
            s.p99_us,
            s.calls_per_sec / osmesh.sequential.calls_per_sec,
            p.calls_per_sec,
            p.p50_us,
            p.p99_us,
            p.calls_per_sec / osmesh.pipelined.calls_per_sec,
        );
    }
    if let Some(c) = &run.codec {
        let _ = writeln!(
            out,
            "  codec alone on the reply: osmesh CBOR ({} bytes) encode {:.1} µs, decode {:.1} µs; \
             tarpc bincode encode {:.1} µs, decode {:.1} µs",
            c.body_bytes, c.encode_us, c.decode_us, c.bincode_encode_us, c.bincode_decode_us
        );
    }
}

fn fanout_table(f: &FanoutFigures, plan: &FanoutPlan, out: &mut String) {
    let _ = writeln!(
        out,
        "\nFan-out: 1 region (regiond), {} clusters over loopback TCP ({} per host process), \
         connected in {:.1} s; live deadline {} ms; {} sequential keep-alive requests per path \
         ({} live with clusters down)",
        f.clusters,
        plan.clusters_per_host,
        f.connect_secs,
        f.live_deadline_ms,
        plan.requests,
        plan.degraded_requests
    );
    let _ = writeln!(
        out,
        "  {:<36} {:>9} {:>9} {:>9}   {:>8} {:>9} {:>13}   {:>9} {:>9}",
        "read",
        "p50 ms",
        "p99 ms",
        "max ms",
        "answered",
        "timed out",
        "not connected",
        "region ms",
        "body KiB"
    );
    read_row(out, "live, all up", &f.live);
    read_row(out, "cached, all up", &f.cached);
    read_row(out, "cached, summary form", &f.cached_summary);
    read_row(out, "cached, unchanged (304)", &f.cached_revalidated);
    read_row(out, "cached, gzip (wire bytes)", &f.cached_gzip);
    read_row(out, "floor: /whoami (auth only)", &f.floor);
    for d in [&f.stopped, &f.killed] {
        degraded_rows(out, d);
    }
    let _ = writeln!(
        out,
        "  region resident memory: {:.1} MiB with {} clusters connected (peak {:.1} MiB)",
        f.region_rss_mib, f.clusters, f.region_peak_rss_mib
    );
    if let Some(r) = &f.reconnect {
        let _ = writeln!(
            out,
            "  reconnect storm after a region restart ({:.0} s down): first back {:.1} s, 10% {:.1} s, \
             50% {:.1} s, 90% {:.1} s, all {} {:.1} s after the new region started; \
             at most {:.0} clusters/s",
            r.down_secs,
            r.first_secs,
            r.p10_secs,
            r.p50_secs,
            r.p90_secs,
            f.clusters,
            r.all_secs,
            r.peak_per_sec
        );
    }
}

fn degraded_rows(out: &mut String, d: &DegradedFigures) {
    read_row(
        out,
        &format!(
            "live, {} {} down ({})",
            d.stopped_clusters, "clusters", d.how
        ),
        &d.live,
    );
    read_row(
        out,
        &format!("cached, {} clusters down ({})", d.stopped_clusters, d.how),
        &d.cached,
    );
}

fn read_row(out: &mut String, name: &str, r: &ReadFigures) {
    let _ = writeln!(
        out,
        "  {:<36} {:>9.2} {:>9.2} {:>9.2}   {:>8} {:>9} {:>13}   {:>9} {:>9.0}",
        name,
        r.latency.p50_us / 1000.0,
        r.latency.p99_us / 1000.0,
        r.latency.max_us / 1000.0,
        r.answered_min,
        r.timed_out_max,
        r.not_connected_max,
        r.region_elapsed_p50_ms
            .map_or_else(|| "-".to_string(), |ms| format!("{ms:.0}")),
        r.body_bytes as f64 / 1024.0,
    );
}

fn sim_table(sim: &SimFigures, out: &mut String) {
    let _ = writeln!(out, "\nSimulator");
    match (sim.sim_secs_per_wall_sec, sim.seeds_per_minute) {
        (Some(speed), Some(seeds)) => {
            let _ = writeln!(
                out,
                "  50 clusters, 10 min scenario: {speed:.0} simulated s per wall s"
            );
            let _ = writeln!(out, "  swarm: {seeds:.0} seeds per minute");
        }
        _ => {
            let note = sim.note.as_deref().unwrap_or("");
            let _ = writeln!(out, "  simulator figures: {note}");
        }
    }
}

fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fields = text.split_whitespace().map(|f| f.parse().unwrap_or(0.0));
    [(); 3].map(|_| fields.next().unwrap_or(0.0))
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
