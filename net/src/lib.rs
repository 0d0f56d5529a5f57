//! osmesh-net: the RPC layer between a region and its clusters.
//!
//! What will live here: length-prefixed CBOR frames, the envelope and message catalogue, the
//! version + mutual-HMAC handshake, the multiplexed RPC peer (deadlines, heartbeats), the
//! reconnect backoff policy, and the `Transport` seam with its TCP implementation.
//!
//! What it must not know: actors, databases, or that a simulator exists. Time is tokio time;
//! randomness comes from an RNG handed in.

pub mod messages;
pub mod transport;

pub use messages::{ErrorKind, Request, RpcError};
pub use transport::{Dialer, FrameConn, FrameSink, FrameStream, Listener};

/// Errors of the transport and framing layers (not RPC errors: those are `RpcError`).
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed")]
    Closed,
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
}
