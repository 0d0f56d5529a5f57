//! `regiond`: the osmesh region controller.

use anyhow::Result;
use clap::Parser;
use osmesh_region::config::{Args, RegionConfig};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole chain of causes on one line, and no backtrace.
            eprintln!("regiond: error: {err:#}");
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
    let config = RegionConfig::from_args(Args::parse())?;
    actix_web::rt::System::new().block_on(async move {
        let region = osmesh_region::start(config).await?;
        region.server.await?;
        Ok(())
    })
}
