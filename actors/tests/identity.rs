//! The region's identity rules (issue 13), over the in-memory transport on paused time: a link
//! becomes a cluster only after its `Register` succeeds; a second link for a connected
//! identity is refused while the first is alive and gets in once it is closed; `last_seen_ms`
//! is the last frame received.

use actix::{Actor, Addr};
use osmesh_actors::clock::Clock;
use osmesh_actors::region::{ListClusters, RegionActor, RegionSettings, REGISTER_TIMEOUT};
use osmesh_core::ClusterId;
use osmesh_net::handshake::{dial_handshake, HandshakeConfig, Secret};
use osmesh_net::limits::AbuseCounters;
use osmesh_net::mem::MemNetwork;
use osmesh_net::messages::{Register, ReportBootImages};
use osmesh_net::peer::{spawn_peer, IncomingCalls, Peer, PeerConfig};
use osmesh_net::{Dialer, ErrorKind, DEFAULT_MAX_FRAME};
use osmesh_store::{Store, StoreOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Duration;

const CALL: Duration = Duration::from_secs(5);

fn handshake(identity: &str) -> HandshakeConfig {
    HandshakeConfig::new(identity, Secret::new(b"identity-test-secret".to_vec()))
}

fn paused<F: std::future::Future<Output = ()>>(test: impl FnOnce(tempfile::TempDir) -> F) {
    let dir = tempfile::tempdir().expect("temp dir");
    let runner = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a paused runtime")
    });
    runner.block_on(test(dir));
}

struct World {
    network: MemNetwork,
    region: Addr<RegionActor>,
    counters: AbuseCounters,
}

fn start_region(dir: &tempfile::TempDir) -> World {
    let db = format!("sqlite://{}", dir.path().join("region.db").display());
    let network = MemNetwork::new(DEFAULT_MAX_FRAME);
    let listener = network.listen("region").expect("listen");
    let store = Store::open_with(
        &db,
        &StoreOptions {
            pool_size: 1,
            ..StoreOptions::default()
        },
    )
    .expect("store");
    let peer = PeerConfig::default();
    let counters = peer.counters.clone();
    let region = RegionActor::new(
        RegionSettings {
            name: "region".into(),
            handshake: handshake("region"),
            peer,
            refresh_interval: Duration::from_secs(3600),
        },
        store.inline(),
        Clock::anchored_at(0),
        StdRng::seed_from_u64(1),
        Box::new(listener),
    )
    .start();
    World {
        network,
        region,
        counters,
    }
}

/// An authenticated link to the region as `identity`, registering nothing yet.
async fn link(world: &World, identity: &str) -> (Peer, IncomingCalls) {
    let conn = world.network.dialer().dial("region").await.expect("dial");
    let auth = dial_handshake(conn, &handshake(identity), [7; 32])
        .await
        .expect("handshake");
    spawn_peer(auth, PeerConfig::default())
}

fn register(cluster: &str) -> Register {
    Register {
        cluster: ClusterId::new(cluster),
        name: cluster.into(),
        capabilities: Vec::new(),
    }
}

