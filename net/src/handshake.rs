//! The handshake: version negotiation, then authentication, before any call (protocol v2).
//!
//! Steps (all frames are `Kind::Handshake` envelopes, id 0, the step name as method):
//!
//! 1. dialer → acceptor `hello {identity, min_version, max_version, nonce}`
//! 2. acceptor → dialer `hello {…}` (its own); both pick the highest common version or,
//!    if there is none, send `refuse {reason}` and fail with `NoCommonVersion`.
//! 3. The dialer authenticates in one of three ways:
//!    - `cert {}`: its credential is the TLS client certificate the transport verified
//!      (`FrameConn::security`); the acceptor checks that the certificate names the identity
//!      of the `hello` and answers `done {}`.
//!    - `enroll {token, csr}`: a first connection with a one-time enrollment token; the
//!      acceptor's [`Enroller`] checks the token and signs the CSR, answers
//!      `issued {certificate, ca}`, and the connection ends (the dialer reconnects with it).
//!    - `proof {mac}` (compatibility mode, off unless both sides hold a shared secret): the
//!      dialer answers the acceptor's nonce; the acceptor checks it (constant time) and
//!      answers with its own `proof`; the dialer checks that and sends `done {}`.
//!
//! The dialer proves first, so an acceptor never hands an unauthenticated stranger a MAC to
//! attack offline. Each MAC covers the role of the prover, both offered version ranges, both
//! identities, both nonces and the TLS session's exported keying material (see [`proof_mac`]),
//! so a proof cannot be reflected back, moved to another connection or TLS session, or
//! survive a downgraded version range. Nonces are handed in by the caller: production draws
//! them from the OS RNG, the simulator from its seeded RNG.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use osmesh_core::fields::CLUSTER_ID;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use crate::envelope::{decode_body, encode_body, encode_frame, ByteString, Envelope, Kind};
use crate::transport::Credential;
use crate::{FrameConn, NetError};

/// The protocol version this build speaks. Version 1 (a shared secret over plain TCP) is no
/// longer spoken; a v1 peer is refused with a reason naming version 2.
pub const PROTOCOL_VERSION: u16 = 2;

/// How long a handshake may take before the connection is dropped, so a silent peer cannot
/// hold a connection slot. Over TCP it covers the TLS handshake too.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Length of each side's challenge nonce.
pub const NONCE_LEN: usize = 32;

/// The domain-separation tag at the start of every MAC input.
pub const MAC_TAG: &[u8] = b"osmesh-v2 handshake";

pub use crate::limits::{MAX_CSR_LEN, MAX_TOKEN_LEN};

/// Handshake step names (the envelope's `method`).
pub mod step {
    pub const HELLO: &str = "hello";
    pub const PROOF: &str = "proof";
    pub const CERT: &str = "cert";
    pub const ENROLL: &str = "enroll";
    pub const ISSUED: &str = "issued";
    pub const DONE: &str = "done";
    pub const REFUSE: &str = "refuse";
}

/// The shortest shared secret a secret file may hold: 32 bytes, as many as the 256-bit random
/// secret the demo writes (as hex, 64). Shorter ones are guessable offline from one recorded
/// handshake.
pub const MIN_SECRET_FILE_LEN: usize = 32;

/// The shared secret. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The bytes, for the one place that must send them (an enrollment token, inside TLS).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Issues a client certificate to an enrolling cluster (the region's side of `enroll`).
pub trait Enroller: Send + Sync + fmt::Debug {
    /// Redeems the one-time `token` for `identity` and signs `csr_der` (a PKCS#10 request)
    /// into a certificate naming `identity`. `Err` is the refusal reason sent to the peer: it
    /// must name what is wrong without echoing the token.
    fn enroll(&self, identity: &str, token: &[u8], csr_der: &[u8]) -> Result<Issued, String>;
}

/// Who we are, how we authenticate, what we speak, and how long we wait.
#[derive(Clone, Debug)]
pub struct HandshakeConfig {
    pub identity: String,
    /// Compatibility mode: with a secret, a dialer proves it (`proof`) instead of presenting a
    /// certificate, and an acceptor accepts peers that prove it. `None` (the default of the
    /// daemons): certificates only.
    pub secret: Option<Secret>,
    pub versions: RangeInclusive<u16>,
    pub timeout: Duration,
    /// Acceptor: refuse a peer whose transport is not secured (regiond's TCP port is TLS 1.3;
    /// a plain-TCP peer there is a v1 peer or a mistake).
    pub require_secured: bool,
    /// Acceptor: issues certificates to enrolling clusters; without it `enroll` is refused.
    pub enroller: Option<Arc<dyn Enroller>>,
}

