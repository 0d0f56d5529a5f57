//! osmesh-cluster: the cluster controller behind `clusterd`.
//!
//! What lives here: configuration (name, region addresses, credentials, boot-image
//! directory, declared-OS TOML), enrollment, start-up of the cluster actor with its TLS
//! dialer, the optional status listener and sample boot-image trees.
//!
//! What it must not know: region internals (it only speaks the protocol) or the simulator.

pub mod credentials;
pub mod daemon;
pub mod sample;
pub mod status;

use actix::{Actor, Addr};
use anyhow::{Context, Result};
use clap::Parser;
use osmesh_actors::cluster::{ClusterActor, ClusterSettings, ImageSource};
use osmesh_core::image::{read_maas_meta, scan_boot_resources};
use osmesh_core::os::{parse_declared, RegistryConfig, UbuntuDate, UbuntuReleaseTable};
use osmesh_core::{BootImage, ClusterId};
use osmesh_net::handshake::{HandshakeConfig, Secret};
use osmesh_net::messages::PreseedTemplate;
use osmesh_net::peer::PeerConfig;
use osmesh_net::tls::{cluster_client_config, RegionTrust, TlsDialer};
use osmesh_net::DEFAULT_MAX_FRAME;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};

use credentials::CredentialFiles;
use std::sync::Arc;
use std::time::Duration;

/// How long the cluster gives the region to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Parser)]
#[command(name = "clusterd", about = "The osmesh cluster controller")]
pub struct Args {
    /// The cluster's identity (what it authenticates as); defaults to its name.
    #[arg(long, env = "OSMESH_CLUSTER_ID")]
    pub id: Option<String>,
    /// The cluster's human-readable name.
    #[arg(long, env = "OSMESH_CLUSTER_NAME")]
    pub name: String,
    /// Region RPC address(es), tried in turn; repeat the flag or separate with commas.
    #[arg(
        long = "region",
        env = "OSMESH_REGION",
        value_delimiter = ',',
        required = true
    )]
    pub regions: Vec<String>,
    /// Compatibility mode (off unless given): authenticate with a secret shared with the
    /// region instead of an enrolled certificate.
    #[arg(long, env = "OSMESH_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Directory of the cluster's credentials (`cluster.key`, `cluster.pem`, `region-ca.pem`),
    /// written at enrollment; required unless in compatibility mode.
    #[arg(long, env = "OSMESH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// File holding a one-time enrollment token (`osmesh clusters enroll NAME` prints one),
    /// used when the state directory holds no certificate yet.
    #[arg(long, env = "OSMESH_ENROLL_TOKEN_FILE")]
    pub enroll_token_file: Option<PathBuf>,
    /// Root of the boot-resource tree: <root>/<osystem>/<arch>/<subarch>/<release>/<label>/.
    #[arg(long, env = "OSMESH_BOOT_RESOURCES")]
    pub images: PathBuf,
    /// TOML file of OS definitions this cluster ships for its own hardware.
    #[arg(long, env = "OSMESH_DECLARED_OS")]
    pub declared_os: Option<PathBuf>,
    /// Directory of preseed templates (one file per template, named after it).
    #[arg(long, env = "OSMESH_PRESEEDS")]
    pub preseeds: Option<PathBuf>,
    /// Seconds between rescans of the boot-resource tree.
    #[arg(long, default_value_t = 10)]
    pub rescan_secs: u64,
}

/// Everything clusterd needs to start, read and checked.
pub struct ClusterConfig {
    pub settings: ClusterSettings,
    /// TLS towards the region: its CA (or, in compatibility mode, the secret's proofs) and
    /// the cluster's certificate.
    pub tls: rustls::ClientConfig,
    pub images_root: PathBuf,
    pub registry: RegistryConfig,
    pub templates: Vec<PreseedTemplate>,
}

