//! The handshake: version negotiation, then mutual HMAC challenge/response, before any call.
//!
//! Steps (all frames are `Kind::Handshake` envelopes, id 0, the step name as method):
//!
//! 1. dialer → acceptor `hello {identity, min_version, max_version, nonce}`
//! 2. acceptor → dialer `hello {…}` (its own); both pick the highest common version or,
//!    if there is none, send `refuse {reason}` and fail with `NoCommonVersion`.
//! 3. dialer → acceptor `proof {mac}`: the dialer answers the acceptor's nonce.
//! 4. acceptor checks it (constant time); wrong → `refuse`, `BadCredentials`; right →
//!    acceptor → dialer `proof {mac}`: the acceptor answers the dialer's nonce.
//! 5. dialer checks it; wrong → `refuse`, `BadCredentials`; right → `done {}`.
//!
//! The dialer proves first, so an acceptor never hands an unauthenticated stranger a MAC to
//! attack offline. Each MAC covers the role of the prover, both offered version ranges, both
//! identities and both nonces (see [`proof_mac`]), so a proof cannot be reflected back, moved
//! to another connection, or survive a downgraded version range. Nonces are handed in by the
//! caller: production draws them from the OS RNG, the simulator from its seeded RNG.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::envelope::{decode_body, encode_body, encode_frame, ByteString, Envelope, Kind};
use crate::{FrameConn, NetError};
use osmesh_core::fields::CLUSTER_ID;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// How long a handshake may take before the connection is dropped, so a silent peer cannot
/// hold a connection slot.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Length of each side's challenge nonce.
pub const NONCE_LEN: usize = 32;

/// The domain-separation tag at the start of every MAC input.
pub const MAC_TAG: &[u8] = b"osmesh-v1 handshake";

/// Handshake step names (the envelope's `method`).
pub mod step {
    pub const HELLO: &str = "hello";
    pub const PROOF: &str = "proof";
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

/// Who we are, what we share, what we speak, and how long we wait.
#[derive(Clone, Debug)]
pub struct HandshakeConfig {
    pub identity: String,
    pub secret: Secret,
    pub versions: RangeInclusive<u16>,
    pub timeout: Duration,
}

impl HandshakeConfig {
    /// Speaks exactly `PROTOCOL_VERSION`, with the default timeout.
    pub fn new(identity: impl Into<String>, secret: Secret) -> Self {
        HandshakeConfig {
            identity: identity.into(),
            secret,
            versions: PROTOCOL_VERSION..=PROTOCOL_VERSION,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// A connection whose peer proved it holds the secret, with the agreed version.
pub struct Authenticated {
    pub conn: FrameConn,
    pub peer_identity: String,
    pub version: u16,
}

impl fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticated")
            .field("peer_addr", &self.conn.peer_addr)
            .field("peer_identity", &self.peer_identity)
            .field("version", &self.version)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no common protocol version: ours {ours_min}..={ours_max}, theirs {theirs_min}..={theirs_max}")]
    NoCommonVersion {
        ours_min: u16,
        ours_max: u16,
        theirs_min: u16,
        theirs_max: u16,
    },
    #[error("authentication failed: peer {peer:?} did not prove the shared secret")]
    BadCredentials { peer: String },
    #[error("refused by peer: {0:?}")]
    Refused(String),
    #[error("handshake did not complete within {0:?}")]
    Timeout(Duration),
    #[error("handshake protocol error: {0}")]
    Protocol(String),
    #[error("handshake transport error: {0}")]
    Net(#[from] NetError),
}

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

/// Step `refuse`: why the sender gives up. Never contains the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refuse {
    pub reason: String,
}

/// Step `done`: the dialer accepted the acceptor's proof; calls may follow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

/// What a MAC covers; `prover` answers `verifier`'s challenge.
pub struct Transcript<'a> {
    pub dialer: &'a Hello,
    pub acceptor: &'a Hello,
}

/// `HMAC-SHA256(secret, input)` where input is, in order:
/// `MAC_TAG`, 0x00, the prover's role (`dialer`/`acceptor`), 0x00,
/// the dialer's min and max version and the acceptor's min and max version (u16 BE each),
/// the prover's identity and then the verifier's identity (each as u32 BE length + UTF-8),
/// the verifier's nonce (the challenge) and then the prover's nonce (each u32 BE length + bytes).
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

/// Runs the dialer's side of the handshake.
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

async fn dial_steps(
    mut conn: FrameConn,
    cfg: &HandshakeConfig,
    nonce: [u8; 32],
) -> Result<Authenticated, HandshakeError> {
    let ours = hello(cfg, nonce);
    send(&mut conn, step::HELLO, &ours).await?;
    let theirs: Hello = recv(&mut conn, step::HELLO).await?;
    let version = agree(&mut conn, cfg, &theirs).await?;
    let t = Transcript {
        dialer: &ours,
        acceptor: &theirs,
    };
    let proof = Proof {
        mac: ByteString(proof_mac(&cfg.secret, Role::Dialer, &t).to_vec()),
    };
    send(&mut conn, step::PROOF, &proof).await?;
    let theirs_proof: Proof = recv(&mut conn, step::PROOF).await?;
    check_proof(&mut conn, cfg, Role::Acceptor, &t, &theirs_proof).await?;
    send(&mut conn, step::DONE, &Done {}).await?;
    conn.read_limit.authenticated();
    Ok(Authenticated {
        conn,
        peer_identity: theirs.identity,
        version,
    })
}

async fn accept_steps(
    mut conn: FrameConn,
    cfg: &HandshakeConfig,
    nonce: [u8; 32],
) -> Result<Authenticated, HandshakeError> {
    let theirs: Hello = recv(&mut conn, step::HELLO).await?;
    let ours = hello(cfg, nonce);
    send(&mut conn, step::HELLO, &ours).await?;
    let version = agree(&mut conn, cfg, &theirs).await?;
    let t = Transcript {
        dialer: &theirs,
        acceptor: &ours,
    };
    let theirs_proof: Proof = recv(&mut conn, step::PROOF).await?;
    check_proof(&mut conn, cfg, Role::Dialer, &t, &theirs_proof).await?;
    let proof = Proof {
        mac: ByteString(proof_mac(&cfg.secret, Role::Acceptor, &t).to_vec()),
    };
    send(&mut conn, step::PROOF, &proof).await?;
    let _: Done = recv(&mut conn, step::DONE).await?;
    conn.read_limit.authenticated();
    Ok(Authenticated {
        conn,
        peer_identity: theirs.identity,
        version,
    })
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
    };
    refuse(conn, &err.to_string()).await;
    Err(err)
}

async fn check_proof(
    conn: &mut FrameConn,
    cfg: &HandshakeConfig,
    prover: Role,
    t: &Transcript<'_>,
    proof: &Proof,
) -> Result<(), HandshakeError> {
    if verify_mac(&cfg.secret, prover, t, &proof.mac.0) {
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
    if envelope.method != expected {
        let reason = format!(
            "expected handshake step {expected:?}, got {:?}",
            envelope.method
        );
        return Err(protocol_refusal(conn, reason).await);
    }
    match decode_body(&envelope.body) {
        Ok(msg) => Ok(msg),
        Err(e) => Err(protocol_refusal(conn, format!("bad {expected}: {}", e.message)).await),
    }
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
