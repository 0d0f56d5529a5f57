//! regiond's configuration: flags and environment (clap), optionally a TOML file underneath
//! them. A flag or variable wins over the file; the file wins over the defaults.

use anyhow::{Context, Result};
use clap::Parser;
use osmesh_net::handshake::Secret;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auth::AuthSettings;
use crate::redact::redact_url;
use crate::rpc_tls::CaFiles;
use crate::tls::TlsFiles;

pub const DEFAULT_RPC_LISTEN: &str = "127.0.0.1:5250";
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:5240";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://osmesh-region.db";

#[derive(Debug, Parser)]
#[command(name = "regiond", about = "The osmesh region controller")]
pub struct Args {
    /// Database URL: sqlite://PATH (the embedded default) or postgres://…
    #[arg(long, env = "OSMESH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Address the clusters dial (CBOR-over-TCP RPC).
    #[arg(long, env = "OSMESH_RPC_LISTEN")]
    pub rpc_listen: Option<String>,
    /// Address of the HTTP API.
    #[arg(long, env = "OSMESH_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Compatibility mode (off unless given): a file holding a secret shared with clusters
    /// that have not enrolled; any holder of it may claim any identity not enrolled.
    #[arg(long, env = "OSMESH_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Directory of the region's own state: the RPC CA (`rpc-ca.pem`, `rpc-ca.key`),
    /// generated on first start [default: the SQLite database's directory, else `.`].
    #[arg(long, env = "OSMESH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The RPC CA's certificate (PEM), instead of the state directory's (with --rpc-ca-key).
    #[arg(long, env = "OSMESH_RPC_CA_CERT", requires = "rpc_ca_key")]
    pub rpc_ca_cert: Option<PathBuf>,
    /// The RPC CA's private key (PEM, mode 0600), with --rpc-ca-cert.
    #[arg(long, env = "OSMESH_RPC_CA_KEY", requires = "rpc_ca_cert")]
    pub rpc_ca_key: Option<PathBuf>,
    /// Optional TOML configuration file (keys: name, database_url, rpc_listen, http_listen,
    /// secret_file, refresh_interval_secs, rpc_advertise, http_url).
    #[arg(long, env = "OSMESH_REGION_CONFIG")]
    pub config: Option<PathBuf>,
    /// The region's name, as clusters see it.
    #[arg(long, env = "OSMESH_REGION_NAME")]
    pub name: Option<String>,
    /// PEM certificate chain for HTTPS (with --tls-key).
    #[arg(long, env = "OSMESH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS, mode 0600 (with --tls-cert).
    #[arg(long, env = "OSMESH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address (tokens then cross the network in clear).
    #[arg(long, env = "OSMESH_INSECURE_HTTP")]
    pub insecure_http: bool,
    /// RPC address(es) clusters are told to dial this region at, when several regions share
    /// one database (default: the address rpc_listen bound; set it when that is 0.0.0.0 or
    /// behind NAT). Repeat the flag or separate with commas.
    #[arg(long, env = "OSMESH_RPC_ADVERTISE", value_delimiter = ',')]
    pub rpc_advertise: Vec<String>,
    /// This region's API URL as the region list shows it (default: from http_listen).
    #[arg(long, env = "OSMESH_HTTP_URL")]
    pub http_url: Option<String>,
    /// Serve /metrics without a token (for a scraper on a trusted network).
    #[arg(long, env = "OSMESH_OPEN_METRICS")]
    pub open_metrics: bool,
    #[command(subcommand)]
    pub command: Option<RegionCommand>,
}

/// What regiond does instead of serving.
#[derive(Debug, clap::Subcommand)]
pub enum RegionCommand {
    /// API tokens, straight in the database (the first admin token comes from here).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once; only its hash is stored.
    Create {
        #[arg(long)]
        name: String,
        /// reader, operator or admin.
        #[arg(long)]
        role: String,
        /// Expire after this many days; without it the token lives until revoked.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke the live token of this name; it authenticates nothing from then on.
    Revoke {
        #[arg(long)]
        name: String,
    },
    /// Every token: name, role, creator, created, last used, expiry, revocation.
    List,
}

/// The TOML file's shape. Unknown keys are an error, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub name: Option<String>,
    pub database_url: Option<String>,
    pub rpc_listen: Option<String>,
    pub http_listen: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub refresh_interval_secs: Option<u64>,
    pub rpc_advertise: Option<Vec<String>>,
    pub http_url: Option<String>,
}

/// Everything regiond needs to start, resolved and checked. `Debug` redacts the database
/// URL's password and never shows the secret.
#[derive(Clone)]
pub struct RegionConfig {
    pub name: String,
    pub database_url: String,
    pub rpc_listen: String,
    pub http_listen: String,
    /// Compatibility mode's shared secret; `None` (the default): enrolled certificates only.
    pub secret: Option<Secret>,
    /// Where the RPC CA is read from (created there on first start).
    pub rpc_ca: CaFiles,
    pub refresh_interval: Duration,
    pub auth: AuthSettings,
    /// HTTPS when set; plain HTTP otherwise, on loopback unless `insecure_http`.
    pub tls: Option<TlsFiles>,
    pub insecure_http: bool,
    /// The RPC addresses advertised to clusters; empty: the address the listener bound.
    pub rpc_advertise: Vec<String>,
    /// The API URL the region list shows; `None`: derived from the bound HTTP address.
    pub http_url: Option<String>,
}

