//! clusterd's command line and TOML configuration file. Flags and environment win over the
//! file; the file wins over the defaults. The result is the plain [`Args`] that
//! [`ClusterConfig::from_args`] reads and checks (the demo and the benchmarks build those
//! directly), plus what only the daemon has: the optional status listener.

use anyhow::{Context, Result};
use clap::Parser;
use osmesh_telemetry::logging::LogArgs;
use serde::Deserialize;
use std::fmt::Write as _;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};

use crate::{Args, ClusterConfig};

/// Seconds between rescans of the boot-resource tree when neither flag nor file says.
pub const DEFAULT_RESCAN_SECS: u64 = 10;

#[derive(Debug, Parser)]
#[command(name = "clusterd", about = "The osmesh cluster controller")]
pub struct DaemonArgs {
    /// Optional TOML configuration file (keys: id, name, regions, secret_file, state_dir, enroll_token_file, images,
    /// declared_os, preseeds, rescan_secs, status_listen; see contrib/clusterd.toml).
    #[arg(long, env = "OSMESH_CLUSTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The cluster's identity (what it authenticates as); defaults to its name.
    #[arg(long, env = "OSMESH_CLUSTER_ID")]
    pub id: Option<String>,
    /// The cluster's human-readable name (required: here, in the environment or the file).
    #[arg(long, env = "OSMESH_CLUSTER_NAME")]
    pub name: Option<String>,
    /// Region RPC address(es), tried in turn; repeat the flag or separate with commas.
    #[arg(long = "region", env = "OSMESH_REGION", value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Compatibility mode (off unless given): a file holding a secret shared with the region.
    #[arg(long, env = "OSMESH_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Directory of the cluster's certificate, key and region CA (written at enrollment).
    #[arg(long, env = "OSMESH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// File holding a one-time enrollment token (used while no certificate is saved).
    #[arg(long, env = "OSMESH_ENROLL_TOKEN_FILE")]
    pub enroll_token_file: Option<PathBuf>,
    /// Root of the boot-resource tree: <root>/<osystem>/<arch>/<subarch>/<release>/<label>/ (required).
    #[arg(long, env = "OSMESH_BOOT_RESOURCES")]
    pub images: Option<PathBuf>,
    /// TOML file of OS definitions this cluster ships for its own hardware.
    #[arg(long, env = "OSMESH_DECLARED_OS")]
    pub declared_os: Option<PathBuf>,
    /// Directory of preseed templates (one file per template, named after it).
    #[arg(long, env = "OSMESH_PRESEEDS")]
    pub preseeds: Option<PathBuf>,
    /// Seconds between rescans of the boot-resource tree [default: 10].
    #[arg(long, env = "OSMESH_RESCAN_SECS")]
    pub rescan_secs: Option<u64>,
    /// Serve /healthz, /readyz and /metrics on this address (off unless given).
    #[arg(long, env = "OSMESH_STATUS_LISTEN")]
    pub status_listen: Option<String>,
    /// Validate the configuration, print it with secrets masked, and exit (0: valid, 1: not).
    #[arg(long)]
    pub check_config: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

/// The TOML file's shape. Unknown keys are an error, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub id: Option<String>,
    pub name: Option<String>,
    pub regions: Option<Vec<String>>,
    pub secret_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub enroll_token_file: Option<PathBuf>,
    pub images: Option<PathBuf>,
    pub declared_os: Option<PathBuf>,
    pub preseeds: Option<PathBuf>,
    pub rescan_secs: Option<u64>,
    pub status_listen: Option<String>,
}

/// The daemon's resolved settings: the cluster's, and the status listener's address.
#[derive(Debug)]
pub struct Resolved {
    pub args: Args,
    pub status_listen: Option<String>,
}

impl DaemonArgs {
    /// Merges flags and environment over the file, and says which required key is missing.
    pub fn resolve(self) -> Result<Resolved> {
        let file = match &self.config {
            Some(path) => load_file_config(path)?,
            None => FileConfig::default(),
        };
        let regions = if self.regions.is_empty() {
            file.regions.unwrap_or_default()
        } else {
            self.regions
        };
        anyhow::ensure!(
            !regions.is_empty(),
            "a region address is required: --region, OSMESH_REGION or `regions` in the config file"
        );
        let args = Args {
            id: self.id.or(file.id),
            name: self.name.or(file.name).context(
                "a cluster name is required: --name, OSMESH_CLUSTER_NAME or `name` in the config file",
            )?,
            regions,
            secret_file: self.secret_file.or(file.secret_file),
            state_dir: self.state_dir.or(file.state_dir),
            enroll_token_file: self.enroll_token_file.or(file.enroll_token_file),
            images: self.images.or(file.images).context(
                "a boot-resource directory is required: --images, OSMESH_BOOT_RESOURCES or `images` in the config file",
            )?,
            declared_os: self.declared_os.or(file.declared_os),
            preseeds: self.preseeds.or(file.preseeds),
            rescan_secs: self
                .rescan_secs
                .or(file.rescan_secs)
                .unwrap_or(DEFAULT_RESCAN_SECS),
        };
        Ok(Resolved {
            args,
            status_listen: self.status_listen.or(file.status_listen),
        })
    }
}

pub fn load_file_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// `--check-config`: everything `clusterd` checks at start (the secret, the image directory,
/// the declared-OS file, the templates) and the status address; the effective configuration
/// with the secret masked.
pub fn check(resolved: &Resolved) -> Result<String> {
    let Resolved {
        args,
        status_listen,
    } = resolved;
    anyhow::ensure!(args.rescan_secs > 0, "rescan_secs must be at least 1");
    if let Some(addr) = status_listen {
        let mut addrs = addr
            .to_socket_addrs()
            .with_context(|| format!("status_listen = {addr:?} is not a host:port address"))?;
        anyhow::ensure!(
            addrs.next().is_some(),
            "status_listen = {addr:?} resolves to no address"
        );
    }
    let config = ClusterConfig::from_args(args.clone())?;
    let mut out = String::from("# clusterd: effective configuration (secrets masked)\n");
    let _ = writeln!(out, "id = {:?}", config.settings.id.to_string());
    let _ = writeln!(out, "name = {:?}", args.name);
    let _ = writeln!(out, "regions = {:?}", args.regions);
    if let Some(path) = &args.secret_file {
        let _ = writeln!(
            out,
            "secret_file = {:?} # compatibility mode; contents: ***",
            path.display().to_string()
        );
    }
    if let Some(dir) = &args.state_dir {
        let _ = writeln!(out, "state_dir = {:?}", dir.display().to_string());
    }
    let _ = writeln!(out, "images = {:?}", args.images.display().to_string());
    if let Some(path) = &args.declared_os {
        let _ = writeln!(out, "declared_os = {:?}", path.display().to_string());
    }
    if let Some(path) = &args.preseeds {
        let _ = writeln!(out, "preseeds = {:?}", path.display().to_string());
    }
    let _ = writeln!(out, "rescan_secs = {}", args.rescan_secs);
    if let Some(addr) = status_listen {
        let _ = writeln!(out, "status_listen = {addr:?}");
    }
    let _ = writeln!(
        out,
        "# declared OS definitions: {}; preseed templates: {}",
        config.registry.declared.len(),
        config.templates.len()
    );
    Ok(out)
}