async fn listed(world: &World) -> Vec<String> {
    let list = world.region.send(ListClusters).await.expect("region");
    list.into_iter().map(|c| c.id.to_string()).collect()
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[test]
fn a_link_without_a_successful_register_leaves_no_cluster() {
    paused(|dir| async move {
        let world = start_region(&dir);

        // Handshake only, never a Register: not listed, and closed after REGISTER_TIMEOUT.
        let (silent, _silent_in) = link(&world, "ghost").await;
        settle().await;
        assert!(listed(&world).await.is_empty(), "a phantom cluster");

        // A Register for another identity than the authenticated one: refused, link closed.
        let (liar, _liar_in) = link(&world, "liar").await;
        let err = liar
            .call_typed(&register("cluster-a"), CALL)
            .await
            .expect_err("a mismatched Register is refused");
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(err.message.contains("registering as"), "{err}");
        settle().await;
        assert!(liar.is_closed(), "a refused Register closes the link");

        // The empty identity cannot become a cluster: refused by the handshake, or (if it
        // got through) by Register.
        let conn = world.network.dialer().dial("region").await.expect("dial");
        if let Ok(auth) = dial_handshake(conn, &handshake(""), [7; 32]).await {
            let (empty, _empty_in) = spawn_peer(auth, PeerConfig::default());
            let err = empty
                .call_typed(&register(""), CALL)
                .await
                .expect_err("the empty identity is refused");
            assert!(err.message.contains("empty identity"), "{err}");
        }

        // Another call before Register is refused.
        let (eager, _eager_in) = link(&world, "eager").await;
        let err = eager
            .call_typed(
                &ReportBootImages {
                    images: Vec::new(),
                    osystems: Vec::new(),
                },
                CALL,
            )
            .await
            .expect_err("a report before Register is refused");
        assert!(err.message.contains("register first"), "{err}");

        assert!(listed(&world).await.is_empty(), "a phantom cluster");

        tokio::time::sleep(REGISTER_TIMEOUT + Duration::from_secs(1)).await;
        assert!(silent.is_closed(), "a link that never registers is closed");
        assert!(listed(&world).await.is_empty(), "a phantom cluster");

        // A real Register makes it a cluster.
        let (good, _good_in) = link(&world, "cluster-a").await;
        good.call_typed(&register("cluster-a"), CALL)
            .await
            .expect("registered");
        assert_eq!(listed(&world).await, vec!["cluster-a".to_string()]);
        actix::System::current().stop();
    });
}

#[test]
fn a_second_link_is_refused_while_the_first_lives_and_replaces_it_once_closed() {
    paused(|dir| async move {
        let world = start_region(&dir);
        let (genuine, _genuine_in) = link(&world, "cluster-c").await;
        genuine
            .call_typed(&register("cluster-c"), CALL)
            .await
            .expect("registered");

        // Repeated impostors: each refused with a reason; the genuine link stays.
        for attempt in 1..=5u64 {
            let (impostor, _impostor_in) = link(&world, "cluster-c").await;
            let err = impostor
                .call_typed(&register("cluster-c"), CALL)
                .await
                .expect_err("a second link is refused");
            assert_eq!(err.kind, ErrorKind::Unavailable);
            assert!(err.message.contains("already connected"), "{err}");
            settle().await;
            assert!(impostor.is_closed(), "the refused link is closed");
            assert!(!genuine.is_closed(), "the genuine link must stay");
            assert_eq!(
                world.counters.snapshot().registers_refused_duplicate,
                attempt
            );
            let list = world.region.send(ListClusters).await.expect("region");
            assert_eq!(list.len(), 1);
            assert!(list[0].connected);
        }

        // Once the first link is gone (as when heartbeats declare it dead), a new one gets in.
        genuine.close();
        genuine.closed().await;
        settle().await;
        let (successor, _successor_in) = link(&world, "cluster-c").await;
        successor
            .call_typed(&register("cluster-c"), CALL)
            .await
            .expect("the successor registers once the first link is dead");
        let list = world.region.send(ListClusters).await.expect("region");
        assert_eq!(list.len(), 1);
        assert!(list[0].connected);
        actix::System::current().stop();
    });
}

#[test]
fn last_seen_is_the_last_frame_received() {
    paused(|dir| async move {
        let world = start_region(&dir);
        let (peer, _incoming) = link(&world, "cluster-a").await;
        peer.call_typed(&register("cluster-a"), CALL)
            .await
            .expect("registered");
        let first = world.region.send(ListClusters).await.expect("region")[0].last_seen_ms;

        tokio::time::sleep(Duration::from_secs(7)).await;
        let quiet = world.region.send(ListClusters).await.expect("region")[0].last_seen_ms;
        assert_eq!(quiet, first, "nothing received: last seen does not move");

        peer.call_typed(
            &ReportBootImages {
                images: Vec::new(),
                osystems: Vec::new(),
            },
            CALL,
        )
        .await
        .expect("report");
        let later = world.region.send(ListClusters).await.expect("region")[0].last_seen_ms;
        assert!(
            later >= first + 7_000,
            "last seen must move with a frame: {first} then {later}"
        );
        actix::System::current().stop();
    });
}
