//! TLS 1.3 on the TCP transport (rustls, ring). Only TCP is wrapped: in-memory and simulated
//! links stay plain, and the seam (`Dialer`, `Listener`, `FrameConn`) keeps its shape. What
//! TLS proves travels up in `FrameConn::security`: the client certificate's identity and
//! fingerprint, and the session's exported keying material (the channel binding).
//!
//! The region's listener sniffs the first byte of each connection: a TLS record (0x16) gets
//! the TLS handshake, anything else (a v1 cluster's length prefix) is read as plain frames, so
//! the RPC handshake can refuse it with a reason naming protocol v2 instead of a TLS alert a
//! v1 peer cannot read. The TLS handshake runs lazily, on the connection's first read, inside
//! the RPC handshake's deadline and handshake slot: a silent peer costs what it did before.
//!
//! The region's certificate names [`SERVER_NAME`]; a cluster checks it against the region's
//! CA, pinned by its SHA-256 fingerprint (from the enrollment token) or given as a file (saved
//! at enrollment). A cluster's client certificate names the cluster in its common name.

use futures::future::BoxFuture;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::handshake::DEFAULT_HANDSHAKE_TIMEOUT;
use crate::tcp::framed;
use crate::transport::{Credential, Secured, Security};
use crate::{Dialer, FrameConn, Listener, NetError};

/// The DNS name the region's RPC certificate carries and clusters check, whatever address
/// they dial: the CA is the region's own, so the name only has to be the one it issued.
pub const SERVER_NAME: &str = "osmesh-region";

/// The label of the keying material exported from each session as the channel binding.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-osmesh-v2 handshake";

/// Bytes of exported keying material.
pub const CHANNEL_BINDING_LEN: usize = 32;

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A TLS configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("TLS configuration: {0}")]
pub struct TlsError(pub String);

fn tls_error(e: impl std::fmt::Display) -> TlsError {
    TlsError(e.to_string())
}

/// The crypto provider of every configuration here.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of `der`, lowercase hex: a certificate's fingerprint.
pub fn fingerprint(der: &[u8]) -> String {
    hex_lower(&Sha256::digest(der))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The identity a certificate names (its subject's common name), with its fingerprint; `None`
/// when it names none or one that breaks `fields::CLUSTER_ID`.
pub fn credential_of(der: &[u8]) -> Option<Credential> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = cert.subject().iter_common_name().next()?.as_str().ok()?;
    osmesh_core::fields::CLUSTER_ID.check(name).ok()?;
    Some(Credential {
        identity: name.to_owned(),
        fingerprint: fingerprint(der),
    })
}

/// The region's server configuration: TLS 1.3 only, its certificate chain and key; a client
/// may present a certificate, which must chain to `client_ca` (enrolling clusters have none
/// yet, so presenting one is optional here and required by the RPC handshake's `cert` step).
pub fn region_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: CertificateDer<'static>,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    roots.add(client_ca).map_err(tls_error)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(tls_error)?;
    ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls_error)
}

