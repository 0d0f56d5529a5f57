//! Several regions, as the actors see them (issue 15), on the in-memory network with paused
//! time: a cluster told of one region links to every region that region lists, each link
//! keyed by the region's id; a region that leaves the list is dropped once its link closes;
//! a list over the bounds is ignored; a region adopts clusters only others have seen.

mod common;

use actix::{Actor, Addr};
use osmesh_actors::clock::Clock;
use osmesh_actors::cluster::{ClusterActor, ClusterSettings, FixedImages, RegionLinks};
use osmesh_actors::region::regions::{AdoptClusters, SetRegionMesh};
use osmesh_actors::region::{ListClusters, RegionActor, RegionSettings};
use osmesh_actors::store::ClusterRecord;
use osmesh_core::os::RegistryConfig;
use osmesh_core::ClusterId;
use osmesh_net::handshake::{HandshakeConfig, Secret};
use osmesh_net::limits::MAX_REGIONS;
use osmesh_net::mem::MemNetwork;
use osmesh_net::messages::RegionEndpoint;
use osmesh_net::peer::PeerConfig;
use osmesh_net::DEFAULT_MAX_FRAME;
use osmesh_store::{Store, StoreOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Duration;

fn handshake(identity: &str) -> HandshakeConfig {
    HandshakeConfig::new(identity, Secret::new(b"region-mesh-test-secret".to_vec()))
}

/// A region actor listening as `name` on `network`, over its own SQLite file.
fn start_region(network: &MemNetwork, dir: &tempfile::TempDir, name: &str) -> Addr<RegionActor> {
    let listener = network.listen(name).expect("listen");
    let db = format!(
        "sqlite://{}",
        dir.path().join(format!("{name}.db")).display()
    );
    let store = Store::open_with(
        &db,
        &StoreOptions {
            pool_size: 1,
            ..StoreOptions::default()
        },
    )
    .expect("store");
    RegionActor::new(
        RegionSettings {
            name: name.into(),
            handshake: handshake(name),
            peer: PeerConfig::default(),
            refresh_interval: Duration::from_secs(3600),
        },
        store.inline(),
        Clock::anchored_at(0),
        StdRng::seed_from_u64(1),
        Box::new(listener),
    )
    .start()
}

fn start_cluster(network: &MemNetwork, seed: &str) -> Addr<ClusterActor> {
    ClusterActor::new(
        ClusterSettings {
            id: ClusterId::new("c1"),
            name: "c1".into(),
            region_addrs: vec![seed.into()],
            handshake: handshake("c1"),
            peer: PeerConfig::default(),
            rescan_interval: Duration::from_secs(3600),
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(1),
        },
        Arc::new(network.dialer()),
        Box::new(FixedImages(Vec::new())),
        RegistryConfig::default(),
        Vec::new(),
        StdRng::seed_from_u64(2),
    )
    .start()
}

fn endpoint(id: &str, addr: &str) -> RegionEndpoint {
    RegionEndpoint {
        id: id.into(),
        name: addr.into(),
        rpc: vec![addr.into()],
    }
}

/// `(region id, connected)` of every link the cluster keeps.
async fn links(cluster: &Addr<ClusterActor>) -> Vec<(String, bool)> {
    cluster
        .send(RegionLinks)
        .await
        .expect("cluster")
        .into_iter()
        .map(|l| (l.region_id, l.connected))
        .collect()
}

fn both_listed() -> Vec<RegionEndpoint> {
    vec![endpoint("id-a", "ra"), endpoint("id-b", "rb")]
}

#[test]
fn a_cluster_links_to_every_listed_region_and_drops_one_that_left() {
    common::paused(|dir| async move {
        let network = MemNetwork::new(DEFAULT_MAX_FRAME);
        let ra = start_region(&network, &dir, "ra");
        let rb = start_region(&network, &dir, "rb");
        for (region, id) in [(&ra, "id-a"), (&rb, "id-b")] {
            region
                .send(SetRegionMesh {
                    self_id: id.into(),
                    regions: both_listed(),
                })
                .await
                .expect("region");
        }
        let cluster = start_cluster(&network, "ra");
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Told of "ra" only, it keys that link by ra's id and links to rb from the list.
        assert_eq!(
            links(&cluster).await,
            [("id-a".to_owned(), true), ("id-b".to_owned(), true)]
        );
        for region in [&ra, &rb] {
            let listed = region.send(ListClusters).await.expect("region");
            assert!(listed.iter().all(|c| c.connected), "{listed:?}");
        }

        // rb leaves the list: its live link stays until it closes, then it is not redialed.
        ra.send(SetRegionMesh {
            self_id: "id-a".into(),
            regions: vec![endpoint("id-a", "ra")],
        })
        .await
        .expect("region");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(links(&cluster).await.len(), 2);
        rb.send(osmesh_actors::Shutdown).await.expect("region");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(links(&cluster).await, [("id-a".to_owned(), true)]);
    });
}

#[test]
fn a_region_list_over_the_bounds_is_ignored() {
    common::paused(|dir| async move {
        let network = MemNetwork::new(DEFAULT_MAX_FRAME);
        let ra = start_region(&network, &dir, "ra");
        let mut flood: Vec<_> = (0..=MAX_REGIONS)
            .map(|n| endpoint(&format!("id-{n:03}"), &format!("r{n}")))
            .collect();
        flood.push(endpoint("id-a", "ra"));
        ra.send(SetRegionMesh {
            self_id: "id-a".into(),
            regions: flood,
        })
        .await
        .expect("region");
        let cluster = start_cluster(&network, "ra");
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Keyed by the id the region gave itself, but none of the flood is dialed.
        assert_eq!(links(&cluster).await, [("id-a".to_owned(), true)]);
    });
}

#[test]
fn a_region_names_clusters_only_other_regions_have_seen() {
    common::paused(|dir| async move {
        let network = MemNetwork::new(DEFAULT_MAX_FRAME);
        let ra = start_region(&network, &dir, "ra");
        let record = ClusterRecord {
            id: ClusterId::new("elsewhere"),
            name: "linked to another region".into(),
            first_seen_ms: 0,
            last_seen_ms: 1_000,
            snapshot: None,
        };
        ra.send(AdoptClusters {
            clusters: vec![record.clone(), record],
        })
        .await
        .expect("region");
        let listed = ra.send(ListClusters).await.expect("region");
        let found: Vec<_> = listed
            .iter()
            .map(|c| (c.id.as_str(), c.connected, c.disconnected_since_ms))
            .collect();
        assert_eq!(found, [("elsewhere", false, Some(1_000))]);
    });
}
