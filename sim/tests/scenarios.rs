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

/// The first seed in `0..200` (the CI count) on which `mode`'s swarm fails with `hook` on,
/// checked to pass with it off; the hook is off again on return, even on a panic.
fn caught_within_ci_seeds(mode: Mode, hook: fn(bool)) -> Option<(u64, osmesh_sim::Failure)> {
    struct Off(fn(bool));
    impl Drop for Off {
        fn drop(&mut self) {
            (self.0)(false);
        }
    }
    let run_seed = |seed: u64| {
        let options = swarm::options(seed, mode, None);
        run(&swarm::generate(&options), seed, false)
            .expect("the run completes")
            .failure
    };
    let found = {
        let _off = Off(hook);
        hook(true);
        (0..200).find_map(|seed| run_seed(seed).map(|f| (seed, f)))
    };
    if let Some((seed, _)) = &found {
        assert_eq!(
            run_seed(*seed),
            None,
            "seed {seed} ({mode:?}) fails without the injected bug"
        );
    }
    found
}

fn assert_caught(mode: Mode, hook: fn(bool), what: &str, any_of: &[&str]) {
    let (seed, failure) = caught_within_ci_seeds(mode, hook)
        .unwrap_or_else(|| panic!("{what} is not caught within 200 {mode:?} seeds"));
    assert_eq!(failure.kind, FailureKind::Safety, "{}", failure.message);
    assert!(
        any_of.iter().any(|m| failure.message.contains(m)),
        "{what}: seed {seed} failed for another reason: {}",
        failure.message
    );
    println!(
        "{what}: caught at {mode:?} seed {seed}: {}",
        failure.message
    );
}

#[test]
fn swarm_catches_a_cached_snapshot_served_as_a_live_answer() {
    assert_caught(
        Mode::Safety,
        osmesh_core::hooks::set_serve_cached_as_live,
        "cached served as live",
        // Either the oracle sees a reply that never crossed the network in this fan-out, or
        // (since the view keeps a disconnected cluster's report apart, as last known) the part
        // claims an answer the view does not count.
        &[
            "as answering, but no",
            "part says it answered, the view does not",
        ],
    );
}

#[test]
fn swarm_catches_the_cached_merge_reused_when_any_cluster_answered() {
    assert_caught(
        Mode::Safety,
        osmesh_core::hooks::set_reuse_merge_if_any_answered,
        "cached merge reused when any answered",
        &["part says it did not answer", "as answering, but no"],
    );
}

#[test]
fn swarm_catches_a_region_that_forgets_a_disconnected_cluster() {
    assert_caught(
        Mode::Safety,
        osmesh_core::hooks::set_forget_disconnected_cluster,
        "forgotten cluster",
        &[
            "does not name registered cluster",
            "does not list registered cluster",
        ],
    );
}

#[test]
fn swarm_catches_an_allocation_of_a_node_of_the_wrong_arch() {
    assert_caught(
        Mode::Safety,
        osmesh_core::hooks::set_allocate_any_arch,
        "wrong-arch allocation",
        &["was allocated for a request for"],
    );
}

#[test]
fn a_region_actor_that_dies_fails_the_run() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios/healthy_divergent.toml");
    let scenario = load_scenario(&path).expect("the scenario parses");
    osmesh_core::hooks::set_region_actor_dies(true);
    let outcome = run(&scenario, SEED, false);
    osmesh_core::hooks::set_region_actor_dies(false);
    let failure = outcome
        .expect("the run completes")
        .failure
        .expect("a dead region actor fails the run");
    assert_eq!(failure.kind, FailureKind::Safety);
    assert!(
        failure.message.contains("region actor is gone"),
        "{}",
        failure.message
    );
}

/// Swarm seeds in worlds of one to three regions sharing a store (the CI runs 200 per mode
/// with `--regions 3`): every invariant holds across regions under random faults.
#[test]
fn swarm_seeds_with_several_regions_pass() {
    let mut several = 0;
    for mode in [Mode::Safety, Mode::Liveness] {
        for seed in 0..6 {
            let options = swarm::options(seed, mode, None).with_regions(3);
            several += usize::from(options.regions > 1);
            let outcome = run(&swarm::generate(&options), seed, false).expect("the run completes");
            assert_eq!(
                outcome.failure,
                None,
                "seed {seed} ({mode:?}, {} regions); replay: cargo run -p osmesh-sim -- replay --seed {seed} --mode {} --regions 3",
                options.regions,
                if mode == Mode::Safety { "safety" } else { "liveness" }
            );
        }
    }
    assert!(
        several >= 6,
        "only {several} of 12 seeds drew several regions"
    );
}

#[test]
fn swarm_catches_a_region_that_admits_any_credential() {
    assert_caught(
        Mode::Safety,
        osmesh_core::hooks::set_admit_any_credential,
        "any credential admitted",
        &[
            "acknowledged the Register of an impostor",
            "but it was revoked at",
            "which only an impostor of",
        ],
    );
}
