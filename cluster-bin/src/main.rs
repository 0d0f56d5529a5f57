//! `clusterd`: the osmesh cluster controller.

use anyhow::Result;
use clap::Parser;
use osmesh_cluster::{Args, ClusterConfig};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole chain of causes on one line, and no backtrace.
            eprintln!("clusterd: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = ClusterConfig::from_args(Args::parse())?;
    let system = actix_rt::System::new();
    system.block_on(async move {
        osmesh_cluster::start(config);
    });
    system.run()?;
    Ok(())
}