impl HandshakeConfig {
    /// Compatibility mode: speaks exactly `PROTOCOL_VERSION` and proves `secret`, with the
    /// default timeout. In-memory and simulated links use it.
    pub fn new(identity: impl Into<String>, secret: Secret) -> Self {
        HandshakeConfig {
            secret: Some(secret),
            ..Self::certificates(identity)
        }
    }

    /// Certificates only: a dialer presents the client certificate its TLS transport carries;
    /// an acceptor accepts only peers the transport authenticated (and enrollments, with an
    /// enroller).
    pub fn certificates(identity: impl Into<String>) -> Self {
        HandshakeConfig {
            identity: identity.into(),
            secret: None,
            versions: PROTOCOL_VERSION..=PROTOCOL_VERSION,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            require_secured: false,
            enroller: None,
        }
    }
}

/// A connection whose peer authenticated, with the agreed version.
pub struct Authenticated {
    pub conn: FrameConn,
    pub peer_identity: String,
    pub version: u16,
    /// The credential the peer authenticated with, when it was a certificate (`None` in
    /// compatibility mode, where it proved the shared secret).
    pub credential: Option<Credential>,
}

impl fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticated")
            .field("peer_addr", &self.conn.peer_addr)
            .field("peer_identity", &self.peer_identity)
            .field("version", &self.version)
            .field("credential", &self.credential)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no common protocol version: ours {ours_min}..={ours_max}, theirs {theirs_min}..={theirs_max}{hint}")]
    NoCommonVersion {
        ours_min: u16,
        ours_max: u16,
        theirs_min: u16,
        theirs_max: u16,
        /// What to do about it, when we know (a v1 peer is told about v2).
        hint: &'static str,
    },
    #[error("authentication failed: peer {peer:?} did not prove the shared secret")]
    BadCredentials { peer: String },
    #[error("refused: {0}")]
    NotAuthorised(String),
    #[error("refused by peer: {0:?}")]
    Refused(String),
    /// Not a failure: the peer enrolled and was issued its certificate; the connection ends
    /// here and the peer reconnects with it.
    #[error("enrolled {identity:?}: certificate issued")]
    Enrolled { identity: String },
    #[error("handshake did not complete within {0:?}")]
    Timeout(Duration),
    #[error("handshake protocol error: {0}")]
    Protocol(String),
    #[error("handshake transport error: {0}")]
    Net(#[from] NetError),
}

/// What a v1 peer is told.
const V2_HINT: &str = "; this side speaks osmesh protocol v2 only (TLS 1.3 on TCP, clusters \
                       enrolled with `osmesh clusters enroll NAME`; see docs/PROTOCOL.md)";

/// Which end of the connection; part of every MAC so proofs cannot be reflected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Dialer,
    Acceptor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dialer => "dialer",
            Role::Acceptor => "acceptor",
        }
    }
}

/// Step `hello`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub identity: String,
    pub min_version: u16,
    pub max_version: u16,
    /// 32 random bytes: the challenge the other side must answer.
    pub nonce: ByteString,
}

/// Step `proof`: HMAC-SHA256 over the transcript, see [`proof_mac`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub mac: ByteString,
}

/// Step `cert`: the dialer's credential is its TLS client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {}

/// Step `enroll`: a one-time enrollment token and a PKCS#10 CSR (DER) whose key the dialer
/// keeps.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enroll {
    pub token: ByteString,
    pub csr: ByteString,
}

impl fmt::Debug for Enroll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enroll")
            .field("token", &"***")
            .field("csr_len", &self.csr.0.len())
            .finish()
    }
}

/// Step `issued`: the dialer's certificate and the CA that signed it (both PEM).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    pub certificate: String,
    pub ca: String,
}

/// Step `refuse`: why the sender gives up. Never contains the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refuse {
    pub reason: String,
}

/// Step `done`: the handshake is complete; calls may follow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

/// What a MAC covers; `prover` answers `verifier`'s challenge.
pub struct Transcript<'a> {
    pub dialer: &'a Hello,
    pub acceptor: &'a Hello,
    /// The TLS session's exported keying material; empty on an unsecured link.
    pub channel_binding: &'a [u8],
}