/// How a cluster knows it reached its region.
#[derive(Clone, Debug)]
pub enum RegionTrust {
    /// A chain through the CA whose certificate has this SHA-256 (the enrollment token's pin).
    PinnedCa([u8; 32]),
    /// A chain to this CA certificate (saved at enrollment).
    Ca(CertificateDer<'static>),
    /// Compatibility mode only: any certificate, because the shared-secret proofs, bound to
    /// this TLS session's keying material, authenticate the region.
    SecretProves,
}

/// A cluster's client configuration: TLS 1.3 only, the region checked by `trust`, and its
/// own certificate and key when it has enrolled.
pub fn cluster_client_config(
    trust: RegionTrust,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(RegionVerifier {
        trust,
        provider: provider.clone(),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(tls_error),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Checks the region's chain against the pinned or given CA (webpki does the path building
/// and signatures; this only chooses the root).
#[derive(Debug)]
struct RegionVerifier {
    trust: RegionTrust,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for RegionVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let root = match &self.trust {
            RegionTrust::SecretProves => return Ok(ServerCertVerified::assertion()),
            RegionTrust::Ca(ca) => ca.clone(),
            RegionTrust::PinnedCa(pin) => intermediates
                .iter()
                .find(|c| Sha256::digest(c.as_ref()).as_slice() == pin)
                .map(|c| c.clone().into_owned())
                .ok_or_else(|| {
                    rustls::Error::General(format!(
                        "the region's CA does not match the pinned fingerprint sha256:{} \
                         (wrong region, or a token from another region)",
                        hex_lower(pin)
                    ))
                })?,
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(root)
            .map_err(|e| rustls::Error::General(format!("the region's CA: {e}")))?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
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

/// Dials the region over TLS 1.3 (`host:port`); `TCP_NODELAY` on.
#[derive(Clone)]
pub struct TlsDialer {
    connector: TlsConnector,
    max_frame: usize,
}

impl TlsDialer {
    pub fn new(config: ClientConfig, max_frame: usize) -> Self {
        TlsDialer {
            connector: TlsConnector::from(Arc::new(config)),
            max_frame,
        }
    }
}

impl std::fmt::Debug for TlsDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsDialer").finish_non_exhaustive()
    }
}

impl Dialer for TlsDialer {
    fn dial(&self, addr: &str) -> BoxFuture<'static, Result<FrameConn, NetError>> {
        let addr = addr.to_owned();
        let connector = self.connector.clone();
        let max_frame = self.max_frame;
        Box::pin(async move {
            let stream = TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| addr.clone());
            let name = ServerName::try_from(SERVER_NAME)
                .map_err(|e| NetError::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
            let connect = connector.connect(name, stream);
            let tls = match tokio::time::timeout(DEFAULT_HANDSHAKE_TIMEOUT, connect).await {
                Ok(tls) => tls?,
                Err(_) => {
                    let e = io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out");
                    return Err(NetError::Io(e));
                }
            };
            let binding = tls
                .get_ref()
                .1
                .export_keying_material(vec![0u8; CHANNEL_BINDING_LEN], EXPORTER_LABEL, None)
                .map_err(|e| NetError::Io(io::Error::other(e)))?;
            let mut conn = framed(tls, max_frame, peer);
            conn.security = Security::secured(Secured {
                credential: None,
                channel_binding: binding,
            });
            Ok(conn)
        })
    }
}

/// Accepts TCP connections and runs TLS 1.3 on each (or reads a non-TLS one as plain frames,
/// so a v1 peer is told why it is refused).
pub struct TlsListener {
    inner: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
    max_frame: usize,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    pub async fn bind(
        addr: &str,
        config: ServerConfig,
        max_frame: usize,
    ) -> Result<TlsListener, NetError> {
        let inner = tokio::net::TcpListener::bind(addr).await?;
        Ok(TlsListener {
            inner,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            max_frame,
        })
    }
}

impl Listener for TlsListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<FrameConn, NetError>> {
        Box::pin(async move {
            let (stream, _) = self.inner.accept().await?;
            stream.set_nodelay(true)?;
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "unknown".into());
            let security = Security::plain();
            let io = ServerIo {
                stage: Stage::Sniff(Some(stream)),
                acceptor: self.acceptor.clone(),
                security: security.clone(),
            };
            let mut conn = framed(io, self.max_frame, peer);
            conn.security = security;
            Ok(conn)
        })
    }

    fn local_addr(&self) -> String {
        self.inner
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }
}

/// The server side of one connection: sniffing, then TLS or plain.
struct ServerIo {
    stage: Stage,
    acceptor: TlsAcceptor,
    /// Set when the TLS handshake completes; left empty for a plain connection.
    security: Security,
}

enum Stage {
    /// Waiting for the first byte (`Option` only so the stream can move on).
    Sniff(Option<TcpStream>),
    Handshake(Box<tokio_rustls::Accept<TcpStream>>),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl ServerIo {
    /// Advances sniffing and the TLS handshake until the stream can carry bytes.
    fn poll_established(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.stage {
                Stage::Sniff(slot) => {
                    let Some(stream) = slot.as_ref() else {
                        return Poll::Ready(Err(io::Error::other("connection already failed")));
                    };
                    let mut first = [0u8; 1];
                    let mut buf = ReadBuf::new(&mut first);
                    ready!(stream.poll_peek(cx, &mut buf))?;
                    let is_tls = buf.filled().first() == Some(&TLS_HANDSHAKE_RECORD);
                    let Some(stream) = slot.take() else {
                        return Poll::Ready(Err(io::Error::other("connection already failed")));
                    };
                    self.stage = if is_tls {
                        Stage::Handshake(Box::new(self.acceptor.accept(stream)))
                    } else {
                        Stage::Plain(stream)
                    };
                }
                Stage::Handshake(accept) => {
                    let tls = ready!(Pin::new(accept.as_mut()).poll(cx))?;
                    self.security.set(secured_of(&tls)?);
                    self.stage = Stage::Tls(Box::new(tls));
                }
                Stage::Tls(_) | Stage::Plain(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// What the server side of a finished TLS handshake established.
fn secured_of(tls: &tokio_rustls::server::TlsStream<TcpStream>) -> io::Result<Secured> {
    let session = tls.get_ref().1;
    let credential = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| credential_of(leaf.as_ref()));
    let channel_binding = session
        .export_keying_material(vec![0u8; CHANNEL_BINDING_LEN], EXPORTER_LABEL, None)
        .map_err(io::Error::other)?;
    Ok(Secured {
        credential,
        channel_binding,
    })
}

impl AsyncRead for ServerIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_established(cx))?;
        match &mut self.stage {
            Stage::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            Stage::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            _ => Poll::Ready(Err(io::Error::other("connection not established"))),
        }
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_established(cx))?;
        match &mut self.stage {
            Stage::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, data),
            Stage::Plain(stream) => Pin::new(stream).poll_write(cx, data),
            _ => Poll::Ready(Err(io::Error::other("connection not established"))),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stage {
            Stage::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            Stage::Plain(stream) => Pin::new(stream).poll_flush(cx),
            // Nothing of ours is written before the stream is established.
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stage {
            Stage::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            Stage::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}
