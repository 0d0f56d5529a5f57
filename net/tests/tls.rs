//! TLS 1.3 on the TCP transport and the v2 handshake over it: the identity comes from the
//! client certificate, never from the claim; a wrong CA pin refuses the region; a v1 peer is
//! told about v2; enrollment answers `issued`.

use osmesh_net::handshake::{
    accept_handshake, dial_enroll, dial_handshake, Enroller, HandshakeConfig, HandshakeError,
    Issued, Secret,
};
use osmesh_net::tls::{
    cluster_client_config, region_server_config, RegionTrust, TlsDialer, TlsListener, SERVER_NAME,
};
use osmesh_net::{Dialer, Listener, TcpDialer, DEFAULT_MAX_FRAME};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::sync::Arc;

struct Pki {
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test region CA");
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }

    fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    fn pin(&self) -> [u8; 32] {
        Sha256::digest(self.ca.der()).into()
    }

    fn leaf(
        &self,
        common_name: &str,
        sans: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone(), self.ca_der()], key)
    }

    fn client(&self, name: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        self.leaf(name, vec![], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

async fn region(pki: &Pki) -> TlsListener {
    let (chain, key) = pki.leaf(
        "region",
        vec![SERVER_NAME.into()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let config = region_server_config(chain, key, pki.ca_der()).unwrap();
    TlsListener::bind("127.0.0.1:0", config, DEFAULT_MAX_FRAME)
        .await
        .unwrap()
}

fn dialer(
    trust: RegionTrust,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> TlsDialer {
    TlsDialer::new(
        cluster_client_config(trust, client).unwrap(),
        DEFAULT_MAX_FRAME,
    )
}

fn region_config() -> HandshakeConfig {
    HandshakeConfig {
        require_secured: true,
        ..HandshakeConfig::certificates("region")
    }
}

/// Dials `listener` with `dialer`, then runs both handshakes.
async fn both(
    listener: &mut TlsListener,
    dialer: &dyn Dialer,
    cluster: HandshakeConfig,
    region: HandshakeConfig,
) -> (
    Result<osmesh_net::Authenticated, HandshakeError>,
    Result<osmesh_net::Authenticated, HandshakeError>,
) {
    let addr = listener.local_addr();
    let dial = async {
        let conn = dialer.dial(&addr).await.unwrap();
        dial_handshake(conn, &cluster, [1; 32]).await
    };
    let accept = async {
        let conn = listener.accept().await.unwrap();
        accept_handshake(conn, &region, [2; 32]).await
    };
    tokio::join!(dial, accept)
}

#[tokio::test]
async fn the_identity_is_the_one_the_certificate_names() {
    let pki = Pki::new();
    let mut listener = region(&pki).await;
    let dialer = dialer(
        RegionTrust::PinnedCa(pki.pin()),
        Some(pki.client("cluster-a")),
    );
    let (d, a) = both(
        &mut listener,
        &dialer,
        HandshakeConfig::certificates("cluster-a"),
        region_config(),
    )
    .await;
    let (d, a) = (d.unwrap(), a.unwrap());
    assert_eq!((d.peer_identity.as_str(), d.version), ("region", 2));
    assert_eq!(a.peer_identity, "cluster-a");
    let credential = a.credential.expect("a certificate credential");
    assert_eq!(credential.identity, "cluster-a");
    assert_eq!(credential.fingerprint.len(), 64);
}

#[tokio::test]
async fn a_forged_claim_is_refused_whatever_the_certificate() {
    let pki = Pki::new();
    let mut listener = region(&pki).await;
    let dialer = dialer(
        RegionTrust::PinnedCa(pki.pin()),
        Some(pki.client("cluster-a")),
    );
    let (d, a) = both(
        &mut listener,
        &dialer,
        HandshakeConfig::certificates("cluster-b"),
        region_config(),
    )
    .await;
    match d.unwrap_err() {
        HandshakeError::Refused(reason) => {
            assert!(reason.contains("certificate names"), "{reason}")
        }
        other => panic!("expected a refusal, got {other}"),
    }
    assert!(matches!(a.unwrap_err(), HandshakeError::NotAuthorised(_)));
}

#[tokio::test]
async fn without_a_certificate_the_cert_step_is_refused() {
    let pki = Pki::new();
    let mut listener = region(&pki).await;
    let dialer = dialer(RegionTrust::Ca(pki.ca_der()), None);
    let (d, _) = both(
        &mut listener,
        &dialer,
        HandshakeConfig::certificates("cluster-a"),
        region_config(),
    )
    .await;
    let reason = d.unwrap_err().to_string();
    assert!(reason.contains("no client certificate"), "{reason}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_by_tls() {
    let pki = Pki::new();
    let other = Pki::new();
    let mut listener = region(&pki).await;
    let addr = listener.local_addr();
    let dialer = dialer(
        RegionTrust::PinnedCa(pki.pin()),
        Some(other.client("cluster-a")),
    );
    let accept = tokio::spawn(async move {
        let conn = listener.accept().await.unwrap();
        accept_handshake(conn, &region_config(), [2; 32]).await
    });
    let dialed = match dialer.dial(&addr).await {
        Ok(conn) => dial_handshake(conn, &HandshakeConfig::certificates("cluster-a"), [1; 32])
            .await
            .map(|_| ()),
        Err(e) => Err(HandshakeError::Net(e)),
    };
    assert!(dialed.is_err());
    assert!(accept.await.unwrap().is_err());
}

#[tokio::test]
async fn a_cluster_with_a_wrong_ca_pin_refuses_the_region() {
    let pki = Pki::new();
    let mut listener = region(&pki).await;
    let addr = listener.local_addr();
    tokio::spawn(async move {
        let conn = listener.accept().await.unwrap();
        let _ = accept_handshake(conn, &region_config(), [2; 32]).await;
    });
    let dialer = dialer(RegionTrust::PinnedCa([7; 32]), None);
    let err = dialer.dial(&addr).await.err().expect("the dial must fail");
    assert!(err.to_string().contains("pinned fingerprint"), "{err}");
}

#[tokio::test]
async fn a_v1_peer_on_plain_tcp_is_told_about_v2() {
    let pki = Pki::new();
    let mut listener = region(&pki).await;
    let mut v1 = HandshakeConfig::new("cluster-a", Secret::new(*b"an old shared secret"));
    v1.versions = 1..=1;
    let (d, _) = both(
        &mut listener,
        &TcpDialer::new(DEFAULT_MAX_FRAME),
        v1,
        region_config(),
    )
    .await;
    let reason = d.unwrap_err().to_string();
    assert!(reason.contains("protocol v2"), "{reason}");
}

#[tokio::test]
async fn a_v2_peer_on_plain_tcp_is_refused() {
    let pki = Pki::new();
    let mut listener = region(&pki).await;
    let plain = HandshakeConfig::new("cluster-a", Secret::new(*b"a shared secret of some length"));
    let (d, _) = both(
        &mut listener,
        &TcpDialer::new(DEFAULT_MAX_FRAME),
        plain,
        region_config(),
    )
    .await;
    let reason = d.unwrap_err().to_string();
    assert!(reason.contains("TLS 1.3"), "{reason}");
}

#[tokio::test]
async fn the_shared_secret_works_inside_tls_only_when_enabled() {
    let pki = Pki::new();
    let secret = Secret::new(*b"a shared secret of some length!!");
    let mut listener = region(&pki).await;
    let dialer = dialer(RegionTrust::SecretProves, None);
    let cluster = HandshakeConfig::new("cluster-a", secret.clone());
    let (d, _) = both(&mut listener, &dialer, cluster.clone(), region_config()).await;
    let reason = d.unwrap_err().to_string();
    assert!(reason.contains("compatibility mode"), "{reason}");

    let compat = HandshakeConfig {
        secret: Some(secret),
        ..region_config()
    };
    let (d, a) = both(&mut listener, &dialer, cluster, compat).await;
    assert_eq!(d.unwrap().peer_identity, "region");
    let a = a.unwrap();
    assert_eq!(
        (a.peer_identity.as_str(), a.credential),
        ("cluster-a", None)
    );
}

#[derive(Debug)]
struct FixedEnroller;

impl Enroller for FixedEnroller {
    fn enroll(&self, identity: &str, token: &[u8], csr: &[u8]) -> Result<Issued, String> {
        if token != b"good-token" {
            return Err("enrollment token refused".into());
        }
        Ok(Issued {
            certificate: format!("cert for {identity}, csr of {} bytes", csr.len()),
            ca: "ca".into(),
        })
    }
}

#[tokio::test]
async fn enrollment_answers_issued_and_ends_the_connection() {
    let pki = Pki::new();
    let mut listener = region(&pki).await;
    let addr = listener.local_addr();
    let region = HandshakeConfig {
        enroller: Some(Arc::new(FixedEnroller)),
        ..region_config()
    };
    let dialer = dialer(RegionTrust::PinnedCa(pki.pin()), None);
    for (token, ok) in [(&b"bad-token"[..], false), (&b"good-token"[..], true)] {
        let cluster = HandshakeConfig::certificates("cluster-a");
        let token = Secret::new(token.to_vec());
        let dial = async {
            let conn = dialer.dial(&addr).await.unwrap();
            dial_enroll(conn, &cluster, [1; 32], &token, vec![0; 10]).await
        };
        let accept = async {
            let conn = listener.accept().await.unwrap();
            accept_handshake(conn, &region, [2; 32]).await
        };
        let (d, a) = tokio::join!(dial, accept);
        if ok {
            assert_eq!(
                d.unwrap().certificate,
                "cert for cluster-a, csr of 10 bytes"
            );
            assert!(matches!(a.unwrap_err(), HandshakeError::Enrolled { .. }));
        } else {
            let reason = d.unwrap_err().to_string();
            assert!(
                reason.contains("token refused") && !reason.contains("bad-token"),
                "{reason}"
            );
        }
    }
}
