//! The transport seam: "a connection that carries frames" and "a way to dial or accept one".
//!
//! Production uses TCP (`tcp`); tests and the simulator use in-memory links. A frame is one
//! encoded envelope (CBOR bytes); the transport only moves whole frames and never looks
//! inside. Nothing above this seam knows which transport carries its frames.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Sink, Stream};
use std::pin::Pin;

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