/// `HMAC-SHA256(secret, input)` where input is, in order:
/// `MAC_TAG`, 0x00, the prover's role (`dialer`/`acceptor`), 0x00,
/// the dialer's min and max version and the acceptor's min and max version (u16 BE each),
/// the prover's identity and then the verifier's identity (each as u32 BE length + UTF-8),
/// the verifier's nonce (the challenge) and then the prover's nonce, then the channel binding
/// (each u32 BE length + bytes).
pub fn proof_mac(secret: &Secret, prover: Role, t: &Transcript<'_>) -> [u8; 32] {
    let (p, v) = match prover {
        Role::Dialer => (t.dialer, t.acceptor),
        Role::Acceptor => (t.acceptor, t.dialer),
    };
    let mut mac = new_mac(secret);
    mac.update(MAC_TAG);
    mac.update(&[0]);
    mac.update(prover.as_str().as_bytes());
    mac.update(&[0]);
    for version in [
        t.dialer.min_version,
        t.dialer.max_version,
        t.acceptor.min_version,
        t.acceptor.max_version,
    ] {
        mac.update(&version.to_be_bytes());
    }
    for field in [
        p.identity.as_bytes(),
        v.identity.as_bytes(),
        &v.nonce.0,
        &p.nonce.0,
        t.channel_binding,
    ] {
        mac.update(&(field.len() as u32).to_be_bytes());
        mac.update(field);
    }
    mac.finalize().into_bytes().into()
}

fn new_mac(secret: &Secret) -> Hmac<Sha256> {
    // HMAC takes keys of any length; the error case cannot happen.
    <Hmac<Sha256> as Mac>::new_from_slice(&secret.0).expect("HMAC accepts any key length")
}

/// Constant-time check of a peer's proof.
fn verify_mac(secret: &Secret, prover: Role, t: &Transcript<'_>, got: &[u8]) -> bool {
    let expected = proof_mac(secret, prover, t);
    subtle::ConstantTimeEq::ct_eq(&expected[..], got).into()
}

/// The highest version both ranges contain.
pub fn negotiate(ours: &RangeInclusive<u16>, theirs: &Hello) -> Option<u16> {
    let low = (*ours.start()).max(theirs.min_version);
    let high = (*ours.end()).min(theirs.max_version);
    (low <= high).then_some(high)
}

/// Runs the dialer's side of the handshake: `proof` with a secret, else `cert`.
pub async fn dial_handshake(
    conn: FrameConn,
    cfg: &HandshakeConfig,
    nonce: [u8; 32],
) -> Result<Authenticated, HandshakeError> {
    with_deadline(cfg.timeout, Role::Dialer, dial_steps(conn, cfg, nonce)).await
}

/// Runs the acceptor's side of the handshake.
pub async fn accept_handshake(
    conn: FrameConn,
    cfg: &HandshakeConfig,
    nonce: [u8; 32],
) -> Result<Authenticated, HandshakeError> {
    with_deadline(cfg.timeout, Role::Acceptor, accept_steps(conn, cfg, nonce)).await
}

/// Enrolls: hello, then `enroll {token, csr}`; returns the certificate the acceptor issued.
/// The connection ends here; the caller reconnects presenting the certificate.
pub async fn dial_enroll(
    conn: FrameConn,
    cfg: &HandshakeConfig,
    nonce: [u8; 32],
    token: &Secret,
    csr_der: Vec<u8>,
) -> Result<Issued, HandshakeError> {
    let steps = async move {
        let mut conn = conn;
        let (_, _, _) = dial_hello(&mut conn, cfg, nonce).await?;
        let enroll = Enroll {
            token: ByteString(token.expose().to_vec()),
            csr: ByteString(csr_der),
        };
        send(&mut conn, step::ENROLL, &enroll).await?;
        let issued: Issued = recv(&mut conn, step::ISSUED).await?;
        Ok(issued)
    };
    match tokio::time::timeout(cfg.timeout, steps).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::Timeout(cfg.timeout)),
    }
}

async fn with_deadline(
    limit: Duration,
    role: Role,
    steps: impl std::future::Future<Output = Result<Authenticated, HandshakeError>>,
) -> Result<Authenticated, HandshakeError> {
    let result = match tokio::time::timeout(limit, steps).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::Timeout(limit)),
    };
    if let Err(e) = &result {
        // The caller logs (the region at most once a second: a flood must not flood the log).
        tracing::debug!(role = role.as_str(), "handshake failed: {e}");
    }
    result
}