impl std::fmt::Debug for RegionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionConfig")
            .field("name", &self.name)
            .field("database_url", &redact_url(&self.database_url))
            .field("rpc_listen", &self.rpc_listen)
            .field("http_listen", &self.http_listen)
            .field("secret", &self.secret)
            .field("rpc_ca", &self.rpc_ca)
            .field("refresh_interval", &self.refresh_interval)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("insecure_http", &self.insecure_http)
            .field("rpc_advertise", &self.rpc_advertise)
            .field("http_url", &self.http_url)
            .finish()
    }
}

/// The database URL the flags, environment and file name (for `regiond token …`, which
/// needs nothing else).
pub fn database_url(args: &Args) -> Result<String> {
    let file = match &args.config {
        Some(path) => load_file_config(path)?,
        None => FileConfig::default(),
    };
    Ok(args
        .database_url
        .clone()
        .or(file.database_url)
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.into()))
}

impl RegionConfig {
    pub fn from_args(args: Args) -> Result<Self> {
        let file = match &args.config {
            Some(path) => load_file_config(path)?,
            None => FileConfig::default(),
        };
        let secret = match args.secret_file.or(file.secret_file) {
            Some(path) => Some(
                Secret::from_file(&path)
                    .with_context(|| format!("cannot read the secret file {}", path.display()))?,
            ),
            None => None,
        };
        let database_url = args
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        let rpc_ca = match (args.rpc_ca_cert, args.rpc_ca_key) {
            (Some(cert), Some(key)) => CaFiles { cert, key },
            _ => CaFiles::in_dir(&state_dir(
                args.state_dir.or(file.state_dir),
                &database_url,
            )?),
        };
        Ok(RegionConfig {
            name: args.name.or(file.name).unwrap_or_else(|| "region".into()),
            database_url,
            rpc_ca,
            rpc_listen: args
                .rpc_listen
                .or(file.rpc_listen)
                .unwrap_or_else(|| DEFAULT_RPC_LISTEN.into()),
            http_listen: args
                .http_listen
                .or(file.http_listen)
                .unwrap_or_else(|| DEFAULT_HTTP_LISTEN.into()),
            secret,
            refresh_interval: Duration::from_secs(file.refresh_interval_secs.unwrap_or(30)),
            auth: AuthSettings {
                open_metrics: args.open_metrics,
                ..AuthSettings::default()
            },
            tls: match (args.tls_cert, args.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                _ => None,
            },
            insecure_http: args.insecure_http,
            rpc_advertise: if args.rpc_advertise.is_empty() {
                file.rpc_advertise.unwrap_or_default()
            } else {
                args.rpc_advertise
            },
            http_url: args.http_url.or(file.http_url),
        })
    }
}

/// Where the region keeps its RPC CA: the directory given, else the SQLite database's own
/// directory (where the region keeps its state already). With PostgreSQL there is no such
/// directory, and guessing one (the working directory) would scatter a private key wherever
/// regiond happened to start, so it must be named.
fn state_dir(given: Option<PathBuf>, database_url: &str) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        return Ok(Path::new(path)
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf));
    }
    let postgres = ["postgres://", "postgresql://"];
    match postgres
        .iter()
        .any(|scheme| database_url.starts_with(scheme))
    {
        // Any other scheme is refused when the database is opened, before a CA is written.
        false => Ok(PathBuf::from(".")),
        true => anyhow::bail!(
            "with a PostgreSQL database regiond needs a state directory for its RPC CA: \
             give --state-dir DIR (or OSMESH_STATE_DIR, or state_dir in the config file), \
             or --rpc-ca-cert and --rpc-ca-key; every region sharing the database needs the same CA"
        ),
    }
}

pub fn load_file_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_directory_is_the_one_given_else_the_sqlite_files_own() {
        let given = Some(PathBuf::from("/var/lib/osmesh-region"));
        assert_eq!(
            state_dir(given.clone(), "postgres://db/osmesh").unwrap(),
            PathBuf::from("/var/lib/osmesh-region")
        );
        assert_eq!(
            state_dir(given, "sqlite:///srv/a/region.db").unwrap(),
            PathBuf::from("/var/lib/osmesh-region")
        );
        assert_eq!(
            state_dir(None, "sqlite:///srv/a/region.db").unwrap(),
            PathBuf::from("/srv/a")
        );
        assert_eq!(
            state_dir(None, "sqlite://region.db").unwrap(),
            PathBuf::from(".")
        );
    }

    #[test]
    fn postgresql_without_a_state_directory_is_refused_by_name() {
        let err = state_dir(None, "postgres://postgres@127.0.0.1/test")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--state-dir") && err.contains("--rpc-ca-cert"),
            "{err}"
        );
    }
}