impl ClusterConfig {
    /// Reads the secret, the declared-OS file and the templates; checks the image directory.
    pub fn from_args(args: Args) -> Result<Self> {
        anyhow::ensure!(
            args.images.is_dir(),
            "the boot-resource directory {} does not exist or is not a directory",
            args.images.display()
        );
        let mut registry = RegistryConfig {
            ubuntu_releases: load_ubuntu_releases(Path::new(SYSTEM_UBUNTU_CSV)),
            today: Some(today()),
            ..RegistryConfig::default()
        };
        if let Some(path) = &args.declared_os {
            registry.declared = load_declared(path)?;
        }
        // Titles of custom and Ubuntu Core images from MAAS's metadata, read at start-up.
        match read_maas_meta(&args.images) {
            Some(Ok(meta)) => registry.custom_titles = meta.titles(&["custom", "ubuntu-core"]),
            Some(Err(err)) => tracing::warn!(%err, "ignoring maas.meta"),
            None => {}
        }
        let templates = match &args.preseeds {
            Some(dir) => load_templates(dir)?,
            None => Vec::new(),
        };
        let id = ClusterId::new(args.identity());
        osmesh_core::fields::CLUSTER_ID
            .check(id.as_str())
            .map_err(|e| anyhow::anyhow!("the cluster id: {e}"))?;
        let (handshake, tls) = match &args.secret_file {
            Some(path) => {
                let secret = Secret::from_file(path)
                    .with_context(|| format!("cannot read the secret file {}", path.display()))?;
                let tls = cluster_client_config(RegionTrust::SecretProves, None)?;
                (HandshakeConfig::new(id.to_string(), secret), tls)
            }
            None => {
                let files = CredentialFiles::in_dir(&args.require_state_dir()?);
                anyhow::ensure!(
                    files.exist(),
                    "not enrolled: no certificate in {}; start once with --enroll-token-file \
                     (an admin gets a token with `osmesh clusters enroll {}`)",
                    files.cert.display(),
                    id.as_str()
                );
                let (ca, chain, key) = credentials::load(&files, id.as_str())?;
                let tls = cluster_client_config(RegionTrust::Ca(ca), Some((chain, key)))?;
                (HandshakeConfig::certificates(id.to_string()), tls)
            }
        };
        let settings = ClusterSettings {
            handshake: HandshakeConfig {
                timeout: HANDSHAKE_TIMEOUT,
                ..handshake
            },
            id,
            name: args.name,
            region_addrs: args.regions,
            peer: PeerConfig::default(),
            rescan_interval: Duration::from_secs(args.rescan_secs.max(1)),
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
        };
        Ok(ClusterConfig {
            settings,
            tls,
            images_root: args.images,
            registry,
            templates,
        })
    }
}

impl Args {
    /// The identity the cluster authenticates as: `--id`, else its name.
    pub fn identity(&self) -> String {
        self.id.clone().unwrap_or_else(|| self.name.clone())
    }

    fn require_state_dir(&self) -> Result<PathBuf> {
        self.state_dir.clone().context(
            "a state directory is required for the cluster's certificate: --state-dir or \
             OSMESH_STATE_DIR (or --secret-file for compatibility mode)",
        )
    }
}

/// Enrolls the cluster when it has an enrollment token and no certificate yet; does nothing
/// in compatibility mode or once enrolled. Call before [`ClusterConfig::from_args`], inside a
/// tokio runtime.
pub async fn enroll_if_needed(args: &Args) -> Result<()> {
    if args.secret_file.is_some() {
        return Ok(());
    }
    let Some(token_file) = &args.enroll_token_file else {
        return Ok(());
    };
    let files = CredentialFiles::in_dir(&args.require_state_dir()?);
    if files.exist() {
        tracing::info!("already enrolled; the enrollment token is not used");
        return Ok(());
    }
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(token_file).with_context(|| {
            format!("cannot read the enrollment token {}", token_file.display())
        })?);
    let token = credentials::Token::parse(&text)?;
    credentials::enroll(&args.identity(), &args.regions, &token, &files).await
}

