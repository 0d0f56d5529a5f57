//! TLS 1.3 on the RPC port and cluster enrollment (issue 13), the region's side.
//!
//! The region's CA lives in its state directory (`rpc-ca.pem`, `rpc-ca.key` mode 0600),
//! generated on first start unless the operator put their own there (or named files with
//! `--rpc-ca-cert`/`--rpc-ca-key`). The server certificate is issued from it at every start
//! (key in memory only) and names `osmesh_net::tls::SERVER_NAME`.
//!
//! Enrollment, in the shape of Kubernetes' TLS bootstrapping: an admin asks for a one-time
//! token for a cluster name (`POST /api/v1/clusters/{name}/enroll`); the token carries the
//! CA's SHA-256 (`osmj1.<ca sha256>.<secret>`), so the cluster can check it reached this
//! region; the cluster presents the secret with a CSR on its first connection and receives a
//! certificate naming it (its common name), signed by the CA. Only the secret's SHA-256 is
//! stored, and only until it is redeemed or expires.

use anyhow::{bail, Context, Result};
use osmesh_core::ClusterId;
use osmesh_net::handshake::{Enroller, Issued};
use osmesh_net::tls::{fingerprint, region_server_config, SERVER_NAME};
use osmesh_store::Store;
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long an enrollment token is valid: long enough to carry it to the cluster's host and
/// start `clusterd`, short enough that a leaked one is soon worthless.
pub const ENROLLMENT_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long an issued cluster certificate is valid. Revocation, not expiry, is how access is
/// taken away (the region admits only the certificate on record); renewal is re-enrollment.
pub const CLUSTER_CERT_DAYS: i64 = 825;

/// The prefix of every enrollment token, and its version.
pub const TOKEN_PREFIX: &str = "osmj1";

/// Where the CA comes from.
#[derive(Clone, Debug)]
pub struct CaFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CaFiles {
    /// The files in a state directory.
    pub fn in_dir(dir: &Path) -> CaFiles {
        CaFiles {
            cert: dir.join("rpc-ca.pem"),
            key: dir.join("rpc-ca.key"),
        }
    }
}

/// The region's CA: signs its server certificate and the clusters' certificates.
pub struct RegionCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The CA certificate as stored (PEM), and its DER's SHA-256 (what tokens pin).
    pem: String,
    der: CertificateDer<'static>,
    pin: String,
}

impl std::fmt::Debug for RegionCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionCa")
            .field("sha256", &self.pin)
            .finish_non_exhaustive()
    }
}

impl RegionCa {
    /// Loads the CA from `files`, or creates it there (key mode 0600) when neither exists.
    pub fn load_or_create(files: &CaFiles) -> Result<RegionCa> {
        match (files.cert.exists(), files.key.exists()) {
            (true, true) => Self::load(files),
            (false, false) => {
                Self::create(files)?;
                Self::load(files)
            }
            _ => bail!(
                "only one of {} and {} exists; give both or neither",
                files.cert.display(),
                files.key.display()
            ),
        }
    }

    fn create(files: &CaFiles) -> Result<()> {
        let key = KeyPair::generate().context("cannot generate the CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, "osmesh region RPC CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let cert = params.self_signed(&key)?;
        if let Some(dir) = files.key.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        write_private(&files.key, key.serialize_pem().as_bytes())?;
        std::fs::write(&files.cert, cert.pem())
            .with_context(|| format!("cannot write {}", files.cert.display()))?;
        tracing::info!(cert = %files.cert.display(), "generated the region's RPC CA");
        Ok(())
    }

    fn load(files: &CaFiles) -> Result<RegionCa> {
        crate::tls::check_private(&files.key)?;
        let pem = std::fs::read_to_string(&files.cert)
            .with_context(|| format!("cannot read {}", files.cert.display()))?;
        let key_pem = zeroize::Zeroizing::new(
            std::fs::read_to_string(&files.key)
                .with_context(|| format!("cannot read {}", files.key.display()))?,
        );
        let key = KeyPair::from_pem(&key_pem).context("the CA key is not a PEM private key")?;
        let params = CertificateParams::from_ca_cert_pem(&pem)
            .context("the CA certificate is not a PEM certificate")?;
        let der = CertificateDer::from(
            pem::parse(&pem)
                .context("the CA certificate is not PEM")?
                .contents()
                .to_vec(),
        );
        // Re-signed only to serve as the issuer object; issued certificates chain to the
        // stored CA certificate by its name and key.
        let cert = params.self_signed(&key)?;
        let pin = fingerprint(&der);
        Ok(RegionCa {
            cert,
            key,
            pem,
            der,
            pin,
        })
    }

    /// SHA-256 of the CA certificate, lowercase hex.
    pub fn fingerprint(&self) -> &str {
        &self.pin
    }

    /// The RPC port's TLS configuration: a fresh server certificate for `SERVER_NAME`.
    pub fn server_config(&self) -> Result<rustls::ServerConfig> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, SERVER_NAME);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        let chain = vec![cert.der().clone(), self.der.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok(region_server_config(chain, key, self.der.clone())?)
    }

