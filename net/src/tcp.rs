//! The TCP transport: 4-byte big-endian length prefix, then the frame; `TCP_NODELAY` on.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::{Dialer, FrameConn, Listener, NetError};

/// Largest frame accepted or sent unless configured otherwise (4 MiB).
pub const DEFAULT_MAX_FRAME: usize = 4 * 1024 * 1024;

/// The codec of every byte-stream transport: the length is checked against `max_frame`
/// before any buffer for the frame is allocated.
pub fn length_codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

/// Frames any byte stream (a TCP socket, a `tokio::io::duplex` pipe) into a `FrameConn`.
pub fn framed<T>(io: T, max_frame: usize, peer_addr: String) -> FrameConn
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    framed_halves(read, write, max_frame, peer_addr)
}

/// Frames the two halves of a byte stream (for TCP: lock-free owned halves).
pub fn framed_halves<R, W>(read: R, write: W, max_frame: usize, peer_addr: String) -> FrameConn
where
    R: AsyncRead + Send + 'static,
    W: AsyncWrite + Send + 'static,
{
    let sink = SinkExt::<Bytes>::sink_map_err(
        FramedWrite::new(write, length_codec(max_frame)),
        framing_error,
    );
    let stream = FramedRead::new(read, length_codec(max_frame))
        .map(|frame| frame.map(|f| f.freeze()).map_err(framing_error));
    FrameConn {
        sink: Box::pin(sink),
        stream: Box::pin(stream),
        peer_addr,
    }
}

/// Turns a codec error (oversized or truncated frame) into a `NetError` that says so.
fn framing_error(e: io::Error) -> NetError {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            NetError::Malformed(e.to_string())
        }
        io::ErrorKind::Other if e.to_string().contains("bytes remaining") => {
            NetError::Malformed(format!("truncated frame: {e}"))
        }
        _ => NetError::Io(e),
    }
}

fn tcp_conn(stream: tokio::net::TcpStream, max_frame: usize) -> Result<FrameConn, NetError> {
    stream.set_nodelay(true)?;
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "unknown".into());
    let (read, write) = stream.into_split();
    Ok(framed_halves(read, write, max_frame, peer))
}

/// Dials TCP addresses (`host:port`).
#[derive(Clone, Debug)]
pub struct TcpDialer {
    max_frame: usize,
}

impl TcpDialer {
    pub fn new(max_frame: usize) -> Self {
        TcpDialer { max_frame }
    }
}

impl Dialer for TcpDialer {
    fn dial(&self, addr: &str) -> BoxFuture<'static, Result<FrameConn, NetError>> {
        let addr = addr.to_owned();
        let max_frame = self.max_frame;
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            tcp_conn(stream, max_frame)
        })
    }
}

/// Accepts TCP connections.
#[derive(Debug)]
pub struct TcpListener {
    inner: tokio::net::TcpListener,
    max_frame: usize,
}

impl TcpListener {
    pub async fn bind(addr: &str, max_frame: usize) -> Result<TcpListener, NetError> {
        let inner = tokio::net::TcpListener::bind(addr).await?;
        Ok(TcpListener { inner, max_frame })
    }
}

impl Listener for TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<FrameConn, NetError>> {
        Box::pin(async move {
            let (stream, _) = self.inner.accept().await?;
            tcp_conn(stream, self.max_frame)
        })
    }

    fn local_addr(&self) -> String {
        self.inner
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }
}
