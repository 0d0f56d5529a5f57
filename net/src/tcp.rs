//! The TCP transport: 4-byte big-endian length prefix, then the frame; `TCP_NODELAY` on.
//! Until the handshake completes a connection reads frames of at most
//! `limits::MAX_FRAME_BEFORE_AUTH` bytes; after it, up to the configured maximum.

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::limits::{ReadLimit, MAX_FRAME, MAX_FRAME_BEFORE_AUTH};
use crate::{Dialer, FrameConn, Listener, NetError};

/// Largest frame accepted or sent unless configured otherwise (`limits::MAX_FRAME`).
pub const DEFAULT_MAX_FRAME: usize = MAX_FRAME;

/// What an idle connection keeps for writing: enough for a ping, a call or a small reply.
/// tokio-util's default is 8 KiB, which at 10,000 cluster links was 80 MiB of mostly empty
/// buffers. Larger frames and batches grow it as they come.
const IDLE_BUFFER: usize = 512;

/// Queued bytes at which the writer flushes before taking another frame (tokio-util's
/// default): a small idle buffer does not mean small writes under load.
const WRITE_BATCH: usize = 8 * 1024;

/// The codec of every byte-stream transport: the length is checked against `max_frame`
/// before any buffer for the frame is allocated.
pub fn length_codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

/// Frames any byte stream (a TCP socket, a `tokio::io::duplex` pipe) into a `FrameConn`
/// that reads small frames until its handshake completes.
pub fn framed<T>(io: T, max_frame: usize, peer_addr: String) -> FrameConn
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    framed_halves(read, write, max_frame, peer_addr)
}

/// Frames the two halves of a byte stream (for TCP: lock-free owned halves). Reads frames of
/// at most `MAX_FRAME_BEFORE_AUTH` bytes until the handshake raises the limit to `max_frame`.
pub fn framed_halves<R, W>(read: R, write: W, max_frame: usize, peer_addr: String) -> FrameConn
where
    R: AsyncRead + Send + 'static,
    W: AsyncWrite + Send + 'static,
{
    let read_limit = ReadLimit::staged(MAX_FRAME_BEFORE_AUTH, max_frame);
    let mut writer = FramedWrite::with_capacity(write, length_codec(max_frame), IDLE_BUFFER);
    writer.set_backpressure_boundary(WRITE_BATCH);
    let sink = SinkExt::<Bytes>::sink_map_err(writer, framing_error);
    let decoder = LimitedCodec {
        inner: length_codec(max_frame),
        limit: read_limit.clone(),
    };
    // Reads keep tokio-util's 8 KiB buffer: one made smaller, or let go while the link
    // waits, read a frame or less per system call once it had been split (a `BytesMut`
    // sizes later allocations from the capacity it was made with): pipelined calls fell
    // from 556k to 197–222k per s (22:11–22:16 UTC).
    let stream = FramedRead::new(read, decoder)
        .map(|frame| frame.map(|f| f.freeze()).map_err(framing_error));
    FrameConn {
        sink: Box::pin(sink),
        stream: Box::pin(stream),
        peer_addr,
        read_limit,
        security: crate::transport::Security::plain(),
    }
}

/// The length codec, its maximum read from the connection's `ReadLimit` before every frame,
/// so the bound is checked against the length prefix before any buffer is reserved.
struct LimitedCodec {
    inner: LengthDelimitedCodec,
    limit: ReadLimit,
}

impl Decoder for LimitedCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, io::Error> {
        self.inner.set_max_frame_length(self.limit.get());
        self.inner.decode(src)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_of_every_size_cross_a_stream_in_order() {
        let (a, b) = tokio::io::duplex(4096);
        let mut left = framed(a, MAX_FRAME, "a".into());
        let mut right = framed(b, MAX_FRAME, "b".into());
        left.read_limit.authenticated();
        right.read_limit.authenticated();
        let sizes = [
            0usize,
            1,
            511,
            512,
            513,
            8 * 1024,
            100 * 1024,
            3,
            40 * 1024,
            2,
        ];
        let writer = tokio::spawn(async move {
            for (i, size) in sizes.into_iter().enumerate() {
                left.sink
                    .send(Bytes::from(vec![i as u8; size]))
                    .await
                    .unwrap();
            }
            left
        });
        for (i, size) in sizes.into_iter().enumerate() {
            let frame = right.stream.next().await.unwrap().unwrap();
            assert_eq!(frame.len(), size, "frame {i}");
            assert!(frame.iter().all(|b| *b == i as u8), "frame {i}");
        }
        writer.await.unwrap();
    }
}