    /// Signs `csr_der` into a client certificate naming `identity` (its common name); the
    /// CSR's own names are ignored, only its public key is used.
    fn issue(&self, identity: &str, csr_der: &[u8]) -> Result<String, String> {
        let der = rustls_pki_types::CertificateSigningRequestDer::from(csr_der);
        let mut csr = CertificateSigningRequestParams::from_der(&der)
            .map_err(|e| format!("the CSR does not parse: {e}"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, identity);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(CLUSTER_CERT_DAYS);
        csr.params = params;
        let cert = csr
            .signed_by(&self.cert, &self.key)
            .map_err(|e| format!("cannot sign the CSR: {e}"))?;
        Ok(cert.pem())
    }
}

/// Writes `bytes` to a new file `path`, mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A new enrollment token for a region whose CA has `ca_sha256`, and the hash to store.
pub fn new_token(ca_sha256: &str) -> (zeroize::Zeroizing<String>, String) {
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut *secret);
    let secret_hex = zeroize::Zeroizing::new(hex::encode(*secret));
    let hash = token_hash(secret_hex.as_bytes());
    let token = zeroize::Zeroizing::new(format!("{TOKEN_PREFIX}.{ca_sha256}.{}", *secret_hex));
    (token, hash)
}

/// What is stored of a token's secret part: its SHA-256, hex.
pub fn token_hash(secret: &[u8]) -> String {
    hex::encode(Sha256::digest(secret))
}

/// Enrolls `id`: stores a new token's hash and returns the token (shown once).
pub fn enroll(
    store: &Store,
    ca: &RegionCa,
    id: &ClusterId,
    now_ms: i64,
) -> Result<(zeroize::Zeroizing<String>, i64)> {
    let (token, hash) = new_token(ca.fingerprint());
    let lifetime = i64::try_from(ENROLLMENT_TOKEN_LIFETIME.as_millis()).unwrap_or(i64::MAX);
    let expires = now_ms.saturating_add(lifetime);
    store.create_enrollment(id, &hash, expires, now_ms)?;
    Ok((token, expires))
}

/// The region's `Enroller`: redeems a token (once) and signs the CSR.
#[derive(Clone)]
pub struct RegionEnroller {
    pub ca: Arc<RegionCa>,
    pub store: Store,
}

impl std::fmt::Debug for RegionEnroller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionEnroller").finish_non_exhaustive()
    }
}

impl Enroller for RegionEnroller {
    fn enroll(&self, identity: &str, token: &[u8], csr_der: &[u8]) -> Result<Issued, String> {
        let id = ClusterId::new(identity);
        let refused = || {
            format!(
                "enrollment of {identity:?} refused: the token is unknown, used, expired or \
                 for another cluster (ask an admin: osmesh clusters enroll {identity})"
            )
        };
        let now = crate::wall_clock_ms();
        match self.store.redeem_enrollment(&id, &token_hash(token), now) {
            Ok(true) => {}
            Ok(false) => return Err(refused()),
            Err(e) => {
                tracing::error!(%e, "cannot redeem an enrollment token");
                return Err("the region cannot read its store now; try again".into());
            }
        }
        let certificate = self.ca.issue(identity, csr_der)?;
        let der = pem::parse(&certificate).map_err(|e| e.to_string())?;
        if let Err(e) = self
            .store
            .set_enrolled_certificate(&id, &fingerprint(der.contents()))
        {
            tracing::error!(%e, "cannot record an issued certificate");
            return Err("the region cannot write its store now; enroll again".into());
        }
        Ok(Issued {
            certificate,
            ca: self.ca.pem.clone(),
        })
    }
}
