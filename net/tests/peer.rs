//! The RPC peer, on both transports: deadlines, ordering, concurrency, cancellation,
//! connection loss and heartbeats. In-memory tests run on paused (virtual) time.

mod common;

use bytes::Bytes;
use common::{connected_pair, serve, Transport};
use futures::future::join_all;
use osmesh_net::messages::ListOperatingSystems;
use osmesh_net::{encode_body, spawn_peer, ErrorKind, Peer, PeerConfig};
use std::time::Duration;
use tokio::time::{timeout, Instant};

const LONG: Duration = Duration::from_secs(30);

/// Runs each named test function over TCP (real time) and in memory (paused time).
macro_rules! on_both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn tcp() {
                super::$name(super::Transport::Tcp).await
            }
            #[tokio::test(start_paused = true)]
            async fn mem() {
                super::$name(super::Transport::Mem).await
            }
        }
    )*};
}

on_both_transports!(
    a_call_gets_its_reply,
    a_deadline_fails_the_call_with_timeout,
    replies_may_come_out_of_order,
    a_thousand_calls_in_flight_on_one_connection,
    losing_the_connection_fails_every_call_in_flight_promptly,
    closing_locally_fails_every_call_in_flight,
    a_silent_peer_is_declared_dead_by_heartbeat,
    an_unknown_method_answers_unknown_method,
    an_abandoned_call_is_forgotten_and_its_late_reply_ignored,
    a_dropped_responder_answers_internal,
    notifies_arrive_without_a_reply,
    typed_calls_decode_the_typed_reply,
    a_memoized_call_decodes_every_changed_reply,
);

/// A client peer calling a served region peer.
async fn client_and_server(transport: Transport, cfg: PeerConfig) -> (Peer, Peer) {
    let (d, a) = connected_pair(transport).await;
    let (client, client_incoming) = spawn_peer(d, cfg.clone());
    let (server, incoming) = spawn_peer(a, cfg);
    serve(incoming);
    drop(client_incoming);
    (client, server)
}

async fn pair(transport: Transport) -> (Peer, Peer) {
    client_and_server(transport, PeerConfig::default()).await
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn a_call_gets_its_reply(transport: Transport) {
    let (client, _server) = pair(transport).await;
    assert_eq!(client.peer_identity(), "region");
    let reply = client
        .call("echo", Bytes::from_static(b"\x63abc"), LONG)
        .await;
    assert_eq!(reply.unwrap(), Bytes::from_static(b"\x63abc"));
    assert_eq!(client.in_flight(), 0);
}

async fn a_deadline_fails_the_call_with_timeout(transport: Transport) {
    let (client, _server) = pair(transport).await;
    let started = Instant::now();
    let err = client
        .call("hold", Bytes::new(), ms(200))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(started.elapsed() >= ms(200));
    assert_eq!(client.in_flight(), 0);
    assert!(
        !client.is_closed(),
        "a timeout does not close the connection"
    );
}

async fn replies_may_come_out_of_order(transport: Transport) {
    let (client, _server) = pair(transport).await;
    let slow = client.call("sleep", encode_body(&300u64), LONG);
    let fast = client.call("sleep", encode_body(&10u64), LONG);
    let order = std::sync::Mutex::new(Vec::new());
    let (s, f) = tokio::join!(
        async {
            let r = slow.await;
            order.lock().unwrap().push("slow");
            r
        },
        async {
            let r = fast.await;
            order.lock().unwrap().push("fast");
            r
        }
    );
    assert_eq!(s.unwrap(), encode_body(&300u64));
    assert_eq!(f.unwrap(), encode_body(&10u64));
    assert_eq!(*order.lock().unwrap(), ["fast", "slow"]);
}

async fn a_thousand_calls_in_flight_on_one_connection(transport: Transport) {
    let (client, _server) = pair(transport).await;
    let calls = (0..1000u64).map(|i| {
        let client = client.clone();
        async move {
            // Replies come back in a scrambled order: call i sleeps (i * 7919) % 97 ms.
            let delay = (i * 7919) % 97;
            let reply = client.call("sleep", encode_body(&delay), LONG).await;
            (delay, reply)
        }
    });
    for (delay, reply) in join_all(calls).await {
        assert_eq!(reply.unwrap(), encode_body(&delay));
    }
    assert_eq!(client.in_flight(), 0);
}

async fn losing_the_connection_fails_every_call_in_flight_promptly(transport: Transport) {
    let (client, server) = pair(transport).await;
    let calls = join_all((0..10).map(|_| client.call("hold", Bytes::new(), LONG)));
    let results = timeout(ms(1_000), async {
        let (results, ()) = tokio::join!(calls, async {
            tokio::time::sleep(ms(50)).await;
            server.close();
        });
        results
    })
    .await
    .expect("calls should fail within a second of the drop, not at their deadline");
    for result in results {
        let err = result.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        assert!(err.message.starts_with("peer gone: "), "{err}");
    }
    timeout(ms(1_000), client.closed()).await.unwrap();
    let after = client.call("echo", Bytes::new(), LONG).await.unwrap_err();
    assert_eq!(after.kind, ErrorKind::Unavailable);
}

async fn closing_locally_fails_every_call_in_flight(transport: Transport) {
    let (client, server) = pair(transport).await;
    let calls = join_all((0..10).map(|_| client.call("hold", Bytes::new(), LONG)));
    let (results, ()) = tokio::join!(calls, async {
        tokio::time::sleep(ms(50)).await;
        client.close();
    });
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap_err().kind == ErrorKind::Unavailable));
    assert!(client.is_closed());
    timeout(ms(1_000), server.closed()).await.unwrap();
    assert_eq!(server.close_reason().unwrap(), "connection closed by peer");
}

