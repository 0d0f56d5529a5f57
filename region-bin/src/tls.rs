//! HTTPS for the API (rustls, ring as the crypto provider), and the rule that keeps plain
//! HTTP on loopback unless the operator says otherwise.

use anyhow::{bail, Context, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The certificate chain and key the API serves HTTPS with.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM: the server's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1); refused when group or others may read it.
    pub key: PathBuf,
}

/// A rustls server configuration from the PEM files, and the SHA-256 fingerprint of the
/// server certificate (what `osmesh --pin-sha256` takes).
pub fn server_config(files: &TlsFiles) -> Result<(rustls::ServerConfig, String)> {
    check_private(&files.key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("cannot read the certificate {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad PEM in {}", files.cert.display()))?;
    let Some(leaf) = chain.first() else {
        bail!("{} holds no certificate", files.cert.display());
    };
    let fingerprint = hex::encode(Sha256::digest(leaf.as_ref()));
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read a private key from {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("no TLS protocol version available")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not make a TLS configuration")?;
    Ok((config, fingerprint))
}

pub(crate) fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read the TLS key {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "the TLS key {} may be read by group or others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// Plain HTTP is refused on an address that is not loopback, unless `insecure_http`: then
/// it is allowed with a warning at start.
pub fn check_plain_http(listen: &str, insecure_http: bool) -> Result<()> {
    let addrs: Vec<_> = listen
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve the HTTP address {listen}"))?
        .collect();
    let exposed: Vec<_> = addrs.iter().filter(|a| !a.ip().is_loopback()).collect();
    if exposed.is_empty() {
        return Ok(());
    }
    if !insecure_http {
        bail!(
            "refusing to serve the API over plain HTTP on {listen}, which is not loopback: tokens and secrets would cross the network in clear; give --tls-cert and --tls-key, or --insecure-http to accept that"
        );
    }
    tracing::warn!(
        http = listen,
        "serving the API over plain HTTP on a non-loopback address (--insecure-http): tokens and secrets cross the network in clear"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_stays_on_loopback_unless_told() {
        assert!(check_plain_http("127.0.0.1:0", false).is_ok());
        assert!(check_plain_http("[::1]:0", false).is_ok());
        let err = check_plain_http("0.0.0.0:0", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-cert"), "{err}");
        assert!(check_plain_http("0.0.0.0:0", true).is_ok());
    }
}
