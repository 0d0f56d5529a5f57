//! `osmesh demo`: a region on SQLite and three clusters with different sample image trees, in
//! one process over real loopback TCP, until Ctrl-C.

use anyhow::{Context, Result};
use osmesh_cluster::sample::{
    sample_declares_os, sample_templates, write_sample_tree, SAMPLE_DECLARED_OS,
};
use osmesh_cluster::{Args as ClusterArgs, ClusterConfig};
use osmesh_region::config::RegionConfig;
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
            // Clusters enroll (below); no shared secret.
            secret: None,
            rpc_ca: osmesh_region::rpc_tls::CaFiles::in_dir(&dir),
            refresh_interval: std::time::Duration::from_secs(30),
            auth: Default::default(),
            // The demo stays on loopback HTTP.
            tls: None,
            insecure_http: false,
            rpc_advertise: Vec::new(),
            http_url: None,
        })
        .await?;
        for (variant, name) in DEMO_CLUSTERS.iter().enumerate() {
            let args = cluster_args(&dir, variant, name, &region.rpc_addr)?;
            enroll_cluster(&region, &args).await?;
            let mut config = ClusterConfig::from_args(args)?;
            config.templates = sample_templates(variant);
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

/// Enrolls a demo cluster as an admin would (`osmesh clusters enroll NAME`, then the
/// token to `clusterd --enroll-token-file`), unless it enrolled in an earlier run of a kept
/// `--dir`.
async fn enroll_cluster(region: &osmesh_region::RunningRegion, args: &ClusterArgs) -> Result<()> {
    let (Some(state_dir), Some(token_file)) = (&args.state_dir, &args.enroll_token_file) else {
        anyhow::bail!("the demo's cluster arguments name no state directory");
    };
    if osmesh_cluster::credentials::CredentialFiles::in_dir(state_dir).exist() {
        return Ok(());
    }
    let now = region
        .service
        .now_ms()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let id = osmesh_core::ClusterId::new(args.identity());
    let (token, _) = osmesh_region::rpc_tls::enroll(&region.store, &region.rpc_ca, &id, now)?;
    match std::fs::remove_file(token_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot replace {}", token_file.display()))
        }
    }
    create_private(token_file, token.as_bytes())?;
    osmesh_cluster::enroll_if_needed(args).await?;
    // The token is spent; keep no copy of it.
    let _ = std::fs::remove_file(token_file);
    Ok(())
}

fn cluster_args(dir: &Path, variant: usize, name: &str, region: &str) -> Result<ClusterArgs> {
    let images = dir.join(name).join("boot-resources");
    write_sample_tree(&images, variant)?;
    let declared_os = if sample_declares_os(variant) {
        let path = dir.join(name).join("declared-os.toml");
        std::fs::write(&path, SAMPLE_DECLARED_OS)?;
        Some(path)
    } else {
        None
    };
    Ok(ClusterArgs {
        id: None,
        name: name.to_string(),
        regions: vec![region.to_string()],
        secret_file: None,
        state_dir: Some(dir.join(name).join("state")),
        enroll_token_file: Some(dir.join(name).join("enroll-token")),
        images,
        declared_os,
        preseeds: None,
        rescan_secs: 5,
    })
}
