//! The cluster's credentials (issue 13): enrollment with a one-time token on first start, and
//! the certificate it yields, kept in the state directory.
//!
//! Files in the state directory, all mode 0600: `cluster.key` (the private key, generated
//! here, never sent), `cluster.pem` (the certificate the region issued, naming the cluster),
//! `region-ca.pem` (the region's CA, checked against the token's pin before it is saved).

use anyhow::{bail, ensure, Context, Result};
use osmesh_net::backoff::Backoff;
use osmesh_net::handshake::{dial_enroll, HandshakeConfig, HandshakeError, Secret};
use osmesh_net::tls::{cluster_client_config, credential_of, RegionTrust, TlsDialer};
use osmesh_net::{Dialer, NetError, DEFAULT_MAX_FRAME};
use rand::RngCore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The prefix (and version) of an enrollment token: `osmj1.<ca sha256 hex>.<secret hex>`.
pub const TOKEN_PREFIX: &str = "osmj1";

/// Where the credentials live in a state directory.
#[derive(Clone, Debug)]
pub struct CredentialFiles {
    pub key: PathBuf,
    pub cert: PathBuf,
    pub ca: PathBuf,
}

impl CredentialFiles {
    pub fn in_dir(dir: &Path) -> CredentialFiles {
        CredentialFiles {
            key: dir.join("cluster.key"),
            cert: dir.join("cluster.pem"),
            ca: dir.join("region-ca.pem"),
        }
    }

    /// Whether the cluster has enrolled (all three files are there).
    pub fn exist(&self) -> bool {
        self.key.exists() && self.cert.exists() && self.ca.exists()
    }
}

/// An enrollment token, parsed: the region CA's pin and the one-time secret.
pub struct Token {
    pub ca_sha256: [u8; 32],
    pub secret: Secret,
}

impl Token {
    /// Parses `osmj1.<64 hex>.<hex secret>`; the error never repeats the token.
    pub fn parse(text: &str) -> Result<Token> {
        let mut parts = text.trim().split('.');
        let (Some(prefix), Some(pin), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            bail!("not an enrollment token: expected {TOKEN_PREFIX}.<ca sha256>.<secret>");
        };
        ensure!(
            prefix == TOKEN_PREFIX,
            "not an enrollment token: it must start with {TOKEN_PREFIX}."
        );
        let pin = hex::decode(pin).context("the token's CA fingerprint is not hex")?;
        let ca_sha256: [u8; 32] = pin
            .try_into()
            .map_err(|_| anyhow::anyhow!("the token's CA fingerprint is not 32 bytes"))?;
        ensure!(
            !secret.is_empty() && secret.bytes().all(|b| b.is_ascii_hexdigit()),
            "the token's secret is not hex"
        );
        Ok(Token {
            ca_sha256,
            secret: Secret::new(secret.as_bytes().to_vec()),
        })
    }
}

/// Enrolls `identity` with the region(s) at `regions`, tried in turn, using `token`, and
/// writes the credentials to `files`. Refuses a region whose CA does not match the token.
pub async fn enroll(
    identity: &str,
    regions: &[String],
    token: &Token,
    files: &CredentialFiles,
) -> Result<()> {
    let key = rcgen::KeyPair::generate().context("cannot generate the cluster key")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, identity);
    let csr = params
        .serialize_request(&key)
        .context("cannot make the CSR")?;
    let tls = cluster_client_config(RegionTrust::PinnedCa(token.ca_sha256), None)?;
    let dialer = TlsDialer::new(tls, DEFAULT_MAX_FRAME);
    let handshake = HandshakeConfig::certificates(identity);
    let mut backoff = Backoff::new(ENROLL_RETRY_BASE, ENROLL_RETRY_CAP);
    loop {
        let mut unreachable = None;
        for region in regions {
            let mut nonce = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut nonce);
            let attempt = async {
                let conn = dialer.dial(region).await?;
                dial_enroll(conn, &handshake, nonce, &token.secret, csr.der().to_vec()).await
            };
            match attempt.await {
                Ok(issued) => {
                    check_issued(identity, token, &issued)?;
                    save(files, &key.serialize_pem(), &issued.certificate, &issued.ca)?;
                    tracing::info!(cluster = %identity, %region, "enrolled: certificate saved");
                    return Ok(());
                }
                Err(e) if is_unreachable(&e) => unreachable = Some((region, e)),
                // The region answered: a refused token, a CA that is not the pinned one. The
                // regions share one database, so no other region would say otherwise.
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("enrollment refused by the region at {region}")))
                }
            }
        }
        let Some((region, e)) = unreachable else {
            bail!("no region address to enroll with");
        };
        let delay = backoff.next_delay(&mut rand::rngs::OsRng);
        tracing::warn!(
            %region,
            attempt = backoff.attempt,
            "no region reachable to enroll with; retrying in {delay:.1?}: {e}"
        );
        tokio::time::sleep(delay).await;
    }
}