fn quick_heartbeats() -> PeerConfig {
    PeerConfig {
        heartbeat_interval: ms(100),
        heartbeat_timeout: ms(300),
        ..PeerConfig::default()
    }
}

async fn a_silent_peer_is_declared_dead_by_heartbeat(transport: Transport) {
    let (d, _silent) = connected_pair(transport).await;
    let (client, _incoming) = spawn_peer(d, quick_heartbeats());
    let started = Instant::now();
    let err = client.call("hold", Bytes::new(), LONG).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("heartbeat timeout"), "{err}");
    let waited = started.elapsed();
    // Never before the timeout; the upper bound only catches "never" (real time on TCP).
    assert!(waited >= ms(300) && waited < ms(20_000), "{waited:?}");
    assert!(client.is_closed());
}

/// The logic on virtual time; over TCP on real time with a margin no loaded machine breaks.
mod heartbeats_keep_an_idle_connection_alive {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn mem() {
        idle_outlasts_the_timeout(Transport::Mem, quick_heartbeats(), ms(1_500)).await;
    }

    /// The idle wait outlasts the heartbeat timeout (so only heartbeats keep the link), and
    /// the timeout is thirty heartbeat intervals: only a 3 s stall of the whole process fails it.
    #[tokio::test]
    async fn tcp() {
        let cfg = PeerConfig {
            heartbeat_interval: ms(100),
            heartbeat_timeout: ms(3_000),
            ..PeerConfig::default()
        };
        idle_outlasts_the_timeout(Transport::Tcp, cfg, ms(4_000)).await;
    }
}

async fn idle_outlasts_the_timeout(transport: Transport, cfg: PeerConfig, idle: Duration) {
    assert!(idle > cfg.heartbeat_timeout);
    let (client, server) = client_and_server(transport, cfg).await;
    tokio::time::sleep(idle).await;
    assert!(!client.is_closed() && !server.is_closed());
    client.call("echo", Bytes::new(), LONG).await.unwrap();
}

async fn an_unknown_method_answers_unknown_method(transport: Transport) {
    let (client, _server) = pair(transport).await;
    let err = client
        .call("FutureMethod", Bytes::new(), LONG)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownMethod);
    assert!(err.message.contains("FutureMethod"));
    assert!(!client.is_closed());
}

async fn an_abandoned_call_is_forgotten_and_its_late_reply_ignored(transport: Transport) {
    let (client, _server) = pair(transport).await;
    let abandoned = timeout(ms(50), client.call("hold", Bytes::new(), LONG)).await;
    assert!(abandoned.is_err(), "the caller gave up first");
    assert_eq!(client.in_flight(), 0, "dropping the call future removes it");
    // `release` answers the abandoned call first: that late reply must be ignored.
    let reply = client
        .call("release", Bytes::from_static(b"\x40"), LONG)
        .await;
    assert_eq!(reply.unwrap(), Bytes::from_static(b"\x40"));
    assert_eq!(
        client.call("echo", Bytes::new(), LONG).await.unwrap(),
        Bytes::new()
    );
}

async fn a_dropped_responder_answers_internal(transport: Transport) {
    let (client, _server) = pair(transport).await;
    let err = client.call("drop", Bytes::new(), LONG).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
}

