//! The region's handshake slots: with every slot held by a silent peer, a further connection
//! is closed at once; when the silent peers time out their slots are free again and a real
//! cluster gets in. In-memory transport, paused time: no real clock is raced.

mod common;

use actix::Actor;
use futures::StreamExt;
use osmesh_actors::cluster::{ClusterActor, ClusterSettings, FixedImages, IsConnected};
use osmesh_actors::region::MAX_PENDING_HANDSHAKES;
use osmesh_core::os::RegistryConfig;
use osmesh_core::ClusterId;
use osmesh_net::handshake::{HandshakeConfig, Secret};
use osmesh_net::mem::MemNetwork;
use osmesh_net::peer::PeerConfig;
use osmesh_net::{Dialer, DEFAULT_MAX_FRAME};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Duration;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn handshake(identity: &str) -> HandshakeConfig {
    let mut config = HandshakeConfig::new(identity, Secret::new(b"slots-test-secret".to_vec()));
    config.timeout = HANDSHAKE_TIMEOUT;
    config
}

#[test]
fn silent_peers_fill_the_handshake_slots_and_free_them_on_timeout() {
    common::paused(|dir| async move {
        let network = MemNetwork::new(DEFAULT_MAX_FRAME);
        let _region = common::start_region(&network, &dir, handshake("region"));
        let dialer = network.dialer();
        let settle = || tokio::time::sleep(Duration::from_millis(10));

        // Every slot taken by a peer that never speaks.
        let mut silent = Vec::new();
        for _ in 0..MAX_PENDING_HANDSHAKES {
            silent.push(dialer.dial("region").await.expect("dial"));
        }
        settle().await;
        // One more is closed at once, not queued.
        let mut extra = dialer.dial("region").await.expect("dial");
        let closed = tokio::time::timeout(Duration::from_secs(1), extra.stream.next()).await;
        assert!(
            matches!(closed, Ok(None)),
            "a connection beyond the slots must be closed at once"
        );
        // The silent ones are still held (not closed) before their timeout.
        let early = tokio::time::timeout(Duration::from_millis(100), silent[0].stream.next()).await;
        assert!(
            early.is_err(),
            "a silent peer was dropped before its timeout"
        );

        // Their handshakes time out: every slot is released...
        tokio::time::sleep(HANDSHAKE_TIMEOUT + Duration::from_secs(1)).await;
        for conn in &mut silent {
            let next = tokio::time::timeout(Duration::from_secs(1), conn.stream.next()).await;
            assert!(
                matches!(next, Ok(None) | Ok(Some(Err(_)))),
                "a timed-out peer is closed"
            );
        }
        drop(silent);

        // ...so a real cluster gets in.
        let cluster = ClusterActor::new(
            ClusterSettings {
                id: ClusterId::new("c1"),
                name: "c1".into(),
                region_addrs: vec!["region".into()],
                handshake: handshake("c1"),
                peer: PeerConfig::default(),
                rescan_interval: Duration::from_secs(3600),
                backoff_base: Duration::from_millis(100),
                backoff_cap: Duration::from_secs(1),
            },
            Arc::new(dialer.clone()),
            Box::new(FixedImages(Vec::new())),
            RegistryConfig::default(),
            Vec::new(),
            StdRng::seed_from_u64(2),
        )
        .start();
        let mut connected = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if cluster.send(IsConnected).await.unwrap_or(false) {
                connected = true;
                break;
            }
        }
        assert!(
            connected,
            "the slots were not freed: a real cluster cannot connect"
        );
        actix::System::current().stop();
    });
}
