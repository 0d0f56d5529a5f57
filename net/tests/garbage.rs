//! Bad bytes on one connection close that connection only: a well-behaved client on the
//! same listener keeps working throughout. Garbage is sent before and after authentication
//! by a raw-socket client written from docs/PROTOCOL.md.

mod common;

use bytes::Bytes;
use common::{config, raw_authenticated, read_frame, read_until_closed, serve, write_frame};
use osmesh_net::envelope::{encode_frame, Envelope, Kind};
use osmesh_net::{
    accept_handshake, dial_handshake, spawn_peer, Dialer, Listener, Peer, PeerConfig, TcpDialer,
    TcpListener, DEFAULT_MAX_FRAME,
};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

const MAX_FRAME: usize = 64 * 1024;

/// A region that serves every connection it accepts, each in its own task.
async fn region() -> String {
    let mut listener = TcpListener::bind("127.0.0.1:0", MAX_FRAME).await.unwrap();
    let addr = listener.local_addr();
    tokio::spawn(async move {
        let cfg = config("region");
        while let Ok(conn) = listener.accept().await {
            let cfg = cfg.clone();
            tokio::spawn(async move {
                if let Ok(auth) = accept_handshake(conn, &cfg, [2; 32]).await {
                    let (_peer, incoming) = spawn_peer(auth, PeerConfig::default());
                    serve(incoming);
                }
            });
        }
    });
    addr
}

async fn good_client(addr: &str) -> Peer {
    let conn = TcpDialer::new(DEFAULT_MAX_FRAME).dial(addr).await.unwrap();
    let auth = dial_handshake(conn, &config("cluster-good"), [1; 32])
        .await
        .unwrap();
    spawn_peer(auth, PeerConfig::default()).0
}

async fn still_works(good: &Peer) {
    let reply = good
        .call("echo", Bytes::from_static(b"\x01"), Duration::from_secs(5))
        .await;
    assert_eq!(reply.unwrap(), Bytes::from_static(b"\x01"));
}

/// Each case: raw bytes to write after (or instead of) the handshake.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let framed = |payload: &[u8]| {
        let mut f = (payload.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    };
    let mut nested = vec![0x81u8; 100_000];
    nested.push(0x00);
    vec![
        (
            "oversized length prefix",
            vec![0xff, 0xff, 0xff, 0xf0, 1, 2, 3],
        ),
        ("just over the maximum", framed(&vec![0; MAX_FRAME + 1])),
        ("truncated frame", vec![0, 0, 0, 100, 0x84, 0x01]),
        (
            "non-CBOR garbage",
            framed(b"\xff\xfe\xfdGET / HTTP/1.1\r\n"),
        ),
        ("100k nested arrays", framed(&nested)),
        ("unknown kind", framed(&[0x84, 0x01, 0x09, 0x60, 0x40])),
    ]
}

async fn send_garbage_and_expect_hangup(mut s: TcpStream, bytes: &[u8], case: &str) {
    // The server may hang up while we are still writing; that is the point.
    let _ = s.write_all(bytes).await;
    if case.starts_with("truncated") {
        // Only the end of the stream tells a truncated frame from a slow one.
        let _ = s.shutdown().await;
    }
    timeout(Duration::from_secs(5), read_until_closed(&mut s))
        .await
        .unwrap_or_else(|_| panic!("{case}: the server kept the connection open"));
}

#[tokio::test]
async fn garbage_before_authentication_closes_only_that_connection() {
    let addr = region().await;
    let good = good_client(&addr).await;
    for (case, bytes) in cases() {
        let s = TcpStream::connect(&addr).await.unwrap();
        send_garbage_and_expect_hangup(s, &bytes, case).await;
        still_works(&good).await;
    }
}

#[tokio::test]
async fn garbage_after_authentication_closes_only_that_connection() {
    let addr = region().await;
    let good = good_client(&addr).await;
    for (case, bytes) in cases() {
        let s = raw_authenticated(&addr).await;
        send_garbage_and_expect_hangup(s, &bytes, case).await;
        still_works(&good).await;
    }
}

#[tokio::test]
async fn a_reply_to_an_id_never_sent_is_ignored_not_fatal() {
    let addr = region().await;
    let mut s = raw_authenticated(&addr).await;
    write_frame(&mut s, &encode_frame(777, Kind::Reply, "", b"\xa0")).await;
    write_frame(&mut s, &encode_frame(778, Kind::Error, "", b"\xff")).await;
    write_frame(&mut s, &encode_frame(5, Kind::Ping, "", &[])).await;
    let pong = Envelope::decode(&read_frame(&mut s).await.unwrap()).unwrap();
    assert_eq!(
        (pong.kind, pong.id),
        (Kind::Pong, 5),
        "connection still served"
    );
    write_frame(&mut s, &encode_frame(6, Kind::Call, "echo", b"\x02")).await;
    let reply = Envelope::decode(&read_frame(&mut s).await.unwrap()).unwrap();
    assert_eq!(
        (reply.kind, reply.id, &reply.body[..]),
        (Kind::Reply, 6, &b"\x02"[..])
    );
}

#[tokio::test]
async fn a_handshake_message_after_authentication_closes_the_connection() {
    let addr = region().await;
    let good = good_client(&addr).await;
    let s = raw_authenticated(&addr).await;
    let frame = encode_frame(0, Kind::Handshake, "hello", b"\xa0");
    let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&frame);
    send_garbage_and_expect_hangup(s, &bytes, "handshake after auth").await;
    still_works(&good).await;
}
