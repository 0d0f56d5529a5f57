//! osmesh-net: the RPC layer between a region and its clusters.
//!
//! What lives here: length-prefixed CBOR frames (`tcp`, `mem`), the envelope (`envelope`) and
//! message catalogue (`messages`), the version + authentication handshake (`handshake`: certificates, enrollment, or the
//! shared secret of compatibility mode), TLS 1.3 over TCP (`tls`), the
//! multiplexed RPC peer with deadlines and heartbeats (`peer`), reply memos that skip decoding
//! an unchanged reply (`memo`), the reconnect backoff policy
//! (`backoff`), every bound in one place (`limits`), and the `Transport` seam (`transport`) with its TCP and in-memory
//! implementations. The wire format is specified in `docs/PROTOCOL.md`.
//!
//! What it must not know: actors, databases, or that a simulator exists. Time is tokio time;
//! randomness (handshake nonces, backoff jitter) comes from an RNG handed in.

pub mod backoff;
pub mod envelope;
pub mod handshake;
pub mod limits;
pub mod mem;
pub mod memo;
pub mod messages;
pub mod metrics;
pub mod peer;
pub mod tcp;
pub mod tls;
pub mod transport;

pub use backoff::Backoff;
pub use envelope::{decode_body, encode_body, Envelope, Kind};
pub use handshake::{
    accept_handshake, dial_handshake, Authenticated, HandshakeConfig, HandshakeError, Secret,
    PROTOCOL_VERSION,
};
pub use mem::{mem_pair, MemDialer, MemListener, MemNetwork};
pub use memo::ReplyMemo;
pub use messages::{ErrorKind, Request, RpcError};
pub use peer::{spawn_peer, InboundSlot, Incoming, IncomingCalls, Peer, PeerConfig, Responder};
pub use tcp::{TcpDialer, TcpListener, DEFAULT_MAX_FRAME};
pub use tls::{RegionTrust, TlsDialer, TlsListener};
pub use transport::{
    Credential, Dialer, FrameConn, FrameSink, FrameStream, Listener, Secured, Security,
};

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
