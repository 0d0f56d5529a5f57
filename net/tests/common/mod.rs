//! Shared test fixtures: connected authenticated pairs over each transport, a scripted
//! server, and a raw-bytes client that speaks the protocol from `docs/PROTOCOL.md` by hand.
#![allow(dead_code)]

use bytes::Bytes;
use osmesh_core::{OsystemInfo, ReleaseInfo};
use osmesh_net::envelope::{encode_frame, ByteString, Envelope, Kind};
use osmesh_net::handshake::{proof_mac, step, Hello, Proof, Role, Transcript};
use osmesh_net::messages::{ListOperatingSystems, OperatingSystemList, Request};
use osmesh_net::{
    accept_handshake, decode_body, dial_handshake, encode_body, mem_pair, Authenticated, Dialer,
    HandshakeConfig, IncomingCalls, Listener, Secret, TcpDialer, TcpListener, DEFAULT_MAX_FRAME,
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub const SECRET: &[u8] = b"correct horse battery staple";

#[derive(Clone, Copy, Debug)]
pub enum Transport {
    Tcp,
    Mem,
}

pub fn config(identity: &str) -> HandshakeConfig {
    HandshakeConfig::new(identity, Secret::new(SECRET))
}

/// Two connected raw connections (dialer end, acceptor end).
pub async fn raw_pair(transport: Transport) -> (osmesh_net::FrameConn, osmesh_net::FrameConn) {
    match transport {
        Transport::Mem => mem_pair(DEFAULT_MAX_FRAME),
        Transport::Tcp => {
            let mut listener = TcpListener::bind("127.0.0.1:0", DEFAULT_MAX_FRAME)
                .await
                .unwrap();
            let addr = listener.local_addr();
            let dialer = TcpDialer::new(DEFAULT_MAX_FRAME);
            let (dialed, accepted) = tokio::join!(dialer.dial(&addr), listener.accept());
            (dialed.unwrap(), accepted.unwrap())
        }
    }
}

/// An authenticated pair: (the cluster that dialed, the region that accepted).
pub async fn connected_pair(transport: Transport) -> (Authenticated, Authenticated) {
    let (d, a) = raw_pair(transport).await;
    let (dc, ac) = (config("cluster-1"), config("region"));
    let (d, a) = tokio::join!(
        dial_handshake(d, &dc, [1; 32]),
        accept_handshake(a, &ac, [2; 32])
    );
    (d.unwrap(), a.unwrap())
}

pub fn sample_osystems(oses: usize, releases: usize) -> OperatingSystemList {
    let osystems: Vec<OsystemInfo> = (0..oses)
        .map(|o| OsystemInfo {
            name: format!("os{o}"),
            title: format!("Operating System {o}"),
            releases: (0..releases / oses)
                .map(|r| ReleaseInfo {
                    name: format!("release{r}"),
                    title: format!("OS {o} release {r} \"Codename\""),
                    requires_license_key: r % 3 == 0,
                    can_commission: r % 2 == 0,
                    end_of_life: false,
                })
                .collect(),
            default_release: Some("release0".into()),
            default_commissioning_release: Some("release0".into()),
        })
        .collect();
    OperatingSystemList {
        osystems: osystems.into(),
    }
}

/// What the scripted server saw of notifies.
pub struct Served {
    pub notifies: mpsc::UnboundedReceiver<(String, Bytes)>,
}

/// Serves: `echo` (body back), `sleep` (body = CBOR u64 ms, then echo), `hold` (keeps the
/// call unanswered), `release` (answers every held call, then this one), `drop` (drops the
/// responder), `ListOperatingSystems`; anything else is `UnknownMethod`.
pub fn serve(mut incoming: IncomingCalls) -> Served {
    let (tx, notifies) = mpsc::unbounded_channel();
    let os_list = encode_body(&sample_osystems(5, 20));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(call) = incoming.recv().await {
            let Some(responder) = call.responder else {
                let _ = tx.send((call.method, call.body));
                continue;
            };
            match call.method.as_str() {
                "echo" => responder.reply(Ok(call.body)),
                "sleep" => {
                    let ms: u64 = decode_body(&call.body).unwrap();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        responder.reply(Ok(call.body));
                    });
                }
                "hold" => held.push(responder),
                "release" => {
                    for r in held.drain(..) {
                        r.reply(Ok(Bytes::from_static(b"late")));
                    }
                    responder.reply(Ok(call.body));
                }
                "drop" => drop(responder),
                ListOperatingSystems::METHOD => responder.reply_encoded(os_list.clone()),
                _ => osmesh_net::Incoming {
                    responder: Some(responder),
                    ..call
                }
                .reply_unknown_method(),
            }
        }
    });
    Served { notifies }
}

pub async fn write_frame(s: &mut TcpStream, payload: &[u8]) {
    s.write_all(&(payload.len() as u32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(payload).await.unwrap();
}

/// Reads one frame; `None` at end of stream.
pub async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let len = s.read_u32().await.ok()?;
    let mut buf = vec![0; len as usize];
    s.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

/// Reads until the server closes the connection; returns the frames seen before.
pub async fn read_until_closed(s: &mut TcpStream) -> Vec<Envelope> {
    let mut seen = Vec::new();
    while let Some(frame) = read_frame(s).await {
        if let Ok(e) = Envelope::decode(&frame) {
            seen.push(e);
        }
    }
    seen
}

/// A client written from the protocol document: handshake by hand over a raw socket.
pub async fn raw_authenticated(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let ours = Hello {
        identity: "raw-cluster".into(),
        min_version: 2,
        max_version: 2,
        nonce: ByteString(vec![7; 32]),
    };
    write_frame(
        &mut s,
        &encode_frame(0, Kind::Handshake, step::HELLO, &encode_body(&ours)),
    )
    .await;
    let theirs = Envelope::decode(&read_frame(&mut s).await.unwrap()).unwrap();
    let theirs: Hello = decode_body(&theirs.body).unwrap();
    let t = Transcript {
        dialer: &ours,
        acceptor: &theirs,
        channel_binding: &[],
    };
    let mac = proof_mac(&Secret::new(SECRET), Role::Dialer, &t);
    let proof = Proof {
        mac: ByteString(mac.to_vec()),
    };
    write_frame(
        &mut s,
        &encode_frame(0, Kind::Handshake, step::PROOF, &encode_body(&proof)),
    )
    .await;
    let theirs_proof = Envelope::decode(&read_frame(&mut s).await.unwrap()).unwrap();
    let theirs_proof: Proof = decode_body(&theirs_proof.body).unwrap();
    let expected = proof_mac(&Secret::new(SECRET), Role::Acceptor, &t);
    assert_eq!(theirs_proof.mac.0, expected.to_vec());
    write_frame(
        &mut s,
        &encode_frame(
            0,
            Kind::Handshake,
            step::DONE,
            &encode_body(&std::collections::BTreeMap::<String, u8>::new()),
        ),
    )
    .await;
    s
}
