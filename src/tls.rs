//! How the CLI trusts an HTTPS region: the system's roots (default), a CA file
//! (`--ca-file`), or one pinned certificate (`--pin-sha256`, the SHA-256 of the server
//! certificate, which regiond logs at start).

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// An agent that trusts what the flags say: a pinned certificate, a CA file, or (neither
/// given) the system's roots.
pub fn agent(ca_file: Option<&Path>, pin_sha256: Option<&str>) -> Result<ureq::Agent> {
    let builder = ureq::AgentBuilder::new();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = match (ca_file, pin_sha256) {
        (None, None) => return Ok(builder.build()),
        (Some(_), Some(_)) => bail!("give --ca-file or --pin-sha256, not both"),
        (Some(ca), None) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("cannot read the CA file {}", ca.display()))?
            {
                let cert = cert.with_context(|| format!("bad PEM in {}", ca.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("unusable certificate in {}", ca.display()))?;
            }
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
        (None, Some(pin)) => {
            let verifier = PinnedCertificate {
                pin: parse_pin(pin)?,
                provider: provider.clone(),
            };
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(builder.tls_config(Arc::new(config)).build())
}

/// 64 hex digits, upper or lower case, `:` separators allowed (as openssl prints them).
fn parse_pin(pin: &str) -> Result<[u8; 32]> {
    let digits: String = pin.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(digits.to_ascii_lowercase())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    bytes.context("--pin-sha256 must be the 64 hex digits of a SHA-256 fingerprint")
}

/// Trusts exactly the certificate whose SHA-256 is `pin`, whoever issued it and whatever
/// name it carries; the handshake's signatures are still checked with it.
#[derive(Debug)]
struct PinnedCertificate {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if seen == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate (SHA-256 {}) is not the pinned one",
                hex::encode(seen)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_pin;

    #[test]
    fn pins_are_64_hex_digits_with_optional_colons() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_pin(&hex).unwrap(), [0xab; 32]);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_pin(&colons).unwrap(), [0xab; 32]);
        assert!(parse_pin("abcd").is_err());
    }
}
