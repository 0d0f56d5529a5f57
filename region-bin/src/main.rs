//! `regiond`: the osmesh region controller.

use anyhow::Result;
use clap::Parser;
use osmesh_region::config::{Args, RegionConfig};

fn main() -> Result<()> {
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