/// First and largest wait between enrollment rounds while no region can be reached (a
/// cluster installed before its region is up keeps trying; the token expires in 24 h).
const ENROLL_RETRY_BASE: Duration = Duration::from_secs(1);
const ENROLL_RETRY_CAP: Duration = Duration::from_secs(30);

/// Whether an enrollment attempt failed before any region could answer it: nothing
/// listening, a dropped or timed-out connection. A TLS failure (the region's CA is not the
/// one the token pins; rustls reports it as `InvalidData`) or any refusal is final.
fn is_unreachable(e: &HandshakeError) -> bool {
    match e {
        HandshakeError::Timeout(_) | HandshakeError::Net(NetError::Closed) => true,
        HandshakeError::Net(NetError::Io(io)) => !matches!(
            io.kind(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
        ),
        _ => false,
    }
}

/// The issued CA is the pinned one, and the certificate names us.
fn check_issued(
    identity: &str,
    token: &Token,
    issued: &osmesh_net::handshake::Issued,
) -> Result<()> {
    let ca = CertificateDer::from_pem_slice(issued.ca.as_bytes())
        .context("the region sent a CA that is not PEM")?;
    ensure!(
        Sha256::digest(ca.as_ref()).as_slice() == token.ca_sha256,
        "the region sent a CA that does not match the token's fingerprint"
    );
    let cert = CertificateDer::from_pem_slice(issued.certificate.as_bytes())
        .context("the region sent a certificate that is not PEM")?;
    let named = credential_of(cert.as_ref()).map(|c| c.identity);
    ensure!(
        named.as_deref() == Some(identity),
        "the region issued a certificate that does not name {identity:?}"
    );
    Ok(())
}

fn save(files: &CredentialFiles, key: &str, cert: &str, ca: &str) -> Result<()> {
    if let Some(dir) = files.key.parent() {
        create_private_dir(dir)?;
    }
    write_private(&files.key, key.as_bytes())?;
    write_private(&files.cert, cert.as_bytes())?;
    write_private(&files.ca, ca.as_bytes())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes `bytes` to `path` mode 0600, replacing an older file of a previous enrollment.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The saved credentials: the CA to trust and the certificate and key to present. The
/// certificate must name `identity`.
pub fn load(
    files: &CredentialFiles,
    identity: &str,
) -> Result<(
    CertificateDer<'static>,
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
)> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&files.key)
        .with_context(|| format!("cannot read {}", files.key.display()))?
        .permissions()
        .mode();
    ensure!(
        mode & 0o077 == 0,
        "the key {} may be read by group or others (mode {:o}); chmod 600 it",
        files.key.display(),
        mode & 0o777
    );
    let ca = CertificateDer::from_pem_file(&files.ca)
        .with_context(|| format!("cannot read the region CA {}", files.ca.display()))?;
    let cert = CertificateDer::from_pem_file(&files.cert)
        .with_context(|| format!("cannot read the certificate {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read the key {}", files.key.display()))?;
    let named = credential_of(cert.as_ref()).map(|c| c.identity);
    ensure!(
        named.as_deref() == Some(identity),
        "the certificate {} names {named:?}, not {identity:?}; enroll this cluster again",
        files.cert.display()
    );
    Ok((ca, vec![cert], key))
}
