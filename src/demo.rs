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
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("cannot create a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let secret_file = write_secret(&dir)?;
    let system = actix_rt::System::new();
    system.block_on(async {
        let region = osmesh_region::start(RegionConfig {
            name: "demo-region".into(),
            database_url: format!("sqlite://{}", dir.join("region.db").display()),
            rpc_listen: options.rpc_listen.clone(),
            http_listen: options.http_listen.clone(),
            secret: osmesh_net::handshake::Secret::from_file(&secret_file)?,
            refresh_interval: std::time::Duration::from_secs(30),
            auth: Default::default(),
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
        println!(
            "osmesh demo: region API at {api} (RPC at {})",
            region.rpc_addr
        );
        println!("  data in {}", dir.display());
        println!("  try:  curl -s {api}/api/v1/osystems | head");
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

fn write_secret(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("shared-secret");
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    std::fs::write(&path, hex::encode(bytes))
        .with_context(|| format!("cannot write {}", path.display()))?;
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
