//! `osmesh`: the CLI. `osmesh demo` starts a region and three clusters in one process; the
//! other commands query a region's HTTP API and print sorted, aligned tables (or `--json`).

mod admin;
mod client;
mod credentials;
mod demo;
mod domain;
mod images;
mod regions;
mod table;
mod tls;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "osmesh",
    about = "osmesh: a region/cluster control plane for bare-metal provisioning"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: osmesh_telemetry::logging::LogArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Start a region on SQLite and three clusters in this process, until Ctrl-C.
    Demo {
        /// Keep the database, secret and image trees here instead of a temporary directory.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        #[arg(long, default_value = osmesh_region::config::DEFAULT_HTTP_LISTEN)]
        http_listen: String,
        #[arg(long, default_value = osmesh_region::config::DEFAULT_RPC_LISTEN)]
        rpc_listen: String,
    },
    /// The merged OS view: which clusters support and hold each release.
    Osystems {
        #[command(flatten)]
        api: client::ApiArgs,
        /// Ask every cluster now instead of reading the cached snapshots.
        #[arg(long)]
        live: bool,
        /// The live read's deadline.
        #[arg(long)]
        timeout_ms: Option<u64>,
    },
    /// The clusters the region knows, connected or not; enroll, revoke or remove one.
    Clusters {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: Option<client::ClustersCommand>,
    },
    /// Every region sharing the database: up or down, endpoints, linked clusters; and the
    /// clusters linked to only some of the live regions.
    Regions {
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Every image each cluster holds: arch, subarch, kernel flavour, label, purposes.
    Images {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(flatten)]
        filter: images::ImagesArgs,
    },
    /// License keys per OS release, validated by a cluster, shown masked.
    #[command(name = "license-keys")]
    LicenseKeys {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: domain::LicenseKeysCommand,
    },
    /// Default OS, release and commissioning release.
    Settings {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: domain::SettingsCommand,
    },
    /// Nodes: enlist, allocate, release, render preseeds.
    Nodes {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: domain::NodesCommand,
    },
    /// Check a token (read from standard input or OSMESH_TOKEN) and save it for this API.
    Login {
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// API tokens (admin): list, create, revoke.
    Tokens {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: admin::TokensCommand,
    },
    /// Every write the API received, accepted or refused, newest first (admin).
    Audit {
        #[command(flatten)]
        api: client::ApiArgs,
        /// Only writes to this path (e.g. /api/v1/settings).
        #[arg(long)]
        object: Option<String>,
        /// Only writes by this token.
        #[arg(long)]
        token: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The page before this id (printed at the end of the previous page).
        #[arg(long)]
        before_id: Option<i64>,
    },
    /// Versioned preseed templates: list, history, edit, resolve conflicts.
    Preseeds {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: domain::PreseedsCommand,
    },
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole chain of causes on one line, and no backtrace.
            eprintln!("osmesh: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    osmesh_telemetry::logging::init(cli.log.log_format, "warn");
    match cli.command {
        Command::Demo {
            dir,
            http_listen,
            rpc_listen,
        } => demo::run(demo::DemoOptions {
            dir,
            http_listen,
            rpc_listen,
        }),
        Command::Osystems {
            api,
            live,
            timeout_ms,
        } => client::osystems(&api, live, timeout_ms),
        Command::Clusters { api, command } => match command {
            None => client::clusters(&api),
            Some(command) => client::cluster_admin(&api, command),
        },
        Command::Regions { api } => regions::regions(&api),
        Command::Images { api, filter } => images::images(&api, &filter),
        Command::LicenseKeys { api, command } => domain::license_keys(&api, command),
        Command::Settings { api, command } => domain::settings(&api, command),
        Command::Nodes { api, command } => domain::nodes(&api, command),
        Command::Preseeds { api, command } => domain::preseeds(&api, command),
        Command::Login { api } => admin::login(&api),
        Command::Tokens { api, command } => admin::tokens(&api, command),
        Command::Audit {
            api,
            object,
            token,
            limit,
            before_id,
        } => admin::audit(&api, object, token, limit, before_id),
    }
}