/// The dialer's hellos: ours, theirs, and the agreed version.
async fn dial_hello(
    conn: &mut FrameConn,
    cfg: &HandshakeConfig,
    nonce: [u8; 32],
) -> Result<(Hello, Hello, u16), HandshakeError> {
    let ours = hello(cfg, nonce);
    send(conn, step::HELLO, &ours).await?;
    let theirs: Hello = recv(conn, step::HELLO).await?;
    let version = agree(conn, cfg, &theirs).await?;
    Ok((ours, theirs, version))
}

async fn dial_steps(
    mut conn: FrameConn,
    cfg: &HandshakeConfig,
    nonce: [u8; 32],
) -> Result<Authenticated, HandshakeError> {
    let (ours, theirs, version) = dial_hello(&mut conn, cfg, nonce).await?;
    match &cfg.secret {
        Some(secret) => {
            let binding = channel_binding(&conn);
            let t = Transcript {
                dialer: &ours,
                acceptor: &theirs,
                channel_binding: &binding,
            };
            let proof = Proof {
                mac: ByteString(proof_mac(secret, Role::Dialer, &t).to_vec()),
            };
            send(&mut conn, step::PROOF, &proof).await?;
            let theirs_proof: Proof = recv(&mut conn, step::PROOF).await?;
            check_proof(&mut conn, secret, Role::Acceptor, &t, &theirs_proof).await?;
            send(&mut conn, step::DONE, &Done {}).await?;
        }
        None => {
            send(&mut conn, step::CERT, &Cert {}).await?;
            let _: Done = recv(&mut conn, step::DONE).await?;
        }
    }
    conn.read_limit.authenticated();
    Ok(Authenticated {
        conn,
        peer_identity: theirs.identity,
        version,
        credential: None,
    })
}

async fn accept_steps(
    mut conn: FrameConn,
    cfg: &HandshakeConfig,
    nonce: [u8; 32],
) -> Result<Authenticated, HandshakeError> {
    let theirs: Hello = recv(&mut conn, step::HELLO).await?;
    // Checked before our hello goes out, so a refused peer (a v1 cluster, say) reads the
    // `refuse` as the answer to its hello.
    let version = agree(&mut conn, cfg, &theirs).await?;
    let ours = hello(cfg, nonce);
    send(&mut conn, step::HELLO, &ours).await?;
    if cfg.require_secured && conn.security.get().is_none() {
        let reason = "this port speaks protocol v2 inside TLS 1.3; plain TCP is refused".into();
        return Err(not_authorised(&mut conn, reason).await);
    }
    let envelope = recv_envelope(&mut conn, &[step::CERT, step::PROOF, step::ENROLL]).await?;
    let credential = match envelope.method.as_str() {
        step::CERT => Some(check_certificate(&mut conn, &theirs).await?),
        step::PROOF => {
            let Some(secret) = &cfg.secret else {
                let reason = "shared-secret authentication is off here (compatibility mode \
                              is not enabled); enroll the cluster: osmesh clusters enroll NAME"
                    .into();
                return Err(not_authorised(&mut conn, reason).await);
            };
            let theirs_proof: Proof = decode_step(&mut conn, step::PROOF, &envelope.body).await?;
            let binding = channel_binding(&conn);
            let t = Transcript {
                dialer: &theirs,
                acceptor: &ours,
                channel_binding: &binding,
            };
            check_proof(&mut conn, secret, Role::Dialer, &t, &theirs_proof).await?;
            let proof = Proof {
                mac: ByteString(proof_mac(secret, Role::Acceptor, &t).to_vec()),
            };
            send(&mut conn, step::PROOF, &proof).await?;
            let _: Done = recv(&mut conn, step::DONE).await?;
            None
        }
        _ => {
            let enroll: Enroll = decode_step(&mut conn, step::ENROLL, &envelope.body).await?;
            return Err(enroll_peer(&mut conn, cfg, &theirs, &enroll).await);
        }
    };
    if credential.is_some() {
        send(&mut conn, step::DONE, &Done {}).await?;
    }
    conn.read_limit.authenticated();
    Ok(Authenticated {
        conn,
        peer_identity: theirs.identity,
        version,
        credential,
    })
}

