//! `regiond`: the osmesh region controller.

use anyhow::{Context, Result};
use clap::Parser;
use osmesh_region::config::{Args, RegionCommand, RegionConfig, TokenCommand};
use osmesh_region::redact_url;
use osmesh_store::{Role, Store};
use osmesh_telemetry::logging::{self, LogArgs};

/// Every link and every fan-out allocates and frees many small objects (frames, envelopes,
/// call slots); mimalloc serves them with less CPU and less memory held than the system
/// allocator (docs/BENCHMARKS.md: the 1,000- and 10,000-cluster runs with each).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `regiond`'s command line: the configuration flags (and `token` subcommands), plus the
/// operations flags every daemon has.
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
    let mut args = cli.args;
    if let Some(RegionCommand::Token(command)) = args.command.take() {
        return token(&args, command);
    }
    let config = RegionConfig::from_args(args)?;
    if cli.check_config {
        osmesh_region::check::validate(&config)?;
        print!("{}", osmesh_region::check::effective(&config));
        println!("# configuration OK");
        return Ok(());
    }
    actix_web::rt::System::new().block_on(async move {
        let region = osmesh_region::start(config).await?;
        report_addrs(&region)?;
        region.server.await?;
        Ok(())
    })
}

/// `regiond token …`: works on the database directly, so the first admin token can be made
/// before any exists (whoever can read the database owns the region anyway).
fn token(args: &Args, command: TokenCommand) -> Result<()> {
    let url = osmesh_region::config::database_url(args)?;
    let store = Store::open(&url)
        .with_context(|| format!("cannot open the database {}", redact_url(&url)))?;
    let now = osmesh_region::wall_clock_ms();
    match command {
        TokenCommand::Create {
            name,
            role,
            expires_in_days,
        } => {
            let role = Role::parse(&role)
                .with_context(|| format!("role {role:?} is not reader, operator or admin"))?;
            let expires = expires_in_days.map(|days| now + i64::from(days) * 86_400_000);
            let (secret, record) =
                osmesh_region::auth::issue_token(&store, &name, role, "regiond", now, expires)?;
            eprintln!(
                "created {} token {:?}; it is shown once, store it now:",
                record.role, record.name
            );
            println!("{}", secret.expose());
        }
        TokenCommand::Revoke { name } => {
            let record = store.revoke_token(&name, now)?;
            println!("revoked token {:?} ({})", record.name, record.role);
        }
        TokenCommand::List => {
            for t in store.list_tokens()? {
                let state = if t.revoked_at_ms.is_some() {
                    "revoked"
                } else if !t.is_live_at(now) {
                    "expired"
                } else {
                    "live"
                };
                println!(
                    "{}\t{}\t{}\tcreated by {}\t{state}",
                    t.id, t.name, t.role, t.created_by
                );
            }
        }
    }
    Ok(())
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
