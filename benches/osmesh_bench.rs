//! `cargo bench --bench osmesh-bench -- [--smoke] [--out FILE.json] [--only rpc|fanout|sim]
//! [--clusters N] [--per-host M] [--restart]`
//!
//! osmesh's benchmark harness (issue #7): RPC on one loopback connection against Twisted AMP,
//! tarpc and a raw TCP floor; the region's fan-out to many clusters through its HTTP API; and
//! the simulator's speed. It shows progress on stderr, prints an aligned table on stdout and
//! writes the figures as JSON. `docs/BENCHMARKS.md` says what each figure means.
//!
//! The same executable, started with `--cluster-host`, is the child process that hosts a share
//! of the clusters in the fan-out part.

// The crate root is not a `mod.rs`, so its modules under `osmesh_bench/` need paths.
#[path = "osmesh_bench/amp.rs"]
mod amp;
#[path = "osmesh_bench/fanout.rs"]
mod fanout;
#[path = "osmesh_bench/reply.rs"]
mod reply;
#[path = "osmesh_bench/report.rs"]
mod report;
#[path = "osmesh_bench/rpc.rs"]
mod rpc;
#[path = "osmesh_bench/sim.rs"]
mod sim;
#[path = "osmesh_bench/stats.rs"]
mod stats;
#[path = "osmesh_bench/tarpc_peer.rs"]
mod tarpc_peer;

use anyhow::{Context, Result};
use fanout::FanoutPlan;
use report::{Progress, Run};
use rpc::RpcPlan;
use std::path::{Path, PathBuf};

/// What a run measures, from the command line.
struct Options {
    smoke: bool,
    out: Option<PathBuf>,
    only: Option<String>,
    /// The fan-out's size instead of the default (`--clusters N`, `--per-host M`).
    clusters: Option<usize>,
    per_host: Option<usize>,
    /// Restart the region once in the fan-out and measure the reconnect storm.
    restart: bool,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    raise_open_files_limit();
    if args.iter().any(|a| a == "--cluster-host") {
        return fanout::cluster_host(fanout::HostArgs::parse(&args)?);
    }
    let options = parse_options(&args)?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = target_dir()?;
    let run = measure(&options, workspace, &target)?;
    println!("{}", report::table(&run));
    let out = options
        .out
        .unwrap_or_else(|| target.join("osmesh-bench.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&run)?)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("figures written to {}", out.display());
    Ok(())
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut options = Options {
        smoke: false,
        out: None,
        only: None,
        clusters: None,
        per_host: None,
        restart: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => options.smoke = true,
            "--out" => options.out = Some(args.next().context("--out needs a file")?.into()),
            "--only" => options.only = Some(args.next().context("--only needs a part")?.clone()),
            "--clusters" => options.clusters = Some(args.next().context("--clusters N")?.parse()?),
            "--per-host" => options.per_host = Some(args.next().context("--per-host M")?.parse()?),
            "--restart" => options.restart = true,
            // What cargo passes to every bench target.
            "--bench" => {}
            other => anyhow::bail!(
                "unknown argument {other:?}; usage: osmesh-bench [--smoke] [--out FILE.json] [--only rpc|fanout|sim] [--clusters N] [--per-host M] [--restart]"
            ),
        }
    }
    Ok(options)
}

fn measure(options: &Options, workspace: &Path, target: &Path) -> Result<Run> {
    let wanted = |part: &str| options.only.is_none() || options.only.as_deref() == Some(part);
    let mut run = Run::start(options.smoke);
    let progress = Progress::new(
        usize::from(wanted("rpc")) * 4 + usize::from(wanted("fanout")) + usize::from(wanted("sim")),
    );
    if wanted("rpc") {
        let plan = rpc_plan(options.smoke);
        run.rpc_plan = Some(plan);
        let iterations = if options.smoke { 1_000 } else { 20_000 };
        let (bincode_encode_us, bincode_decode_us) = tarpc_peer::bincode_alone(iterations);
        run.codec = Some(reply::CodecFigures {
            bincode_encode_us,
            bincode_decode_us,
            ..reply::codec_alone(iterations)
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        progress.step("RPC: osmesh (CBOR over TCP)");
        for mode in [
            rpc::OsmeshMode::DecodeAlways,
            rpc::OsmeshMode::MemoUnchanged,
            rpc::OsmeshMode::MemoChanging,
        ] {
            run.rpc.push(runtime.block_on(rpc::osmesh(plan, mode))?);
        }
        progress.step("RPC: tarpc (bincode over TCP)");
        run.rpc.push(runtime.block_on(tarpc_peer::tarpc(plan))?);
        progress.step("RPC: raw TCP floor");
        run.rpc.push(runtime.block_on(rpc::raw_tcp(plan))?);
        progress.step("RPC: Twisted AMP (Python)");
        run.rpc
            .push(amp::amp(amp_plan(options.smoke), workspace, target)?);
    }
    if wanted("fanout") {
        let mut plan = fanout_plan(options.smoke);
        plan.clusters = options.clusters.unwrap_or(plan.clusters);
        plan.clusters_per_host = options.per_host.unwrap_or(plan.clusters_per_host);
        plan.restart = options.restart;
        progress.step(&format!("fan-out: 1 region, {} clusters", plan.clusters));
        let regiond = Path::new(env!("CARGO_BIN_EXE_regiond"));
        run.fanout = Some(fanout::fanout(plan, regiond, &|line| {
            progress.detail(line)
        })?);
        run.fanout_plan = Some(plan);
    }
    if wanted("sim") {
        progress.step("simulator");
        run.sim = Some(sim::simulator(
            workspace,
            target,
            if options.smoke { 5 } else { 200 },
        ));
    }
    run.finish();
    Ok(run)
}

fn rpc_plan(smoke: bool) -> RpcPlan {
    match smoke {
        true => RpcPlan {
            sequential_calls: 200,
            pipelined_calls: 1_000,
            runs: 1,
        },
        false => RpcPlan {
            sequential_calls: 20_000,
            pipelined_calls: 100_000,
            runs: 3,
        },
    }
}

/// AMP is two orders of magnitude slower; fewer calls keep its runs to seconds.
fn amp_plan(smoke: bool) -> RpcPlan {
    match smoke {
        true => RpcPlan {
            sequential_calls: 100,
            pipelined_calls: 200,
            runs: 1,
        },
        false => RpcPlan {
            sequential_calls: 2_000,
            pipelined_calls: 5_000,
            runs: 3,
        },
    }
}

fn fanout_plan(smoke: bool) -> FanoutPlan {
    match smoke {
        true => FanoutPlan {
            clusters: 20,
            clusters_per_host: 2,
            requests: 20,
            degraded_requests: 5,
            live_deadline_ms: 500,
            restart: false,
        },
        false => FanoutPlan {
            clusters: 1_000,
            clusters_per_host: 100,
            requests: 200,
            degraded_requests: 20,
            live_deadline_ms: 500,
            restart: false,
        },
    }
}

/// `target/` (or `CARGO_TARGET_DIR`): the bench executable is `<target>/release/deps/<exe>`.
fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .context("cannot tell the target directory from the bench executable's path")
}

/// 1,000 clusters need 1,000+ sockets in the region and in the cluster hosts; children
/// inherit the raised limit.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
