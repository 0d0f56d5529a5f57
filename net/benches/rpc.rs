//! RPC throughput and latency on one loopback TCP connection, after the handshake.
//!
//! `cargo bench -p osmesh-net` prints calls/s and p50/p99 latency for sequential calls and for
//! pipelined calls (64 in flight), each answering `ListOperatingSystems` with a cached,
//! already-encoded reply of about 2,000 bytes (5 OSes, 20 releases) that the caller decodes.

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use osmesh_core::{OsystemInfo, ReleaseInfo};
use osmesh_net::messages::{ListOperatingSystems, OperatingSystemList};
use osmesh_net::{
    accept_handshake, decode_body, dial_handshake, encode_body, spawn_peer, Dialer,
    HandshakeConfig, Listener, Peer, PeerConfig, Request, Secret, TcpDialer, TcpListener,
    DEFAULT_MAX_FRAME,
};
use std::time::Duration;
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(10);

fn os_list() -> OperatingSystemList {
    let osystems = (0..5)
        .map(|o| OsystemInfo {
            name: format!("os{o}"),
            title: format!("Operating System {o}"),
            releases: (0..4)
                .map(|r| ReleaseInfo {
                    name: format!("release{r}"),
                    title: format!("OS {o} release {r} \"Some Codename\""),
                    requires_license_key: r == 0,
                    can_commission: r % 2 == 0,
                    end_of_life: false,
                })
                .collect(),
            default_release: Some("release1".into()),
            default_commissioning_release: Some("release0".into()),
        })
        .collect::<Vec<_>>();
    OperatingSystemList {
        osystems: osystems.into(),
    }
}

/// The answering side runs on its own thread and runtime, as the cluster is its own process.
fn spawn_cluster(secret: Secret) -> String {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(serve_cluster(secret, addr_tx));
    });
    addr_rx.recv().unwrap()
}

async fn serve_cluster(secret: Secret, addr_tx: std::sync::mpsc::Sender<String>) {
    let mut listener = TcpListener::bind("127.0.0.1:0", DEFAULT_MAX_FRAME)
        .await
        .unwrap();
    addr_tx.send(listener.local_addr()).unwrap();
    let reply = encode_body(&os_list());
    println!("reply body: {} bytes", reply.len());
    let region_cfg = HandshakeConfig::new("cluster-1", secret.clone());
    {
        let conn = listener.accept().await.unwrap();
        let auth = accept_handshake(conn, &region_cfg, [2; 32]).await.unwrap();
        let (_peer, mut incoming) = spawn_peer(auth, PeerConfig::default());
        while let Some(call) = incoming.recv().await {
            if let Some(responder) = call.responder {
                // The cluster's cached, already-encoded reply.
                responder.reply_encoded(reply.clone());
            }
        }
    }
}

async fn connect() -> Peer {
    let secret = Secret::new(*b"bench-secret");
    let addr = spawn_cluster(secret.clone());
    let conn = TcpDialer::new(DEFAULT_MAX_FRAME).dial(&addr).await.unwrap();
    let cfg = HandshakeConfig::new("region", secret);
    let auth = dial_handshake(conn, &cfg, [1; 32]).await.unwrap();
    spawn_peer(auth, PeerConfig::default()).0
}

/// One call; `typed` also decodes the reply into `OperatingSystemList` (what a region does).
async fn one_call(peer: &Peer, typed: bool) -> Duration {
    let started = Instant::now();
    if typed {
        let list = peer
            .call_typed(&ListOperatingSystems {}, TIMEOUT)
            .await
            .unwrap();
        assert_eq!(list.osystems.len(), 5);
    } else {
        let body = encode_body(&ListOperatingSystems {});
        let reply = peer
            .call(ListOperatingSystems::METHOD, body, TIMEOUT)
            .await
            .unwrap();
        assert!(reply.len() > 2000);
    }
    started.elapsed()
}

fn report(name: &str, mut latencies: Vec<Duration>, total: Duration) {
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "{name:<20} {:>8.0} calls/s   p50 {:>7.1} µs   p99 {:>7.1} µs   ({} calls in {:.2} s)",
        latencies.len() as f64 / total.as_secs_f64(),
        pct(50).as_secs_f64() * 1e6,
        pct(99).as_secs_f64() * 1e6,
        latencies.len(),
        total.as_secs_f64()
    );
}

async fn sequential(peer: &Peer, calls: usize, typed: bool) {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        latencies.push(one_call(peer, typed).await);
    }
    report(
        &format!("sequential, {}", label(typed)),
        latencies,
        started.elapsed(),
    );
}

fn label(typed: bool) -> &'static str {
    if typed {
        "typed"
    } else {
        "bytes"
    }
}

async fn pipelined(peer: &Peer, calls: usize, depth: usize, typed: bool) {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(calls);
    let mut in_flight = FuturesUnordered::new();
    let mut issued = 0;
    while latencies.len() < calls {
        while in_flight.len() < depth && issued < calls {
            in_flight.push(one_call(peer, typed));
            issued += 1;
        }
        if let Some(latency) = in_flight.next().await {
            latencies.push(latency);
        }
    }
    let name = format!("pipelined {depth}, {}", label(typed));
    report(&name, latencies, started.elapsed());
}

/// The cost of encoding and of decoding the reply body alone, to compare with a call.
fn codec_alone(iterations: usize) {
    let list = os_list();
    let started = std::time::Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(encode_body(std::hint::black_box(&list)));
    }
    let encode = started.elapsed() / iterations as u32;
    let body: Bytes = encode_body(&list);
    let started = std::time::Instant::now();
    for _ in 0..iterations {
        let back: OperatingSystemList = decode_body(std::hint::black_box(&body)).unwrap();
        std::hint::black_box(back);
    }
    let decode = started.elapsed() / iterations as u32;
    println!(
        "{} body of {} bytes alone: encode {:.1} µs, decode {:.1} µs",
        ListOperatingSystems::METHOD,
        body.len(),
        encode.as_secs_f64() * 1e6,
        decode.as_secs_f64() * 1e6
    );
}

fn main() {
    let calls: usize = std::env::var("RPC_BENCH_CALLS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100_000);
    codec_alone(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let peer = connect().await;
        for typed in [false, true] {
            sequential(&peer, calls / 5, typed).await;
            pipelined(&peer, calls, 64, typed).await;
        }
    });
}