async fn notifies_arrive_without_a_reply(transport: Transport) {
    let (d, a) = connected_pair(transport).await;
    let (client, _) = spawn_peer(d, PeerConfig::default());
    let (_server, incoming) = spawn_peer(a, PeerConfig::default());
    let mut served = serve(incoming);
    client
        .notify("ReportBootImages", Bytes::from_static(b"\xa0"))
        .unwrap();
    let (method, body) = served.notifies.recv().await.unwrap();
    assert_eq!(
        (method.as_str(), &body[..]),
        ("ReportBootImages", &b"\xa0"[..])
    );
}

async fn typed_calls_decode_the_typed_reply(transport: Transport) {
    let (client, _server) = pair(transport).await;
    let list = client
        .call_typed(&ListOperatingSystems {}, LONG)
        .await
        .unwrap();
    assert_eq!(list, common::sample_osystems(5, 20));
}

/// The server answers `ListOperatingSystems` with A, A, B, B, A (B one byte apart from A):
/// `call_memo` must return each reply's own content, skipping only the repeats.
async fn a_memoized_call_decodes_every_changed_reply(transport: Transport) {
    let (d, a) = connected_pair(transport).await;
    let (client, _client_incoming) = spawn_peer(d, PeerConfig::default());
    let (_server, mut incoming) = spawn_peer(a, PeerConfig::default());
    let list_a = common::sample_osystems(2, 3);
    let mut list_b = list_a.clone();
    std::sync::Arc::make_mut(&mut list_b.osystems)[1]
        .title
        .replace_range(0..1, "Z");
    let replies = [&list_a, &list_a, &list_b, &list_b, &list_a];
    let bodies: Vec<Bytes> = replies.iter().map(|l| encode_body(*l)).collect();
    assert_eq!(bodies[0].len(), bodies[2].len());
    tokio::spawn(async move {
        for body in bodies {
            let call = incoming.recv().await.unwrap();
            call.responder.unwrap().reply_encoded(body);
        }
    });
    for want in replies {
        let got = client
            .call_memo(&ListOperatingSystems {}, LONG)
            .await
            .unwrap();
        assert_eq!(*got, *want);
    }
    assert_eq!(client.memo_hits::<ListOperatingSystems>(), 2);
}

#[tokio::test(start_paused = true)]
async fn too_many_calls_in_flight_fail_at_once() {
    let cfg = PeerConfig {
        max_in_flight: 2,
        ..PeerConfig::default()
    };
    let (client, _server) = client_and_server(Transport::Mem, cfg).await;
    let held = join_all((0..2).map(|_| client.call("hold", Bytes::new(), ms(100))));
    let (_, third) = tokio::join!(held, async {
        tokio::task::yield_now().await;
        client.call("echo", Bytes::new(), LONG).await
    });
    assert_eq!(third.unwrap_err().kind, ErrorKind::Unavailable);
}

#[tokio::test(start_paused = true)]
async fn an_oversized_call_fails_locally_and_keeps_the_connection() {
    let cfg = PeerConfig {
        max_frame: 1024,
        ..PeerConfig::default()
    };
    let (client, _server) = client_and_server(Transport::Mem, cfg).await;
    let err = client
        .call("echo", Bytes::from(vec![0; 2048]), LONG)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadRequest);
    assert!(client.call("echo", Bytes::new(), LONG).await.is_ok());
}

#[test]
fn runs_on_a_multi_thread_runtime_too() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, _server) = pair(Transport::Tcp).await;
        let calls = (0..100).map(|_| client.call("echo", Bytes::new(), LONG));
        assert!(join_all(calls).await.into_iter().all(|r| r.is_ok()));
    });
}

/// One run of a seeded workload on a fresh paused runtime: the order in which replies
/// complete, as a simulator trace would record it.
fn seeded_completion_order(seed: u64) -> Vec<u64> {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, _server) = pair(Transport::Mem).await;
        let mut rng = StdRng::seed_from_u64(seed);
        let order = std::sync::Mutex::new(Vec::new());
        let calls = (0..200u64).map(|i| {
            let delay: u64 = rng.gen_range(0..50);
            let (client, order) = (&client, &order);
            async move {
                let r = client.call("sleep", encode_body(&delay), LONG).await;
                assert!(r.is_ok());
                order.lock().unwrap().push(i);
            }
        });
        join_all(calls).await;
        order.into_inner().unwrap()
    })
}

#[test]
fn the_same_seed_gives_the_same_completion_order_on_virtual_time() {
    assert_eq!(seeded_completion_order(11), seeded_completion_order(11));
    assert_ne!(seeded_completion_order(11), seeded_completion_order(12));
}
