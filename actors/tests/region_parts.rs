//! The region's answers about a cluster that registered but never reported: the cached answer
//! names it as not answering, with its reason, in the view and in its part alike. A raw peer
//! plays the cluster (it handshakes and registers, then stays silent); paused time.

mod common;

use osmesh_actors::region::CachedOsystems;
use osmesh_core::{ClusterId, NoAnswerReason};
use osmesh_net::handshake::{dial_handshake, HandshakeConfig, Secret};
use osmesh_net::mem::MemNetwork;
use osmesh_net::messages::Register;
use osmesh_net::peer::{spawn_peer, PeerConfig};
use osmesh_net::{Dialer, DEFAULT_MAX_FRAME};
use std::time::Duration;

fn handshake(identity: &str) -> HandshakeConfig {
    HandshakeConfig::new(identity, Secret::new(b"parts-test-secret".to_vec()))
}

#[test]
fn a_registered_cluster_without_a_report_is_named_as_not_answering() {
    common::paused(|dir| async move {
        let network = MemNetwork::new(DEFAULT_MAX_FRAME);
        let region = common::start_region(&network, &dir, handshake("region"));
        let conn = network.dialer().dial("region").await.expect("dial");
        let auth = dial_handshake(conn, &handshake("c1"), [7; 32])
            .await
            .expect("handshake");
        let (peer, _incoming) = spawn_peer(auth, PeerConfig::default());
        let register = Register {
            cluster: ClusterId::new("c1"),
            name: "c1".into(),
            capabilities: Vec::new(),
        };
        peer.call_typed(&register, Duration::from_secs(5))
            .await
            .expect("registered");

        let answer = region
            .send(CachedOsystems)
            .await
            .expect("the region answers");
        let c1 = ClusterId::new("c1");
        let part = answer
            .clusters
            .iter()
            .find(|p| p.cluster == c1)
            .expect("c1 has a part");
        let reason = answer.view.not_answered.get(&c1).cloned();
        assert!(
            matches!(reason, Some(NoAnswerReason::Error(_))),
            "the view: {reason:?}"
        );
        assert_eq!(part.no_answer, reason, "the part agrees with the view");
        assert!(part.connected);
        assert_eq!(part.age_ms, None, "no report, no age");
        assert!(!answer.view.answered.contains(&c1));
        peer.close();
        actix::System::current().stop();
    });
}
