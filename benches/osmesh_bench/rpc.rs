//! Part 1: one loopback connection, sequential and 64-deep pipelined `ListOperatingSystems`
//! calls, for osmesh and for each comparison peer.
//!
//! Every answering side runs on its own thread and current-thread runtime (as a cluster is
//! its own process); the calling side runs on the harness's current-thread runtime. Each peer
//! keeps one connection for all its runs, warms it up, then measures.

use crate::reply::{os_list, os_list_variant, osmesh_frame_sizes, OSYSTEMS};
use crate::stats::{pipelined, sequential, Figures};
use anyhow::{Context, Result};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use osmesh_net::messages::ListOperatingSystems;
use osmesh_net::{
    accept_handshake, dial_handshake, encode_body, spawn_peer, Dialer, HandshakeConfig, Listener,
    Peer, PeerConfig, Secret, TcpDialer, TcpListener, DEFAULT_MAX_FRAME,
};
use serde::Serialize;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Mutex};
use tokio_util::codec::{Framed, FramedRead, FramedWrite, LengthDelimitedCodec};

/// Calls in flight at once in the pipelined runs.
pub const DEPTH: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(10);

/// How many calls each run makes, and how many runs of each there are.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RpcPlan {
    pub sequential_calls: usize,
    pub pipelined_calls: usize,
    pub runs: usize,
}

/// One peer's medians.
#[derive(Clone, Debug, Serialize)]
pub struct PeerFigures {
    pub peer: String,
    pub sequential: Figures,
    pub pipelined: Figures,
}

/// Measures a connected caller: a warm-up, then `runs` × (sequential, pipelined), medians.
pub async fn measure<F, Fut>(peer: &str, plan: RpcPlan, call: F) -> PeerFigures
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    sequential(plan.sequential_calls.min(500), &call).await;
    let mut seq = Vec::new();
    let mut pipe = Vec::new();
    for _ in 0..plan.runs {
        seq.push(sequential(plan.sequential_calls, &call).await);
        pipe.push(pipelined(plan.pipelined_calls, DEPTH, &call).await);
    }
    PeerFigures {
        peer: peer.to_string(),
        sequential: Figures::median(&seq),
        pipelined: Figures::median(&pipe),
    }
}

/// Runs `serve` on its own thread and current-thread runtime; returns what it sends back
/// once listening (its address).
pub fn spawn_server<T, F, Fut>(serve: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(std::sync::mpsc::Sender<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(serve(tx)),
                Err(e) => eprintln!("bench server: no runtime: {e}"),
            }
        })?;
    rx.recv().context("the bench server did not start")
}

// ---- osmesh: CBOR over TCP, after the mutual handshake --------------------------------

/// How the osmesh caller decodes replies, and whether the replies change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsmeshMode {
    /// `Peer::call_typed`: every reply decoded.
    DecodeAlways,
    /// `Peer::call_memo` (what the region's fan-out does) with the same reply every call.
    MemoUnchanged,
    /// `Peer::call_memo` with a reply that differs from the last on every call (two replies
    /// of equal size, alternating): every reply is hashed and decoded. The honest row.
    MemoChanging,
}

impl OsmeshMode {
    fn label(self) -> &'static str {
        match self {
            OsmeshMode::DecodeAlways => "osmesh (CBOR/TCP)",
            OsmeshMode::MemoUnchanged => "osmesh memo, reply unchanged",
            OsmeshMode::MemoChanging => "osmesh memo, reply changes",
        }
    }
}

/// osmesh's peer: the cluster answers with its cached, already-encoded reply (as
/// `ClusterActor` does); the region decodes it into `OperatingSystemList` (`mode`).
pub async fn osmesh(plan: RpcPlan, mode: OsmeshMode) -> Result<PeerFigures> {
    let secret = Secret::new(*b"osmesh-bench-secret");
    let server_secret = secret.clone();
    let changing = mode == OsmeshMode::MemoChanging;
    let addr = spawn_server(move |tx| serve_osmesh(server_secret, changing, tx))?;
    let conn = TcpDialer::new(DEFAULT_MAX_FRAME).dial(&addr).await?;
    let cfg = HandshakeConfig::new("region", secret);
    let auth = dial_handshake(conn, &cfg, [1; 32]).await?;
    let (peer, _incoming) = spawn_peer(auth, PeerConfig::default());
    let call = || osmesh_call(&peer, mode);
    Ok(measure(mode.label(), plan, call).await)
}