/// distro-info-data's Ubuntu table, as MAAS reads it through python's `distro_info`.
pub const SYSTEM_UBUNTU_CSV: &str = "/usr/share/distro-info/ubuntu.csv";

/// The Ubuntu release table at `path` where it exists and parses, else the bundled copy (a
/// table that does not parse is logged, not fatal: titles and support status fall back).
pub fn load_ubuntu_releases(path: &Path) -> UbuntuReleaseTable {
    let Ok(text) = std::fs::read_to_string(path) else {
        return UbuntuReleaseTable::built_in();
    };
    match UbuntuReleaseTable::parse_csv(&text) {
        Ok(table) if !table.is_empty() => table,
        Ok(_) => UbuntuReleaseTable::built_in(),
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "using the bundled Ubuntu release table");
            UbuntuReleaseTable::built_in()
        }
    }
}

/// Today's UTC date, for Ubuntu support status (taken at start-up).
fn today() -> UbuntuDate {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    UbuntuDate::from_unix_ms(ms)
}

/// Reads and validates a declared-OS TOML file; errors name the file, line and field.
pub fn load_declared(path: &Path) -> Result<Vec<osmesh_core::os::DeclaredOs>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the declared-OS file {}", path.display()))?;
    parse_declared(&path.display().to_string(), &text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Reads every file of a template directory, sorted by name.
pub fn load_templates(dir: &Path) -> Result<Vec<PreseedTemplate>> {
    let mut templates = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the preseed directory {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            tracing::warn!(path = %path.display(), "skipping a template with a non-UTF-8 name");
            continue;
        };
        let content = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the template {}", path.display()))?;
        templates.push(PreseedTemplate {
            name: name.to_string(),
            osystem: None,
            content,
        });
    }
    templates.sort();
    Ok(templates)
}

/// Boot images from a directory tree, rescanned on demand.
pub struct DirectoryImages {
    root: PathBuf,
}

impl DirectoryImages {
    pub fn new(root: PathBuf) -> Self {
        DirectoryImages { root }
    }
}

impl ImageSource for DirectoryImages {
    fn scan(&mut self) -> Vec<BootImage> {
        let report = scan_boot_resources(&self.root);
        for skipped in &report.skipped {
            tracing::debug!(?skipped, "skipped a boot-resource entry");
        }
        report.images
    }
}

/// Starts the cluster actor over TCP. Must be called inside an actix `System`.
pub fn start(config: ClusterConfig) -> Addr<ClusterActor> {
    let ClusterConfig {
        settings,
        tls,
        images_root,
        registry,
        templates,
    } = config;
    ClusterActor::new(
        settings,
        Arc::new(TlsDialer::new(tls, DEFAULT_MAX_FRAME)),
        Box::new(DirectoryImages::new(images_root)),
        registry,
        templates,
        StdRng::from_entropy(),
    )
    .start()
}

#[cfg(test)]
mod release_table_tests {
    use super::*;

    #[test]
    fn the_system_table_is_used_where_it_exists_else_the_bundled_one() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load_ubuntu_releases(&dir.path().join("absent.csv"));
        assert_eq!(missing, UbuntuReleaseTable::built_in());

        let system = dir.path().join("ubuntu.csv");
        std::fs::write(
            &system,
            "version,codename,series,created,release,eol\n30.04 LTS,Zany Zebu,zany,2029-10-01,2030-04-20,2035-05-01\n",
        )
        .unwrap();
        let table = load_ubuntu_releases(&system);
        assert_eq!(table.len(), 1);
        assert_eq!(table.get("zany").map(|r| r.lts), Some(true));

        std::fs::write(&system, "not,a,table\n").unwrap();
        assert_eq!(
            load_ubuntu_releases(&system),
            UbuntuReleaseTable::built_in()
        );
    }
}
