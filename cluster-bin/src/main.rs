//! `clusterd`: the osmesh cluster controller.

use anyhow::Result;
use clap::Parser;
use osmesh_cluster::{Args, ClusterConfig};

fn main() -> Result<()> {
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
