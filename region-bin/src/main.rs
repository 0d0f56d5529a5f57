//! `regiond`: the osmesh region controller.

use anyhow::Result;
use clap::Parser;
use osmesh_region::config::{Args, RegionConfig};
use osmesh_telemetry::logging::{self, LogArgs};

#[derive(Debug, Parser)]
#[command(name = "regiond", about = "The osmesh region controller")]
struct Cli {
    #[command(flatten)]
    args: Args,
    /// Validate the configuration, print it with secrets masked, and exit (0: valid, 1: not).
    #[arg(long)]
    check_config: bool,
    #[command(flatten)]
    log: LogArgs,
}

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
    let cli = Cli::parse();
    logging::init(cli.log.log_format, "info");
    let config = RegionConfig::from_args(cli.args)?;
    if cli.check_config {
        osmesh_region::check::validate(&config)?;
        print!("{}", osmesh_region::check::effective(&config));
        println!("# configuration OK");
        return Ok(());
    }
    actix_web::rt::System::new().block_on(async move {
        let region = osmesh_region::start(config).await?;
        region.server.await?;
        Ok(())
    })
}
