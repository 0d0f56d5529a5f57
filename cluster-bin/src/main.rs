//! `clusterd`: the osmesh cluster controller.

use anyhow::Result;
use clap::Parser;
use osmesh_cluster::daemon::{self, DaemonArgs};
use osmesh_cluster::ClusterConfig;
use osmesh_telemetry::logging;

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
    let cli = DaemonArgs::parse();
    logging::init(cli.log.log_format, "info");
    let check_only = cli.check_config;
    let resolved = cli.resolve()?;
    if check_only {
        print!("{}", daemon::check(&resolved)?);
        println!("# configuration OK");
        return Ok(());
    }
    let status_listen = resolved.status_listen;
    let args = resolved.args;
    let system = actix_rt::System::new();
    system.block_on(async move {
        osmesh_cluster::enroll_if_needed(&args).await?;
        let config = ClusterConfig::from_args(args)?;
        let cluster = osmesh_cluster::start(config);
        if let Some(addr) = status_listen {
            let (server, _) = osmesh_cluster::status::start(&addr, cluster)?;
            actix_rt::spawn(server);
        }
        anyhow::Ok(())
    })?;
    system.run()?;
    Ok(())
}
