//! `osmesh-sim`: runs scenario files, swarm seeds and the throughput benchmark.
//!
//! Prints the seed and the derived options first, then the trace, then `PASSED` or the
//! failure with the one command that replays it. Exit codes: see `osmesh_sim::exit`.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use osmesh_sim::swarm::{self, Mode};
use osmesh_sim::{exit, Outcome, Scenario};
use std::path::PathBuf;

/// A simulated frame allocates and frees many small objects (envelopes, messages, answers);
/// mimalloc serves them in about 15% less CPU than the system allocator on the bench. No
/// order or value depends on the allocator: the traces are the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "osmesh-sim", about = "osmesh deterministic simulator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario file with one seed, printing the full trace.
    Run {
        scenario: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Run many seeds with random fault plans; stop at the first failure.
    Swarm {
        #[arg(long, default_value_t = 200)]
        seeds: u64,
        #[arg(long)]
        clusters: Option<usize>,
        #[arg(long, value_enum, default_value_t = Mode::Safety)]
        mode: Mode,
        /// Each seed draws its number of regions (sharing one store) from 1 to this.
        #[arg(long, default_value_t = 1)]
        regions: usize,
        #[arg(long, default_value_t = 0)]
        base_seed: u64,
        /// Seeds run at once, each on its own thread (default: the machine's cores). The
        /// verdict is the same for any number: the lowest failing seed.
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Re-run one swarm seed (or a scenario file, when given) and print its trace.
    Replay {
        scenario: Option<PathBuf>,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        clusters: Option<usize>,
        #[arg(long, value_enum, default_value_t = Mode::Safety)]
        mode: Mode,
        /// As given to `swarm`: the seed draws its regions from 1 to this.
        #[arg(long, default_value_t = 1)]
        regions: usize,
    },
    /// Simulated seconds per wall second: healthy clusters exchanging heartbeats and refreshes.
    Bench {
        #[arg(long, default_value_t = 50)]
        clusters: usize,
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// How often the invariants are checked (each check reads the store and merges the
        /// cached view of every cluster).
        #[arg(long, default_value_t = 1_000)]
        check_interval_ms: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run { scenario, seed } => run_file(&scenario, seed),
        Command::Replay {
            scenario: Some(path),
            seed,
            ..
        } => run_file(&path, seed),
        Command::Replay {
            scenario: None,
            seed,
            clusters,
            mode,
            regions,
        } => replay(seed, clusters, mode, regions),
        Command::Swarm {
            seeds,
            clusters,
            mode,
            regions,
            base_seed,
            jobs,
        } => {
            let jobs = jobs.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            let run = SwarmRun {
                seeds,
                base_seed,
                mode,
                clusters,
                regions,
                jobs,
            };
            swarm(&run)
        }
        Command::Bench {
            clusters,
            minutes,
            seed,
            check_interval_ms,
        } => bench(clusters, minutes, seed, check_interval_ms),
    };
    std::process::exit(code.unwrap_or_else(|err| {
        eprintln!("osmesh-sim: {err:#}");
        exit::RUN_ERROR
    }));
}

fn run_file(path: &std::path::Path, seed: u64) -> anyhow::Result<i32> {
    let scenario = match osmesh_sim::load_scenario(path) {
        Ok(s) => s,
        Err(err) => {
            eprintln!("{err:#}");
            return Ok(exit::BAD_INPUT);
        }
    };
    println!("seed: {seed}");
    println!("scenario: {}", path.display());
    println!("options:\n{}", toml::to_string(&scenario.settings)?);
    let replay = format!(
        "cargo run -p osmesh-sim -- run {} --seed {seed}",
        path.display()
    );
    report(&scenario, seed, &replay)
}

fn replay(seed: u64, clusters: Option<usize>, mode: Mode, regions: usize) -> anyhow::Result<i32> {
    let options = swarm::options(seed, mode, clusters).with_regions(regions);
    println!("options: {}", serde_json::to_string_pretty(&options)?);
    let scenario = swarm::generate(&options);
    println!("generated scenario:\n{}", toml::to_string(&scenario)?);
    report(
        &scenario,
        seed,
        &replay_command(seed, clusters, mode, regions),
    )
}

fn report(scenario: &Scenario, seed: u64, replay: &str) -> anyhow::Result<i32> {
    let outcome = osmesh_sim::run(scenario, seed, true)?;
    println!("== trace\n{}", outcome.trace.render_full());
    println!("== frames\n{}", outcome.trace.render_frame_counts());
    println!("== final state\n{}", outcome.final_state);
    Ok(verdict(&outcome, seed, replay))
}

fn verdict(outcome: &Outcome, seed: u64, replay: &str) -> i32 {
    match &outcome.failure {
        None => {
            println!(
                "PASSED (seed {seed}, {} steps, {} ms virtual)",
                outcome.steps, outcome.virtual_ms
            );
            exit::PASSED
        }
        Some(f) => {
            println!(
                "FAILED ({:?}) seed {seed} at {} ms, step {}: {}",
                f.kind, f.at_ms, f.step, f.message
            );
            println!("you can reproduce this failure with: {replay}");
            exit::for_failure(f.kind)
        }
    }
}

fn replay_command(seed: u64, clusters: Option<usize>, mode: Mode, regions: usize) -> String {
    let mode = match mode {
        Mode::Safety => "safety",
        Mode::Liveness => "liveness",
    };
    let clusters = clusters.map_or(String::new(), |k| format!(" --clusters {k}"));
    let regions = if regions > 1 {
        format!(" --regions {regions}")
    } else {
        String::new()
    };
    format!(
        "cargo run --release -p osmesh-sim -- replay --seed {seed} --mode {mode}{clusters}{regions}"
    )
}

#[derive(serde::Serialize)]
struct SwarmRun {
    seeds: u64,
    base_seed: u64,
    mode: Mode,
    clusters: Option<usize>,
    /// Each seed draws 1 to this many regions.
    #[serde(skip_serializing_if = "is_one")]
    regions: usize,
    jobs: usize,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn swarm(run: &SwarmRun) -> anyhow::Result<i32> {
    println!("swarm: {}", serde_json::to_string(run)?);
    let bar = indicatif::ProgressBar::new(run.seeds);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {per_sec} eta {eta}")
            .context("progress template")?,
    );
    let started = std::time::Instant::now();
    let seeds = run.base_seed..run.base_seed.saturating_add(run.seeds);
    let failed = swarm::run_seeds(
        seeds,
        run.jobs,
        run.mode,
        run.clusters,
        run.regions,
        &|| bar.inc(1),
    )?;
    if let Some(failed) = failed {
        bar.abandon();
        println!("options: {}", serde_json::to_string(&failed.options)?);
        let replay = replay_command(failed.seed, run.clusters, run.mode, run.regions);
        return Ok(verdict(&failed.outcome, failed.seed, &replay));
    }
    bar.finish();
    let wall = started.elapsed().as_secs_f64();
    println!(
        "PASSED {} seeds in {wall:.1} s wall ({:.0} seeds/min, {} jobs)",
        run.seeds,
        run.seeds as f64 * 60.0 / wall.max(1e-9),
        run.jobs
    );
    Ok(exit::PASSED)
}

fn bench(clusters: usize, minutes: u64, seed: u64, check_ms: u64) -> anyhow::Result<i32> {
    let text = bench_scenario(clusters, minutes, check_ms);
    let scenario = osmesh_sim::parse_scenario("bench", &text)?;
    println!("bench: {clusters} clusters, {minutes} virtual minutes, seed {seed}, checks every {check_ms} ms");
    let started = std::time::Instant::now();
    let outcome = osmesh_sim::run(&scenario, seed, false)?;
    let wall = started.elapsed().as_secs_f64();
    let simulated = outcome.virtual_ms as f64 / 1000.0;
    let frames: u64 = outcome
        .trace
        .frame_counts
        .values()
        .flat_map(|frames| frames.values())
        .map(|c| c[0] + c[2])
        .sum();
    println!(
        "simulated {simulated:.0} s in {wall:.3} s wall: {:.0} simulated s per wall s, {frames} frames ({:.0} frames/wall s)",
        simulated / wall.max(1e-9),
        frames as f64 / wall.max(1e-9)
    );
    Ok(verdict(&outcome, seed, "osmesh-sim bench"))
}

/// Healthy clusters with divergent images, and a live fan-out each minute.
fn bench_scenario(clusters: usize, minutes: u64, check_ms: u64) -> String {
    let duration = minutes * 60_000;
    let mut text = format!(
        "description = \"bench\"\n[settings]\nduration_ms = {duration}\ncheck_interval_ms = {check_ms}\n"
    );
    let pool = [
        "ubuntu/amd64/generic/jammy",
        "ubuntu/amd64/generic/noble",
        "centos/amd64/generic/centos8",
        "ubuntu/arm64/generic/jammy",
    ];
    for n in 1..=clusters {
        let images: Vec<String> = pool
            .iter()
            .take(1 + n % pool.len())
            .map(|i| format!("\"{i}\""))
            .collect();
        text.push_str(&format!(
            "[[cluster]]\nid = \"c{n:02}\"\nimages = [{}]\n",
            images.join(", ")
        ));
    }
    for minute in 1..minutes {
        text.push_str(&format!(
            "[[op]]\nop = \"list_osystems\"\nat_ms = {}\nread = \"live\"\ntimeout_ms = 2000\n",
            minute * 60_000
        ));
    }
    text
}
