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
        report_addrs(&region)?;
        region.server.await?;
        Ok(())
    })
}

/// When this names a file, `regiond` writes the addresses it bound there once it listens
/// (`rpc ADDR` and `http ADDR ...` lines, written whole), so a test or a supervisor can ask for
/// port 0 and learn the port instead of guessing a free one.
const ADDR_FILE_ENV: &str = "OSMESH_ADDR_FILE";

fn report_addrs(region: &osmesh_region::RunningRegion) -> Result<()> {
    let Some(path) = std::env::var_os(ADDR_FILE_ENV).map(std::path::PathBuf::from) else {
        return Ok(());
    };
    let http: Vec<String> = region.http_addrs.iter().map(ToString::to_string).collect();
    let text = format!("rpc {}\nhttp {}\n", region.rpc_addr, http.join(" "));
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|e| anyhow::anyhow!("cannot write {ADDR_FILE_ENV}={}: {e}", path.display()))
}
