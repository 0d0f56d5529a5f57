//! Part 3: the simulator's speed, from the `osmesh-sim` binary (release build):
//!
//! - `osmesh-sim bench --clusters 50 --minutes 10` runs a 50-cluster, 10-minute scenario once
//!   (invariants checked every simulated second); the harness times it and reports simulated
//!   seconds per wall second.
//! - `osmesh-sim swarm --seeds N` runs N seeds in swarm mode; the harness reports seeds per
//!   wall minute.
//!
//! A failure to run either is reported as "not available" with the reason; it never fails the
//! harness.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Simulated time of the scenario, in seconds (10 minutes).
const SCENARIO_SIM_SECS: u64 = 600;
const SCENARIO_CLUSTERS: usize = 50;

#[derive(Clone, Debug, Default, Serialize)]
pub struct SimFigures {
    pub sim_secs_per_wall_sec: Option<f64>,
    pub seeds_per_minute: Option<f64>,
    /// Why a figure is missing, when one is.
    pub note: Option<String>,
}

/// Runs the simulator's figures if the simulator supports them; never fails the harness.
pub fn simulator(workspace: &Path, target: &Path, swarm_seeds: usize) -> SimFigures {
    match measure(workspace, target, swarm_seeds) {
        Ok(figures) => figures,
        Err(e) => SimFigures {
            note: Some(format!("not available: {e:#}")),
            ..SimFigures::default()
        },
    }
}

fn measure(workspace: &Path, target: &Path, swarm_seeds: usize) -> Result<SimFigures> {
    let build = Command::new("cargo")
        .current_dir(workspace)
        .args(["build", "--release", "-q", "-p", "osmesh-sim"])
        .status()?;
    if !build.success() {
        bail!("cargo build --release -p osmesh-sim failed");
    }
    let sim = target.join("release").join("osmesh-sim");
    let minutes = (SCENARIO_SIM_SECS / 60).to_string();
    let clusters = SCENARIO_CLUSTERS.to_string();
    let wall = timed(
        &sim,
        &["bench", "--clusters", &clusters, "--minutes", &minutes],
    )?;
    let seeds = swarm_seeds.to_string();
    let swarm_wall = timed(&sim, &["swarm", "--seeds", &seeds])?;
    Ok(SimFigures {
        sim_secs_per_wall_sec: Some(SCENARIO_SIM_SECS as f64 / wall),
        seeds_per_minute: Some(swarm_seeds as f64 / (swarm_wall / 60.0)),
        note: None,
    })
}

/// Wall seconds of one run of the built simulator binary (process start included).
fn timed(sim: &Path, args: &[&str]) -> Result<f64> {
    let started = Instant::now();
    let status = Command::new(sim)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", sim.display()))?;
    if !status.success() {
        bail!("osmesh-sim {} failed: {status}", args.join(" "));
    }
    Ok(started.elapsed().as_secs_f64())
}
