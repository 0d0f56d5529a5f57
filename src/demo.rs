//! `osmesh demo`: a region on SQLite and three clusters with different sample image trees, in
//! one process over real loopback TCP, until Ctrl-C.

use anyhow::{Context, Result};
use osmesh_cluster::sample::{
    sample_declares_os, sample_templates, write_sample_tree, SAMPLE_DECLARED_OS,
};
use osmesh_cluster::{Args as ClusterArgs, ClusterConfig};
use osmesh_region::config::RegionConfig;
use rand::RngCore;
use std::path::{Path, PathBuf};

/// The demo's clusters, in order; each gets the sample tree of its index.
pub const DEMO_CLUSTERS: [&str; 3] = ["cluster-a", "cluster-b", "cluster-c"];

pub struct DemoOptions {
    /// Where the database, secret and image trees go; a temporary directory when `None`.
    pub dir: Option<PathBuf>,
    pub http_listen: String,
    pub rpc_listen: String,
}

pub fn run(options: DemoOptions) -> Result<()> {
    let temp;
    let dir = match &options.dir {
        Some(dir) => {
            private_dir(dir)?;
            dir.clone()
        }
        None => {
            // tempfile creates its directories mode 0700.
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let secret_file = write_secret(&dir)?;
    let db = dir.join("region.db");
    if !db.exists() {
        // SQLite keeps the file's mode (and gives its journal files the same): 0600.
        create_private(&db, b"")?;
    }
    let system = actix_rt::System::new();
    system.block_on(async {
        let region = osmesh_region::start(RegionConfig {
            name: "demo-region".into(),
            database_url: format!("sqlite://{}", db.display()),
            rpc_listen: options.rpc_listen.clone(),
            http_listen: options.http_listen.clone(),
            secret: osmesh_net::handshake::Secret::from_file(&secret_file)?,
            refresh_interval: std::time::Duration::from_secs(30),
            auth: Default::default(),
            // The demo stays on loopback HTTP.
            tls: None,
            insecure_http: false,
        })
        .await?;
        for (variant, name) in DEMO_CLUSTERS.iter().enumerate() {
            let config = cluster_config(&dir, variant, name, &region.rpc_addr, &secret_file)?;
            osmesh_cluster::start(config);
        }
        let api = region
            .http_addrs
            .first()
            .map(|a| format!("http://{a}"))
            .unwrap_or_default();
        let token = admin_token(&region).await?;
        let saved = crate::credentials::save(&api, token.expose())?;
        println!(
            "osmesh demo: region API at {api} (RPC at {})",
            region.rpc_addr
        );
        println!("  data in {}", dir.display());
        println!(
            "  admin token (saved for {api} in {}, so the CLI uses it):",
            saved.display()
        );
        println!("        {}", token.expose());
        println!(
            "  try:  curl -s -H \"Authorization: Bearer $OSMESH_TOKEN\" {api}/api/v1/osystems | head"
        );
        println!("        cargo run --release -- osystems --api {api} --live");
        println!("        cargo run --release -- preseeds list --api {api}");
        println!("  Ctrl-C to stop");
        // The HTTP server stops on SIGINT (Ctrl-C), SIGTERM and SIGQUIT; the demo ends with it,
        // rather than leaving its region and clusters running without an API.
        region.server.await?;
        println!("stopping");
        anyhow::Ok(())
    })
}

/// The demo's admin token "demo-admin" (a previous run's, in a kept `--dir`, is revoked).
async fn admin_token(
    region: &osmesh_region::RunningRegion,
) -> Result<osmesh_region::auth::NewTokenSecret> {
    let store = &region.store;
    let now = region
        .service
        .now_ms()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = store.revoke_token(DEMO_TOKEN, now);
    let (secret, _) = osmesh_region::auth::issue_token(
        store,
        DEMO_TOKEN,
        osmesh_store::Role::Admin,
        "osmesh demo",
        now,
        None,
    )?;
    Ok(secret)
}

/// The name of the token the demo creates.
pub const DEMO_TOKEN: &str = "demo-admin";

/// `dir`, created mode 0700 if missing; an existing one must not be open to group or others.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mode = std::fs::metadata(dir)?.permissions().mode();
    anyhow::ensure!(
        mode & 0o077 == 0,
        "{} is open to group or others (mode {:o}); the demo keeps secrets there: chmod 700 it",
        dir.display(),
        mode & 0o777
    );
    Ok(())
}

/// Creates `path` mode 0600 with `contents`, refusing to write through an existing file.
fn create_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A fresh 256-bit shared secret (a kept `--dir`'s old one is replaced).
fn write_secret(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("shared-secret");
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut *bytes);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    create_private(
        &path,
        zeroize::Zeroizing::new(hex::encode(*bytes)).as_bytes(),
    )?;
    Ok(path)
}

fn cluster_config(
    dir: &Path,
    variant: usize,
    name: &str,
    region: &str,
    secret_file: &Path,
) -> Result<ClusterConfig> {
    let images = dir.join(name).join("boot-resources");
    write_sample_tree(&images, variant)?;
    let declared_os = if sample_declares_os(variant) {
        let path = dir.join(name).join("declared-os.toml");
        std::fs::write(&path, SAMPLE_DECLARED_OS)?;
        Some(path)
    } else {
        None
    };
    let mut config = ClusterConfig::from_args(ClusterArgs {
        id: None,
        name: name.to_string(),
        regions: vec![region.to_string()],
        secret_file: secret_file.to_path_buf(),
        images,
        declared_os,
        preseeds: None,
        rescan_secs: 5,
    })?;
    config.templates = sample_templates(variant);
    Ok(config)
}
