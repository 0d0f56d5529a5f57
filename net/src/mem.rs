//! The in-memory transport: connected frame pairs over tokio channels, and a named network.
//!
//! For tests, and a base the simulator can copy. Single-thread friendly: no OS threads, no
//! clock; frames are the same bytes TCP would carry, and the same maximum size is enforced.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Sink, Stream};
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use crate::{Dialer, FrameConn, Listener, NetError};

/// Frames buffered per direction before a sender waits (back-pressure, as a socket has).
pub const MEM_CHANNEL_CAPACITY: usize = 1024;

/// Two connected ends: what one sends, the other receives, in order.
pub fn mem_pair(max_frame: usize) -> (FrameConn, FrameConn) {
    mem_pair_named(max_frame, "mem:a", "mem:b")
}

fn mem_pair_named(max_frame: usize, a_name: &str, b_name: &str) -> (FrameConn, FrameConn) {
    let (a_tx, a_rx) = mpsc::channel(MEM_CHANNEL_CAPACITY);
    let (b_tx, b_rx) = mpsc::channel(MEM_CHANNEL_CAPACITY);
    let a = mem_conn(a_tx, b_rx, max_frame, b_name);
    let b = mem_conn(b_tx, a_rx, max_frame, a_name);
    (a, b)
}

fn mem_conn(
    tx: mpsc::Sender<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    max_frame: usize,
    peer: &str,
) -> FrameConn {
    FrameConn {
        sink: Box::pin(MemSink {
            tx: PollSender::new(tx),
            max_frame,
        }),
        stream: Box::pin(MemStream { rx, max_frame }),
        peer_addr: peer.to_owned(),
        read_limit: crate::limits::ReadLimit::fixed(max_frame),
        security: crate::transport::Security::plain(),
    }
}

struct MemSink {
    tx: PollSender<Bytes>,
    max_frame: usize,
}

impl Sink<Bytes> for MemSink {
    type Error = NetError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), NetError>> {
        self.tx.poll_reserve(cx).map_err(|_| NetError::Closed)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Bytes) -> Result<(), NetError> {
        if frame.len() > self.max_frame {
            return Err(NetError::FrameTooLarge {
                len: frame.len(),
                max: self.max_frame,
            });
        }
        self.tx.send_item(frame).map_err(|_| NetError::Closed)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), NetError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), NetError>> {
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}

struct MemStream {
    rx: mpsc::Receiver<Bytes>,
    max_frame: usize,
}

impl Stream for MemStream {
    type Item = Result<Bytes, NetError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let max = self.max_frame;
        self.rx.poll_recv(cx).map(|frame| {
            frame.map(|f| {
                if f.len() > max {
                    Err(NetError::FrameTooLarge { len: f.len(), max })
                } else {
                    Ok(f)
                }
            })
        })
    }
}

/// A set of named in-memory listeners that `MemDialer`s reach by name.
#[derive(Clone)]
pub struct MemNetwork {
    listeners: Arc<Mutex<BTreeMap<String, mpsc::UnboundedSender<FrameConn>>>>,
    max_frame: usize,
}

impl Default for MemNetwork {
    fn default() -> Self {
        MemNetwork::new(crate::tcp::DEFAULT_MAX_FRAME)
    }
}

impl MemNetwork {
    pub fn new(max_frame: usize) -> Self {
        MemNetwork {
            listeners: Arc::default(),
            max_frame,
        }
    }

    /// Listens on `name`; fails if a live listener already has it.
    pub fn listen(&self, name: &str) -> Result<MemListener, NetError> {
        let mut listeners = self.lock();
        if listeners.get(name).is_some_and(|tx| !tx.is_closed()) {
            return Err(NetError::Io(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{name} is already listening"),
            )));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        listeners.insert(name.to_owned(), tx);
        Ok(MemListener {
            name: name.to_owned(),
            incoming: rx,
        })
    }

    pub fn dialer(&self) -> MemDialer {
        MemDialer {
            network: self.clone(),
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, mpsc::UnboundedSender<FrameConn>>> {
        // A poisoned lock only means another test thread panicked; the map is still valid.
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connect(&self, name: &str) -> Result<FrameConn, NetError> {
        let refused = || {
            NetError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("nothing listens on {name}"),
            ))
        };
        let listeners = self.lock();
        let tx = listeners.get(name).ok_or_else(refused)?;
        let (ours, theirs) = mem_pair_named(self.max_frame, "mem:dialer", name);
        tx.send(theirs).map_err(|_| refused())?;
        Ok(ours)
    }
}

/// Accepts in-memory connections made to its name.
pub struct MemListener {
    name: String,
    incoming: mpsc::UnboundedReceiver<FrameConn>,
}

impl Listener for MemListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<FrameConn, NetError>> {
        Box::pin(async move { self.incoming.recv().await.ok_or(NetError::Closed) })
    }

    fn local_addr(&self) -> String {
        self.name.clone()
    }
}

/// Dials listeners of one `MemNetwork` by name.
#[derive(Clone)]
pub struct MemDialer {
    network: MemNetwork,
}

impl Dialer for MemDialer {
    fn dial(&self, addr: &str) -> BoxFuture<'static, Result<FrameConn, NetError>> {
        let result = self.network.connect(addr);
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{SinkExt, StreamExt};

    #[tokio::test(start_paused = true)]
    async fn dialing_a_name_reaches_its_listener_and_frames_flow_both_ways() {
        let network = MemNetwork::default();
        let mut listener = network.listen("region").unwrap();
        assert!(network.listen("region").is_err(), "a name has one listener");
        let mut dialed = network.dialer().dial("region").await.unwrap();
        let mut accepted = listener.accept().await.unwrap();
        dialed.sink.send(Bytes::from_static(b"up")).await.unwrap();
        accepted
            .sink
            .send(Bytes::from_static(b"down"))
            .await
            .unwrap();
        assert_eq!(&accepted.stream.next().await.unwrap().unwrap()[..], b"up");
        assert_eq!(&dialed.stream.next().await.unwrap().unwrap()[..], b"down");
        drop(accepted);
        assert!(dialed.stream.next().await.is_none(), "the peer hung up");
    }

    #[tokio::test(start_paused = true)]
    async fn dialing_an_unknown_or_closed_name_is_refused() {
        let network = MemNetwork::default();
        assert!(network.dialer().dial("nobody").await.is_err());
        drop(network.listen("gone").unwrap());
        assert!(network.dialer().dial("gone").await.is_err());
        assert!(
            network.listen("gone").is_ok(),
            "a closed listener frees its name"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn oversized_frames_are_refused_by_the_sender() {
        let (mut a, _b) = mem_pair(8);
        let err = a.sink.send(Bytes::from(vec![0; 9])).await.unwrap_err();
        assert!(matches!(err, NetError::FrameTooLarge { len: 9, max: 8 }));
    }
}
