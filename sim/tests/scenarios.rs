//! Scenario files run under the simulator and snapshotted (one `.snap` per file, named after
//! it), plus the determinism, liveness-bound and injected-bug checks.

use osmesh_sim::swarm::{self, Mode};
use osmesh_sim::{load_scenario, run, snapshot_text, FailureKind};
use std::path::{Path, PathBuf};

const SEED: u64 = 1;

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/scenarios exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

fn short_name(path: &Path) -> String {
    path.file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_scenario_passes_and_matches_its_snapshot() {
    let files = scenario_files();
    assert!(
        files.len() >= 8,
        "expected at least eight scenarios, found {}",
        files.len()
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for path in &files {
            let scenario = load_scenario(path).expect("the scenario parses");
            let outcome = run(&scenario, SEED, false).expect("the run completes");
            assert_eq!(
                outcome.failure,
                None,
                "{} failed; replay: cargo run -p osmesh-sim -- run {} --seed {SEED}",
                short_name(path),
                path.display()
            );
            insta::assert_snapshot!(short_name(path), snapshot_text(&outcome));
        }
    });
}

fn full_trace(path: &str, seed: u64) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/scenarios")
        .join(path);
    let scenario = load_scenario(&path).expect("the scenario parses");
    let outcome = run(&scenario, seed, true).expect("the run completes");
    format!("{}{}", outcome.trace.render_full(), outcome.final_state)
}

#[test]
fn same_seed_gives_a_byte_identical_trace() {
    let first = full_trace("flapping_link.toml", 7);
    let second = full_trace("flapping_link.toml", 7);
    assert!(first.lines().count() > 300, "the trace holds every frame");
    assert_eq!(first, second);
}

#[test]
fn different_seeds_give_different_traces() {
    assert_ne!(
        full_trace("flapping_link.toml", 7),
        full_trace("flapping_link.toml", 8)
    );
}

#[test]
fn liveness_scenarios_converge_within_the_derived_bound() {
    for name in [
        "images_change_behind_partition.toml",
        "flapping_link.toml",
        "region_restart.toml",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/scenarios")
            .join(name);
        let scenario = load_scenario(&path).expect("the scenario parses");
        let outcome = run(&scenario, SEED, false).expect("the run completes");
        let c = outcome.convergence.expect("a liveness scenario");
        let converged = c.converged_at_ms.expect("converged");
        assert!(
            converged - c.healed_at_ms <= c.bound_ms,
            "{name}: converged {} ms after the heal, bound {}",
            converged - c.healed_at_ms,
            c.bound_ms
        );
    }
}

#[test]
fn a_wrong_expectation_fails_the_run() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios/healthy_divergent.toml");
    let mut scenario = load_scenario(&path).expect("the scenario parses");
    scenario.expect.connected = Some(vec!["c1".into()]);
    let outcome = run(&scenario, SEED, false).expect("the run completes");
    assert_eq!(
        outcome.failure.map(|f| f.kind),
        Some(FailureKind::Expectation)
    );
}

/// The first failing swarm seed in `0..200`, if any.
fn first_failing_seed() -> Option<(u64, osmesh_sim::Failure)> {
    (0..200).find_map(|seed| {
        let options = swarm::options(seed, Mode::Safety, None);
        let outcome = run(&swarm::generate(&options), seed, false).expect("the run completes");
        outcome.failure.map(|f| (seed, f))
    })
}

#[test]
fn swarm_catches_a_merge_that_forgets_non_answering_clusters() {
    osmesh_core::hooks::set_forget_not_answering(true);
    let found = first_failing_seed();
    osmesh_core::hooks::set_forget_not_answering(false);
    let (seed, failure) = found.expect("the injected bug is caught within 200 seeds");
    assert_eq!(failure.kind, FailureKind::Safety);
    assert!(
        failure.message.contains("does not name registered cluster"),
        "{}",
        failure.message
    );
    // Without the bug, the same seeds (up to and including the failing one) pass.
    for seed in 0..=seed {
        let options = swarm::options(seed, Mode::Safety, None);
        let outcome = run(&swarm::generate(&options), seed, false).expect("the run completes");
        assert_eq!(
            outcome.failure, None,
            "seed {seed} fails without the injected bug"
        );
    }
}
