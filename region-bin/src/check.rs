//! `regiond --check-config`: validate the configuration as `regiond` would resolve it (flags,
//! environment, TOML file, defaults), without opening the database or binding a port, and
//! print the effective configuration with every secret masked.

use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::net::ToSocketAddrs;

use crate::config::RegionConfig;
use crate::redact_url;

/// Checks what can be checked without side effects: both listen addresses resolve to socket
/// addresses, the database URL names a backend regiond serves, the refresh interval is not 0.
/// (The secret file was already read when the config was resolved.)
pub fn validate(config: &RegionConfig) -> Result<()> {
    for (key, addr) in [
        ("rpc_listen", &config.rpc_listen),
        ("http_listen", &config.http_listen),
    ] {
        let mut addrs = addr
            .to_socket_addrs()
            .with_context(|| format!("{key} = {addr:?} is not a host:port address"))?;
        anyhow::ensure!(
            addrs.next().is_some(),
            "{key} = {addr:?} resolves to no address"
        );
    }
    anyhow::ensure!(
        !config.database_url.trim().is_empty(),
        "database_url is empty"
    );
    let url = config.database_url.as_str();
    if let Some((scheme, _)) = url.split_once("://") {
        anyhow::ensure!(
            matches!(scheme, "sqlite" | "postgres" | "postgresql"),
            "database_url scheme {scheme:?} is not sqlite://, postgres:// or postgresql://"
        );
    }
    anyhow::ensure!(
        !config.refresh_interval.is_zero(),
        "refresh_interval_secs must be at least 1"
    );
    anyhow::ensure!(!config.name.trim().is_empty(), "name is empty");
    Ok(())
}

/// The effective configuration as TOML, secrets masked (a database password, the secret).
pub fn effective(config: &RegionConfig) -> String {
    let mut out = String::from("# regiond: effective configuration (secrets masked)\n");
    let _ = writeln!(out, "name = {:?}", config.name);
    let _ = writeln!(out, "database_url = {:?}", redact_url(&config.database_url));
    let _ = writeln!(out, "rpc_listen = {:?}", config.rpc_listen);
    let _ = writeln!(out, "http_listen = {:?}", config.http_listen);
    let _ = writeln!(
        out,
        "refresh_interval_secs = {}",
        config.refresh_interval.as_secs()
    );
    if !config.rpc_advertise.is_empty() {
        let _ = writeln!(out, "rpc_advertise = {:?}", config.rpc_advertise);
    }
    if let Some(url) = &config.http_url {
        let _ = writeln!(out, "http_url = {url:?}");
    }
    let _ = writeln!(
        out,
        "# open_metrics = {} (flag --open-metrics or env OSMESH_OPEN_METRICS; not a file key)",
        config.auth.open_metrics
    );
    let _ = writeln!(
        out,
        "# compatibility secret: {:?}; RPC CA: {}",
        config.secret,
        config.rpc_ca.cert.display()
    );
    out
}
