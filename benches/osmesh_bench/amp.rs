//! The Python comparison peer: Twisted AMP, as MAAS spoke it (`benches/amp/amp_bench.py`).
//!
//! The harness makes a virtualenv under `target/amp-venv` on first use (`python3 -m venv`,
//! then `pip install -r benches/amp/requirements.txt`), starts the AMP server as a child
//! process, and runs the Python client, which measures and prints one JSON line per run.

use crate::rpc::{PeerFigures, RpcPlan, DEPTH};
use crate::stats::Figures;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What `amp_bench.py client` prints.
#[derive(Deserialize)]
struct ClientFigures {
    calls: usize,
    calls_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

pub fn amp(plan: RpcPlan, workspace: &Path, target: &Path) -> Result<PeerFigures> {
    let script = workspace.join("benches/amp/amp_bench.py");
    let python = ensure_venv(workspace, target)?;
    let mut server = ServerProcess(
        Command::new(&python)
            .arg(&script)
            .arg("server")
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the AMP server")?,
    );
    let port = read_port(&mut server.0)?;
    let mut seq = Vec::new();
    let mut pipe = Vec::new();
    for _ in 0..plan.runs {
        seq.push(client_run(
            &python,
            &script,
            port,
            plan.sequential_calls,
            1,
        )?);
        pipe.push(client_run(
            &python,
            &script,
            port,
            plan.pipelined_calls,
            DEPTH,
        )?);
    }
    Ok(PeerFigures {
        peer: "Twisted AMP (Python)".into(),
        sequential: Figures::median(&seq),
        pipelined: Figures::median(&pipe),
    })
}

/// The venv's python, creating the venv when it is missing.
fn ensure_venv(workspace: &Path, target: &Path) -> Result<PathBuf> {
    let venv = target.join("amp-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".osmesh-requirements");
    let requirements = workspace.join("benches/amp/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    if python.exists() && std::fs::read_to_string(&marker).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    eprintln!(
        "  creating {} (python3 -m venv, pip install)",
        venv.display()
    );
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "-r"])
        .arg(&requirements))?;
    std::fs::write(&marker, wanted)?;
    Ok(python)
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

fn read_port(server: &mut Child) -> Result<u16> {
    let stdout = server
        .stdout
        .take()
        .context("no stdout from the AMP server")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    line.trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("the AMP server said {line:?}, not PORT <n>"))
}

fn client_run(
    python: &Path,
    script: &Path,
    port: u16,
    calls: usize,
    depth: usize,
) -> Result<Figures> {
    let output = Command::new(python)
        .arg(script)
        .arg("client")
        .args(["--port", &port.to_string()])
        .args(["--calls", &calls.to_string()])
        .args(["--depth", &depth.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run the AMP client")?;
    if !output.status.success() {
        bail!("the AMP client failed: {}", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default();
    let figures: ClientFigures =
        serde_json::from_str(line).with_context(|| format!("the AMP client printed {line:?}"))?;
    Ok(Figures {
        calls: figures.calls,
        calls_per_sec: figures.calls_per_sec,
        p50_us: figures.p50_us,
        p99_us: figures.p99_us,
        max_us: figures.max_us,
    })
}

/// The AMP server child, killed when dropped.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