async fn osmesh_call(peer: &Peer, mode: OsmeshMode) {
    let osystems = match mode {
        OsmeshMode::DecodeAlways => peer
            .call_typed(&ListOperatingSystems {}, TIMEOUT)
            .await
            .map(|list| list.osystems.len()),
        _ => peer
            .call_memo(&ListOperatingSystems {}, TIMEOUT)
            .await
            .map(|list| list.osystems.len()),
    };
    match osystems {
        Ok(n) => assert_eq!(n, OSYSTEMS),
        Err(e) => panic!("osmesh call failed: {e}"),
    }
}

async fn serve_osmesh(secret: Secret, changing: bool, tx: std::sync::mpsc::Sender<String>) {
    let Ok(mut listener) = TcpListener::bind("127.0.0.1:0", DEFAULT_MAX_FRAME).await else {
        return;
    };
    let _ = tx.send(listener.local_addr());
    let replies = [encode_body(&os_list()), encode_body(&os_list_variant())];
    let cfg = HandshakeConfig::new("cluster-1", secret);
    let Ok(conn) = listener.accept().await else {
        return;
    };
    let Ok(auth) = accept_handshake(conn, &cfg, [2; 32]).await else {
        return;
    };
    let (_peer, mut incoming) = spawn_peer(auth, PeerConfig::default());
    let mut n = 0usize;
    while let Some(call) = incoming.recv().await {
        if let Some(responder) = call.responder {
            responder.reply_encoded(replies[n % 2].clone());
            n += usize::from(changing);
        }
    }
}

// ---- raw TCP: the same bytes, no envelope, no codec ----------------------------------

/// The floor: length-prefixed frames of osmesh's request and reply sizes, neither encoded
/// nor decoded; the server answers each request frame with the reply bytes. Replies come
/// back in order, so a reader task completes waiting callers first-in, first-out.
pub async fn raw_tcp(plan: RpcPlan) -> Result<PeerFigures> {
    let (request_len, reply_len) = osmesh_frame_sizes();
    let addr = spawn_server(move |tx| serve_raw(reply_len, tx))?;
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let conn = Arc::new(RawConn {
        write: Mutex::new(FramedWrite::new(write, LengthDelimitedCodec::new())),
        waiting: std::sync::Mutex::new(VecDeque::new()),
        request: Bytes::from(vec![0x5a; request_len]),
    });
    tokio::spawn(read_replies(
        FramedRead::new(read, LengthDelimitedCodec::new()),
        conn.clone(),
        reply_len,
    ));
    let call = || raw_call(&conn);
    Ok(measure("raw TCP (floor)", plan, call).await)
}

struct RawConn {
    write: Mutex<FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>>,
    /// Callers waiting for a reply, in the order their requests were written.
    waiting: std::sync::Mutex<VecDeque<oneshot::Sender<()>>>,
    request: Bytes,
}

async fn raw_call(conn: &RawConn) {
    let (tx, rx) = oneshot::channel();
    {
        let mut write = conn.write.lock().await;
        if let Ok(mut waiting) = conn.waiting.lock() {
            waiting.push_back(tx);
        }
        if let Err(e) = write.send(conn.request.clone()).await {
            panic!("raw write failed: {e}");
        }
    }
    if rx.await.is_err() {
        panic!("raw connection closed");
    }
}

async fn read_replies(
    mut read: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    conn: Arc<RawConn>,
    reply_len: usize,
) {
    while let Some(Ok(frame)) = read.next().await {
        assert_eq!(frame.len(), reply_len);
        let next = conn.waiting.lock().ok().and_then(|mut w| w.pop_front());
        if let Some(waiter) = next {
            let _ = waiter.send(());
        }
    }
}

async fn serve_raw(reply_len: usize, tx: std::sync::mpsc::Sender<String>) {
    let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
        return;
    };
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let _ = tx.send(addr.to_string());
    let Ok((stream, _)) = listener.accept().await else {
        return;
    };
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let reply = Bytes::from(vec![0xa5; reply_len]);
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    while let Some(Ok(_request)) = framed.next().await {
        // Queue without flushing while more requests are already buffered, as osmesh's
        // writer batches; flush when the read side would wait.
        if framed.feed(reply.clone()).await.is_err() {
            return;
        }
        if framed.read_buffer().is_empty() && SinkExt::<Bytes>::flush(&mut framed).await.is_err() {
            return;
        }
    }
}