/// The credential the transport authenticated, which must name the identity of the `hello`.
async fn check_certificate(
    conn: &mut FrameConn,
    theirs: &Hello,
) -> Result<Credential, HandshakeError> {
    let credential = conn.security.get().and_then(|s| s.credential.clone());
    let Some(credential) = credential else {
        let reason = "no client certificate was presented; enroll the cluster first \
                      (osmesh clusters enroll NAME)"
            .into();
        return Err(not_authorised(conn, reason).await);
    };
    if credential.identity != theirs.identity {
        // Both are valid identities (checked in `agree` and when the certificate was issued).
        let reason = format!(
            "the certificate names {:?} but the hello claims {:?}",
            credential.identity, theirs.identity
        );
        return Err(not_authorised(conn, reason).await);
    }
    Ok(credential)
}

/// Answers an `enroll`: the certificate, or a refusal. Either way the connection ends; the
/// result is the error the acceptor's caller sees (`Enrolled` on success).
async fn enroll_peer(
    conn: &mut FrameConn,
    cfg: &HandshakeConfig,
    theirs: &Hello,
    enroll: &Enroll,
) -> HandshakeError {
    let Some(enroller) = &cfg.enroller else {
        return not_authorised(conn, "this side does not enroll clusters".into()).await;
    };
    if conn.security.get().is_none() {
        let reason = "enrollment is only accepted inside TLS".into();
        return not_authorised(conn, reason).await;
    }
    if enroll.token.0.len() > MAX_TOKEN_LEN || enroll.csr.0.len() > MAX_CSR_LEN {
        let reason =
            format!("token or CSR too long (at most {MAX_TOKEN_LEN} and {MAX_CSR_LEN} bytes)");
        return protocol_refusal(conn, reason).await;
    }
    match enroller.enroll(&theirs.identity, &enroll.token.0, &enroll.csr.0) {
        Ok(issued) => {
            if let Err(e) = send(conn, step::ISSUED, &issued).await {
                return e;
            }
            HandshakeError::Enrolled {
                identity: theirs.identity.clone(),
            }
        }
        Err(reason) => not_authorised(conn, reason).await,
    }
}

/// The link's channel binding: the TLS exporter value, or nothing on an unsecured link.
fn channel_binding(conn: &FrameConn) -> Vec<u8> {
    conn.security
        .get()
        .map(|s| s.channel_binding.clone())
        .unwrap_or_default()
}

fn hello(cfg: &HandshakeConfig, nonce: [u8; 32]) -> Hello {
    Hello {
        identity: cfg.identity.clone(),
        min_version: *cfg.versions.start(),
        max_version: *cfg.versions.end(),
        nonce: ByteString(nonce.to_vec()),
    }
}

/// Picks the version, or refuses the peer and fails.
async fn agree(
    conn: &mut FrameConn,
    cfg: &HandshakeConfig,
    theirs: &Hello,
) -> Result<u16, HandshakeError> {
    // Checked before the identity is logged, stored or echoed: the reason names the rule,
    // never the identity itself.
    if let Err(e) = CLUSTER_ID.check(&theirs.identity) {
        return Err(protocol_refusal(conn, format!("bad identity: {e}")).await);
    }
    if theirs.nonce.0.len() != NONCE_LEN {
        let reason = format!(
            "nonce of {} bytes, expected {NONCE_LEN}",
            theirs.nonce.0.len()
        );
        return Err(protocol_refusal(conn, reason).await);
    }
    if let Some(version) = negotiate(&cfg.versions, theirs) {
        return Ok(version);
    }
    let err = HandshakeError::NoCommonVersion {
        ours_min: *cfg.versions.start(),
        ours_max: *cfg.versions.end(),
        theirs_min: theirs.min_version,
        theirs_max: theirs.max_version,
        hint: if theirs.max_version < PROTOCOL_VERSION {
            V2_HINT
        } else {
            ""
        },
    };
    refuse(conn, &err.to_string()).await;
    Err(err)
}

async fn check_proof(
    conn: &mut FrameConn,
    secret: &Secret,
    prover: Role,
    t: &Transcript<'_>,
    proof: &Proof,
) -> Result<(), HandshakeError> {
    if verify_mac(secret, prover, t, &proof.mac.0) {
        return Ok(());
    }
    let peer = match prover {
        Role::Dialer => &t.dialer.identity,
        Role::Acceptor => &t.acceptor.identity,
    };
    let err = HandshakeError::BadCredentials { peer: peer.clone() };
    refuse(
        conn,
        &format!("authentication failed for {peer:?}: wrong secret"),
    )
    .await;
    Err(err)
}

