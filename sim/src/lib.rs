//! osmesh-sim: the deterministic simulator.
//!
//! What lives here: the simulated network (`net`, an implementation of `osmesh-net`'s
//! transport seam), scenario files (`scenario`), the simulated world on virtual time
//! (`world`), the reference model the invariants hold answers to (`oracle`), the invariants
//! (`invariants`), the trace (`trace`) and swarm plans (`swarm`).
//!
//! What it must not do: fork the actors. It hosts the same `osmesh-actors` code that runs in
//! production; everything it controls enters through the transport, the clock and the RNG.
//! The same scenario and seed give a byte-identical trace.

pub mod invariants;
pub mod net;
pub mod ops;
pub mod oracle;
pub mod scenario;
pub mod swarm;
pub mod trace;
pub mod world;

pub use scenario::{parse_scenario, Scenario, ScenarioError};
pub use world::{run, Failure, FailureKind, Outcome};

/// Exit codes of the `osmesh-sim` binary, one per kind of failure (as TigerBeetle's VOPR).
pub mod exit {
    pub const PASSED: i32 = 0;
    pub const RUN_ERROR: i32 = 1;
    pub const BAD_INPUT: i32 = 2;
    pub const SAFETY: i32 = 3;
    pub const LIVENESS: i32 = 4;
    pub const EXPECTATION: i32 = 5;

    pub fn for_failure(kind: crate::FailureKind) -> i32 {
        match kind {
            crate::FailureKind::Safety => SAFETY,
            crate::FailureKind::Liveness => LIVENESS,
            crate::FailureKind::Expectation => EXPECTATION,
        }
    }
}

/// Reads and parses a scenario file; errors name the file and line.
pub fn load_scenario(path: &std::path::Path) -> anyhow::Result<Scenario> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    Ok(parse_scenario(&path.display().to_string(), &text)?)
}

/// What a snapshot keeps of a run: the story (faults, operations, answers, checks), the
/// frame counts, the final state and the verdict. The full frame trace is for `run`.
pub fn snapshot_text(outcome: &Outcome) -> String {
    let trace = &outcome.trace;
    let verdict = match &outcome.failure {
        None => "PASSED".to_owned(),
        Some(f) => format!(
            "FAILED ({:?}) at {} ms, step {}: {}",
            f.kind, f.at_ms, f.step, f.message
        ),
    };
    format!(
        "== story\n{}\n== frames\n{}\n== final state\n{}\n== verdict\n{verdict}\n",
        trace.render_story(),
        trace.render_frame_counts(),
        outcome.final_state
    )
}
