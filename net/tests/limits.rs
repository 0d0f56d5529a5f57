//! The RPC layer's bounds, each shown against a raw-socket peer over loopback TCP: a small
//! frame limit before authentication, a bounded outbound queue (a peer that does not read is
//! cut off and counted), and inbound backpressure (at the bound the socket is not read).

mod common;

use common::{config, raw_authenticated, read_until_closed, write_frame};
use osmesh_net::envelope::{encode_frame, Kind};
use osmesh_net::limits::{AbuseCounters, MAX_FRAME_BEFORE_AUTH};
use osmesh_net::{accept_handshake, spawn_peer, Incoming, Listener, PeerConfig, TcpListener};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

const MAX_FRAME: usize = 1024 * 1024;

/// A server that authenticates every connection with `cfg` and hands each call to `calls`
/// (held there, unanswered, so the test decides when slots free up).
async fn server(cfg: PeerConfig) -> (String, mpsc::UnboundedReceiver<Incoming>) {
    let mut listener = TcpListener::bind("127.0.0.1:0", MAX_FRAME).await.unwrap();
    let addr = listener.local_addr();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(conn) = listener.accept().await {
            let (cfg, tx) = (cfg.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(auth) = accept_handshake(conn, &config("region"), [2; 32]).await else {
                    return;
                };
                let (_peer, mut incoming) = spawn_peer(auth, cfg);
                while let Some(call) = incoming.recv().await {
                    let _ = tx.send(call);
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn a_large_frame_before_authentication_is_refused_without_reading_it() {
    let (addr, _calls) = server(PeerConfig::default()).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    // Only the length prefix: the server must hang up on it, not wait for the body.
    let len = (MAX_FRAME_BEFORE_AUTH + 1) as u32;
    s.write_all(&len.to_be_bytes()).await.unwrap();
    timeout(Duration::from_secs(5), read_until_closed(&mut s))
        .await
        .expect("the server hangs up on a large pre-authentication frame");
}

#[tokio::test]
async fn after_authentication_the_full_frame_limit_applies() {
    let (addr, mut calls) = server(PeerConfig::default()).await;
    let mut s = raw_authenticated(&addr).await;
    // A call well above the pre-authentication limit still arrives once authenticated.
    let big = encode_frame(1, Kind::Call, "echo", &vec![0u8; 3 * MAX_FRAME_BEFORE_AUTH]);
    write_frame(&mut s, &big).await;
    let call = timeout(Duration::from_secs(5), calls.recv())
        .await
        .expect("the call arrives")
        .expect("server alive");
    assert_eq!(call.method, "echo");
}

/// Writes `frame` over and over until the server hangs up (true) or 2,000,000 were sent.
async fn flood(s: &mut TcpStream, frame: &[u8]) -> bool {
    let mut framed = (frame.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(frame);
    let batch: Vec<u8> = framed.repeat(10_000);
    for _ in 0..200 {
        if s.write_all(&batch).await.is_err() {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_ping_flood_closes_the_connection_at_once() {
    let (addr, _calls) = server(PeerConfig::default()).await;
    let mut s = raw_authenticated(&addr).await;
    let cut = timeout(
        Duration::from_secs(30),
        flood(&mut s, &encode_frame(1, Kind::Ping, "", &[])),
    )
    .await;
    assert!(matches!(cut, Ok(true)), "the server kept taking pings");
}

#[tokio::test]
async fn a_peer_that_calls_and_never_reads_is_cut_off_and_counted() {
    let counters = AbuseCounters::default();
    let cfg = PeerConfig {
        max_outbound_frames: 256,
        counters: counters.clone(),
        ..PeerConfig::default()
    };
    // Nobody takes the calls: each is answered at once with an error the peer never reads.
    let (addr, calls) = server(cfg).await;
    drop(calls);
    let mut s = raw_authenticated(&addr).await;
    // Calls until the server hangs up: the replies fill the socket buffers, then the bounded
    // queue, then the link is closed.
    let call = encode_frame(1, Kind::Call, "echo", &[]);
    let cut = timeout(Duration::from_secs(30), flood(&mut s, &call)).await;
    assert!(
        matches!(cut, Ok(true)),
        "the server kept accepting calls from a peer that never reads"
    );
    assert_eq!(counters.snapshot().links_closed_not_reading, 1);
}

#[tokio::test]
async fn at_the_inbound_bound_the_socket_is_not_read_until_a_slot_frees() {
    let cfg = PeerConfig {
        max_inbound_in_flight: 8,
        ..PeerConfig::default()
    };
    let (addr, mut calls) = server(cfg).await;
    let mut s = raw_authenticated(&addr).await;
    for id in 1..=20u64 {
        write_frame(&mut s, &encode_frame(id, Kind::Call, "hold", &[])).await;
    }
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(calls.recv().await.expect("a call"));
    }
    // The ninth is not delivered while eight are held unanswered.
    assert!(
        timeout(Duration::from_millis(300), calls.recv())
            .await
            .is_err(),
        "a call beyond the bound was delivered"
    );
    // Answering (here: dropping) one frees one slot, and exactly one more call arrives.
    drop(held.pop());
    let ninth = timeout(Duration::from_secs(5), calls.recv()).await;
    assert!(matches!(ninth, Ok(Some(_))), "a slot freed, a call arrives");
    assert!(timeout(Duration::from_millis(300), calls.recv())
        .await
        .is_err());
}