async fn not_authorised(conn: &mut FrameConn, reason: String) -> HandshakeError {
    refuse(conn, &reason).await;
    HandshakeError::NotAuthorised(reason)
}

/// Tells the peer why we give up; best effort, since the peer may be gone already.
async fn refuse(conn: &mut FrameConn, reason: &str) {
    let body = encode_body(&Refuse {
        reason: reason.to_owned(),
    });
    let frame = encode_frame(0, Kind::Handshake, step::REFUSE, &body);
    if let Err(e) = conn.sink.send(frame).await {
        tracing::debug!(
            "could not send handshake refusal to {}: {e}",
            conn.peer_addr
        );
    }
}

async fn send<T: Serialize>(
    conn: &mut FrameConn,
    step: &str,
    msg: &T,
) -> Result<(), HandshakeError> {
    let frame = encode_frame(0, Kind::Handshake, step, &encode_body(msg));
    conn.sink.send(frame).await?;
    Ok(())
}

/// Reads the next frame, which must be handshake step `expected`; anything else is refused.
async fn recv<T: DeserializeOwned>(
    conn: &mut FrameConn,
    expected: &str,
) -> Result<T, HandshakeError> {
    let envelope = recv_envelope(conn, &[expected]).await?;
    decode_step(conn, expected, &envelope.body).await
}

async fn decode_step<T: DeserializeOwned>(
    conn: &mut FrameConn,
    step: &str,
    body: &[u8],
) -> Result<T, HandshakeError> {
    match decode_body(body) {
        Ok(msg) => Ok(msg),
        Err(e) => Err(protocol_refusal(conn, format!("bad {step}: {}", e.message)).await),
    }
}

/// Reads the next frame, which must be one of the handshake steps `expected`.
async fn recv_envelope(
    conn: &mut FrameConn,
    expected: &[&str],
) -> Result<Envelope, HandshakeError> {
    let frame: Bytes = match conn.stream.next().await {
        Some(frame) => frame?,
        None => {
            return Err(HandshakeError::Net(NetError::Closed));
        }
    };
    let envelope = match Envelope::decode(&frame) {
        Ok(envelope) => envelope,
        Err(e) => return Err(protocol_refusal(conn, format!("bad frame: {e}")).await),
    };
    if envelope.kind == Kind::Handshake && envelope.method == step::REFUSE {
        let reason = decode_body::<Refuse>(&envelope.body)
            .map(|r| r.reason)
            .unwrap_or_else(|e| format!("(unreadable reason: {})", e.message));
        return Err(HandshakeError::Refused(reason));
    }
    if envelope.kind != Kind::Handshake {
        let reason = format!(
            "{:?} {:?} before authentication",
            envelope.kind, envelope.method
        );
        return Err(protocol_refusal(conn, reason).await);
    }
    if !expected.contains(&envelope.method.as_str()) {
        let reason = format!(
            "expected handshake step {expected:?}, got {:?}",
            envelope.method
        );
        return Err(protocol_refusal(conn, reason).await);
    }
    Ok(envelope)
}

async fn protocol_refusal(conn: &mut FrameConn, reason: String) -> HandshakeError {
    refuse(conn, &reason).await;
    HandshakeError::Protocol(reason)
}

impl Secret {
    /// Reads a shared secret from a file: its bytes with surrounding whitespace trimmed, so a
    /// trailing newline written by an editor is not part of the secret. An empty file is an
    /// error, never an empty secret.
    ///
    /// A daemon's secret must be its own: a file that group or others may read is refused, and
    /// so is a secret shorter than [`MIN_SECRET_FILE_LEN`] bytes (write 32 random bytes, e.g.
    /// `head -c 32 /dev/urandom | xxd -p -c 64 > secret; chmod 600 secret`).
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Secret> {
        let invalid =
            |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(invalid(format!(
                    "the secret file {} may be read by group or others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                )));
            }
        }
        let bytes = std::fs::read(path)?;
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() {
            return Err(invalid(format!(
                "the secret file {} is empty",
                path.display()
            )));
        }
        if trimmed.len() < MIN_SECRET_FILE_LEN {
            return Err(invalid(format!(
                "the secret in {} is {} bytes; at least {MIN_SECRET_FILE_LEN} are needed",
                path.display(),
                trimmed.len()
            )));
        }
        Ok(Secret::new(trimmed.to_vec()))
    }
}
