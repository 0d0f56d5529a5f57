//! The same region and cluster actors over two transports: real loopback TCP on real time, and
//! the in-memory transport inside one actix `System` on a current-thread tokio runtime with
//! paused time — the simulator's host. Both must give the same mesh view.

use actix::Actor;
use osmesh_actors::clock::Clock;
use osmesh_actors::cluster::{ClusterActor, ClusterSettings, FixedImages};
use osmesh_actors::region::service::RegionService;
use osmesh_actors::region::{RegionActor, RegionSettings};
use osmesh_cluster::sample::{sample_declares_os, write_sample_tree, SAMPLE_DECLARED_OS};
use osmesh_core::mesh::MeshView;
use osmesh_core::os::{parse_declared, RegistryConfig};
use osmesh_core::{scan_boot_resources, BootImage, ClusterId};
use osmesh_net::handshake::{HandshakeConfig, Secret};
use osmesh_net::mem::MemNetwork;
use osmesh_net::peer::PeerConfig;
use osmesh_net::tcp::{TcpDialer, TcpListener};
use osmesh_net::{Dialer, Listener, DEFAULT_MAX_FRAME};
use osmesh_store::{Store, StoreOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Duration;

const CLUSTERS: [&str; 3] = ["cluster-a", "cluster-b", "cluster-c"];

fn secret() -> Secret {
    Secret::new(b"transports-test-secret".to_vec())
}

fn sample_images(variant: usize) -> Vec<BootImage> {
    let dir = tempfile::tempdir().expect("temp dir");
    write_sample_tree(dir.path(), variant).expect("sample tree");
    scan_boot_resources(dir.path()).images
}

fn registry_config(variant: usize) -> RegistryConfig {
    let mut config = RegistryConfig::default();
    if sample_declares_os(variant) {
        config.declared = parse_declared("sample.toml", SAMPLE_DECLARED_OS).expect("sample OS");
    }
    config
}

fn start_world(
    listener: Box<dyn Listener>,
    dialer: Arc<dyn Dialer>,
    db: &std::path::Path,
) -> RegionService {
    let region_addr = listener.local_addr();
    let store = Store::open_with(
        &format!("sqlite://{}", db.display()),
        &StoreOptions {
            pool_size: 1,
            ..StoreOptions::default()
        },
    )
    .expect("store");
    let region = RegionActor::new(
        RegionSettings {
            name: "region".into(),
            handshake: HandshakeConfig::new("region", secret()),
            peer: PeerConfig::default(),
            refresh_interval: Duration::from_secs(30),
        },
        store.inline(),
        Clock::anchored_at(0),
        StdRng::seed_from_u64(1),
        listener,
    )
    .start();
    for (variant, name) in CLUSTERS.iter().enumerate() {
        let settings = ClusterSettings {
            id: ClusterId::new(*name),
            name: name.to_string(),
            region_addrs: vec![region_addr.clone()],
            handshake: HandshakeConfig::new(*name, secret()),
            peer: PeerConfig::default(),
            rescan_interval: Duration::from_secs(60),
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(2),
        };
        ClusterActor::new(
            settings,
            dialer.clone(),
            Box::new(FixedImages(sample_images(variant))),
            registry_config(variant),
            Vec::new(),
            StdRng::seed_from_u64(variant as u64 + 10),
        )
        .start();
    }
    RegionService::new(region, store.inline())
}

/// Waits (in the runtime's time) until every cluster is connected and has reported: up to
/// two minutes, a margin a loaded machine does not exhaust on real time (virtual otherwise).
async fn until_all_reported(service: &RegionService) {
    for _ in 0..2_400 {
        let clusters = service.clusters().await.expect("clusters");
        let ready = clusters
            .iter()
            .filter(|c| c.connected && c.snapshot_age_ms.is_some())
            .count();
        if ready == CLUSTERS.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the clusters did not all register within 120 s");
}

async fn both_views(service: &RegionService) -> (MeshView, MeshView) {
    until_all_reported(service).await;
    let cached = service.osystems_cached().await.expect("cached").view;
    // The live answer comes as soon as every cluster answers; the long deadline only keeps a
    // loaded machine's real-time TCP run from missing it (the paused run never waits for it).
    let live = service
        .osystems_live(Duration::from_secs(30))
        .await
        .expect("live")
        .view;
    (MeshView::clone(&cached), MeshView::clone(&live))
}

fn views_over_tcp() -> (MeshView, MeshView) {
    let dir = tempfile::tempdir().expect("temp dir");
    actix_rt::System::new().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0", DEFAULT_MAX_FRAME)
            .await
            .expect("bind");
        let service = start_world(
            Box::new(listener),
            Arc::new(TcpDialer::new(DEFAULT_MAX_FRAME)),
            &dir.path().join("region.db"),
        );
        both_views(&service).await
    })
}

fn views_in_memory_on_paused_time() -> (MeshView, MeshView, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
    });
    system.block_on(async {
        let network = MemNetwork::new(DEFAULT_MAX_FRAME);
        let listener = network.listen("region").expect("listen");
        let started = tokio::time::Instant::now();
        let service = start_world(
            Box::new(listener),
            Arc::new(network.dialer()),
            &dir.path().join("region.db"),
        );
        let (cached, live) = both_views(&service).await;
        // An hour of virtual time: heartbeats and refreshes run, nothing may fall apart.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let later = service.osystems_cached().await.expect("cached").view;
        assert_eq!(*later, cached, "an idle hour changed the cached view");
        (cached, live, started.elapsed())
    })
}

#[test]
fn in_memory_on_paused_time_gives_the_same_mesh_view_as_tcp() {
    let (mem_cached, mem_live, virtual_elapsed) = views_in_memory_on_paused_time();
    let (tcp_cached, tcp_live) = views_over_tcp();

    assert_eq!(mem_cached, tcp_cached);
    assert_eq!(mem_live, tcp_live);
    assert_eq!(
        mem_cached, mem_live,
        "cached and live disagree with no change"
    );
    // The view is the merged, divergent one, not an empty agreement.
    let answered: Vec<_> = mem_cached.answered.iter().map(|c| c.to_string()).collect();
    assert_eq!(answered, CLUSTERS);
    assert!(mem_cached.not_answered.is_empty());
    let jammy: Vec<_> = mem_cached
        .release("ubuntu", "jammy")
        .expect("jammy")
        .available["amd64"]
        .keys()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(jammy, ["cluster-a", "cluster-b"]);
    // The idle hour passed on the runtime's (virtual) clock.
    assert!(virtual_elapsed >= Duration::from_secs(3600));
}
