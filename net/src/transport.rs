//! The transport seam: "a connection that carries frames" and "a way to dial or accept one".
//!
//! Production uses TCP (`tcp`); tests and the simulator use in-memory links. A frame is one
//! encoded envelope (CBOR bytes); the transport only moves whole frames and never looks
//! inside. Nothing above this seam knows which transport carries its frames.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Sink, Stream};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use crate::limits::ReadLimit;
use crate::NetError;

/// The sending half of a connection: whole frames in, in order.
pub type FrameSink = Pin<Box<dyn Sink<Bytes, Error = NetError> + Send>>;

/// The receiving half of a connection: whole frames out, in order; `None` when the peer closed.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Bytes, NetError>> + Send>>;

/// One established connection, not yet authenticated.
pub struct FrameConn {
    pub sink: FrameSink,
    pub stream: FrameStream,
    /// The peer's address as the transport knows it (for logs only; never for identity).
    pub peer_addr: String,
    /// The largest frame the stream reads now: small until the handshake completes (the
    /// acceptor raises it then), fixed on links whose frames are already in memory.
    pub read_limit: ReadLimit,
    /// What the transport proved about the link (TLS: the session and the client's
    /// certificate), known once its own handshake is done, i.e. by the time the first frame
    /// arrives. Empty on plain links (in-memory, simulated, or a plain-TCP peer).
    pub security: Security,
}

/// A credential the transport authenticated: for TLS, the client certificate the region's CA
/// signed. The identity comes from it, never from what the peer claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The identity the credential names (the certificate's common name).
    pub identity: String,
    /// SHA-256 of the credential (the certificate's DER), lowercase hex: which one it is, so
    /// a revoked or superseded certificate can be told from the current one.
    pub fingerprint: String,
}

/// What a secured transport established for one link.
#[derive(Clone, Debug)]
pub struct Secured {
    /// The peer's authenticated credential, when it presented one.
    pub credential: Option<Credential>,
    /// Keying material exported from the session (TLS 1.3, RFC 8446 section 7.5, label
    /// `EXPORTER-osmesh-v2 handshake`), so that a proof made inside it cannot be spliced into
    /// another session.
    pub channel_binding: Vec<u8>,
}

/// Set once by the transport when its own handshake completes; read by the RPC handshake.
#[derive(Clone, Debug, Default)]
pub struct Security(Arc<OnceLock<Secured>>);

impl Security {
    /// A link whose transport proves nothing (in-memory, simulated, plain TCP).
    pub fn plain() -> Self {
        Security::default()
    }

    /// A link whose transport already established `secured` (the simulator models
    /// credentials this way).
    pub fn secured(secured: Secured) -> Self {
        let security = Security::default();
        security.set(secured);
        security
    }

    /// Records what the transport established; a second call changes nothing.
    pub fn set(&self, secured: Secured) {
        let _ = self.0.set(secured);
    }

    /// What the transport established, if it is secured and done.
    pub fn get(&self) -> Option<&Secured> {
        self.0.get()
    }
}

/// The dialing side of a transport (the cluster dials the region).
pub trait Dialer: Send + Sync {
    fn dial(&self, addr: &str) -> BoxFuture<'static, Result<FrameConn, NetError>>;
}

/// The accepting side of a transport (the region accepts clusters).
pub trait Listener: Send {
    fn accept(&mut self) -> BoxFuture<'_, Result<FrameConn, NetError>>;
    /// The address dialers should use to reach this listener.
    fn local_addr(&self) -> String;
}
