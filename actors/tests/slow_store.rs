//! A store call that takes seconds does not stall the region: with the store on its own
//! threads (`StoreThreads`, regiond's way), while one cluster's registration is stuck in the
//! database, other clusters keep their links (heartbeats answered), a cached read answers, and
//! another cluster registers. The region runs in its own actix system on its own thread, as in
//! regiond; the clusters are raw peers on the test's thread, with short heartbeats, so a region
//! thread held by the database would let their heartbeats time out. Real time (the store call
//! blocks an OS thread); nothing is timed: the slow call is held by a gate the test opens only
//! after checking the outcomes, and the waits are bounds for failure, not measurements.

use osmesh_actors::clock::Clock;
use osmesh_actors::region::{CachedOsystems, ListClusters, RegionActor, RegionSettings};
use osmesh_actors::store::{
    AllocationRequest, ClusterExclusions, ClusterRecord, ClusterSnapshot, ClusterTemplate,
    ClusterTemplateRecord, EnrollmentRecord, LicenseKeyRecord, NewLicenseKey, NewNode, NodeRecord,
    PreseedOutcome, PreseedRecord, PreseedVersion, RegionRecord, RegionStore, SettingKey,
    StoreError, StoreHandle, TemplateState,
};
use osmesh_core::ClusterId;
use osmesh_net::handshake::{dial_handshake, HandshakeConfig, Secret};
use osmesh_net::mem::MemNetwork;
use osmesh_net::messages::Register;
use osmesh_net::peer::{spawn_peer, IncomingCalls, Peer, PeerConfig};
use osmesh_net::{Dialer, DEFAULT_MAX_FRAME};
use osmesh_store::testing::TestDb;
use osmesh_store::{Store, StoreThreads};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The cluster whose registration the store holds.
const SLOW: &str = "slow";

/// How long the test keeps the slow call stuck: many heartbeat timeouts.
const HELD_FOR: Duration = Duration::from_secs(3);

/// A bound for failure only (an answer that never comes), far above any honest answer.
const NO_ANSWER: Duration = Duration::from_secs(30);

fn peer_config() -> PeerConfig {
    PeerConfig {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(500),
        ..PeerConfig::default()
    }
}

fn handshake(identity: &str) -> HandshakeConfig {
    HandshakeConfig::new(identity, Secret::new(b"slow-store-test-secret".to_vec()))
}

/// A gate the slow call waits at until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        while !*open {
            open = self.opened.wait(open).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.opened.notify_all();
    }
}

/// The real store, except that `SLOW`'s `upsert_cluster_seen` says it started and then waits
/// at the gate.
struct SlowStore {
    inner: Store,
    gate: Arc<Gate>,
    started: Mutex<mpsc::Sender<()>>,
}

impl RegionStore for SlowStore {
    fn upsert_cluster_seen(&self, id: &ClusterId, name: &str, now: i64) -> Result<(), StoreError> {
        if id.as_str() == SLOW {
            let _ = self.started.lock().map(|tx| tx.send(()));
            self.gate.wait();
        }
        RegionStore::upsert_cluster_seen(&self.inner, id, name, now)
    }
    fn record_cluster_last_seen(
        &self,
        id: &ClusterId,
        name: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        RegionStore::record_cluster_last_seen(&self.inner, id, name, now)
    }
    fn save_snapshot(
        &self,
        id: &ClusterId,
        s: &ClusterSnapshot,
        now: i64,
    ) -> Result<(), StoreError> {
        RegionStore::save_snapshot(&self.inner, id, s, now)
    }
    fn list_clusters(&self) -> Result<Vec<ClusterRecord>, StoreError> {
        RegionStore::list_clusters(&self.inner)
    }
    fn get_cluster(&self, id: &ClusterId) -> Result<Option<ClusterRecord>, StoreError> {
        RegionStore::get_cluster(&self.inner, id)
    }
    fn list_regions(&self) -> Result<Vec<RegionRecord>, StoreError> {
        RegionStore::list_regions(&self.inner)
    }
    fn enrollment(&self, id: &ClusterId) -> Result<Option<EnrollmentRecord>, StoreError> {
        RegionStore::enrollment(&self.inner, id)
    }
    fn revoke_cluster(&self, id: &ClusterId, now_ms: i64) -> Result<bool, StoreError> {
        RegionStore::revoke_cluster(&self.inner, id, now_ms)
    }
    fn remove_cluster(&self, id: &ClusterId) -> Result<bool, StoreError> {
        RegionStore::remove_cluster(&self.inner, id)
    }
    fn cluster_exclusions(&self) -> Result<ClusterExclusions, StoreError> {
        RegionStore::cluster_exclusions(&self.inner)
    }
    fn insert_license_key(
        &self,
        k: &NewLicenseKey<'_>,
        now: i64,
    ) -> Result<LicenseKeyRecord, StoreError> {
        RegionStore::insert_license_key(&self.inner, k, now)
    }
    fn update_license_key(
        &self,
        k: &NewLicenseKey<'_>,
        now: i64,
    ) -> Result<LicenseKeyRecord, StoreError> {
        RegionStore::update_license_key(&self.inner, k, now)
    }
    fn get_license_key(
        &self,
        os: &str,
        series: &str,
    ) -> Result<Option<LicenseKeyRecord>, StoreError> {
        RegionStore::get_license_key(&self.inner, os, series)
    }
    fn delete_license_key(&self, os: &str, series: &str) -> Result<(), StoreError> {
        RegionStore::delete_license_key(&self.inner, os, series)
    }
    fn list_license_keys(&self) -> Result<Vec<LicenseKeyRecord>, StoreError> {
        RegionStore::list_license_keys(&self.inner)
    }
    fn create_node(&self, node: &NewNode, now: i64) -> Result<NodeRecord, StoreError> {
        RegionStore::create_node(&self.inner, node, now)
    }
    fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        RegionStore::list_nodes(&self.inner)
    }
    fn get_node(&self, id: i64) -> Result<Option<NodeRecord>, StoreError> {
        RegionStore::get_node(&self.inner, id)
    }
    fn delete_node(&self, id: i64) -> Result<(), StoreError> {
        RegionStore::delete_node(&self.inner, id)
    }
    fn release_node(&self, id: i64) -> Result<NodeRecord, StoreError> {
        RegionStore::release_node(&self.inner, id)
    }
    fn allocate(
        &self,
        r: &AllocationRequest<'_>,
        now: i64,
    ) -> Result<Option<NodeRecord>, StoreError> {
        RegionStore::allocate(&self.inner, r, now)
    }
    fn get_settings(&self) -> Result<BTreeMap<SettingKey, String>, StoreError> {
        RegionStore::get_settings(&self.inner)
    }
    fn get_setting(&self, key: SettingKey) -> Result<Option<String>, StoreError> {
        RegionStore::get_setting(&self.inner, key)
    }
    fn set_setting(&self, key: SettingKey, value: &str) -> Result<(), StoreError> {
        RegionStore::set_setting(&self.inner, key, value)
    }
    fn record_cluster_templates(
        &self,
        t: &[ClusterTemplate<'_>],
        id: &ClusterId,
        now: i64,
        max: usize,
    ) -> Result<Vec<PreseedOutcome>, StoreError> {
        RegionStore::record_cluster_templates(&self.inner, t, id, now, max)
    }
    fn operator_edit(
        &self,
        name: &str,
        content: &str,
        base: i32,
        now: i64,
    ) -> Result<PreseedRecord, StoreError> {
        RegionStore::operator_edit(&self.inner, name, content, base, now)
    }
    fn resolve_conflict(
        &self,
        name: &str,
        pick: i32,
        now: i64,
    ) -> Result<PreseedRecord, StoreError> {
        RegionStore::resolve_conflict(&self.inner, name, pick, now)
    }
    fn get_preseed(&self, name: &str) -> Result<Option<PreseedRecord>, StoreError> {
        RegionStore::get_preseed(&self.inner, name)
    }
    fn list_preseeds(&self) -> Result<Vec<PreseedRecord>, StoreError> {
        RegionStore::list_preseeds(&self.inner)
    }
    fn history_page(
        &self,
        name: &str,
        after: Option<i32>,
        limit: usize,
    ) -> Result<Vec<PreseedVersion>, StoreError> {
        RegionStore::history_page(&self.inner, name, after, limit)
    }
    fn history(&self, name: &str) -> Result<Vec<PreseedVersion>, StoreError> {
        RegionStore::history(&self.inner, name)
    }
    fn list_cluster_templates(&self) -> Result<Vec<ClusterTemplateRecord>, StoreError> {
        RegionStore::list_cluster_templates(&self.inner)
    }
    fn decide_cluster_template(
        &self,
        cluster: &ClusterId,
        name: &str,
        state: TemplateState,
        now: i64,
    ) -> Result<ClusterTemplateRecord, StoreError> {
        RegionStore::decide_cluster_template(&self.inner, cluster, name, state, now)
    }
}

/// Dials the region as `identity`, handshakes and sends `Register`; the reply comes back
/// through the returned task.
async fn connect(network: &MemNetwork, identity: &str) -> (Peer, IncomingCalls, Registering) {
    let conn = network.dialer().dial("region").await.expect("dial");
    let nonce = [identity.len() as u8; 32];
    let auth = dial_handshake(conn, &handshake(identity), nonce)
        .await
        .expect("handshake");
    let (peer, incoming) = spawn_peer(auth, peer_config());
    let register = Register {
        cluster: ClusterId::new(identity),
        name: identity.into(),
        capabilities: Vec::new(),
    };
    let caller = peer.clone();
    let registered = tokio::spawn(async move {
        caller
            .call_typed(&register, NO_ANSWER)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    (peer, incoming, registered)
}

/// A `Register` call under way: `Ok` once the region answered `Registered`.
type Registering = tokio::task::JoinHandle<Result<(), String>>;

/// The region in its own actix system on its own thread, as regiond runs it.
fn start_region(network: &MemNetwork, store: StoreHandle) -> actix::Addr<RegionActor> {
    let listener = network.listen("region").expect("listen");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let system = actix::System::new();
        let region = system.block_on(async move {
            actix::Actor::start(RegionActor::new(
                RegionSettings {
                    name: "region".into(),
                    handshake: handshake("region"),
                    peer: peer_config(),
                    refresh_interval: Duration::from_secs(3600),
                },
                store,
                Clock::anchored_at(0),
                StdRng::seed_from_u64(1),
                Box::new(listener),
            ))
        });
        let _ = tx.send(region);
        system.run().expect("the region's system");
    });
    rx.recv().expect("the region started")
}

#[tokio::test]
async fn a_slow_store_call_leaves_other_clusters_links_and_reads_alone() {
    let db = TestDb::sqlite();
    let threads = StoreThreads::start(4).expect("store threads");
    // A cluster on a different store thread than `SLOW`, so only the region's own thread could
    // make it wait for the slow call.
    let other = (0..64)
        .map(|n| format!("other-{n}"))
        .find(|name| threads.thread_of(name) != threads.thread_of(SLOW))
        .expect("a lane on another thread");
    let gate = Arc::new(Gate::default());
    let (started_tx, started) = mpsc::channel();
    let store = SlowStore {
        inner: db.open(),
        gate: gate.clone(),
        started: Mutex::new(started_tx),
    };
    let handle = StoreHandle::on_lanes(Arc::new(store), Arc::new(threads));
    let network = MemNetwork::new(DEFAULT_MAX_FRAME);
    let region = start_region(&network, handle);

    let (fast, _fast_calls, fast_registered) = connect(&network, "fast").await;
    fast_registered
        .await
        .expect("task")
        .expect("fast registers");

    let (slow, _slow_calls, slow_registered) = connect(&network, SLOW).await;
    tokio::task::spawn_blocking(move || started.recv_timeout(NO_ANSWER))
        .await
        .expect("task")
        .expect("the slow store call started");

    // The slow call is stuck. Heartbeats go on: after many heartbeat timeouts, `fast`'s link
    // is still up on both sides.
    tokio::time::sleep(HELD_FOR).await;
    assert!(
        !fast.is_closed(),
        "fast lost its link while the store was slow: {:?}",
        fast.close_reason()
    );
    // Reads of what the region holds answer.
    let cached = tokio::time::timeout(NO_ANSWER, region.send(CachedOsystems))
        .await
        .expect("a cached read answers while the store is slow")
        .expect("the region is running");
    let fast_part = cached
        .clusters
        .iter()
        .find(|p| p.cluster.as_str() == "fast")
        .expect("fast has a part");
    assert!(fast_part.connected);
    // Another cluster registers (its write runs on another store thread).
    let (_other, _other_calls, other_registered) = connect(&network, &other).await;
    tokio::time::timeout(NO_ANSWER, other_registered)
        .await
        .expect("another cluster registers while the store is slow")
        .expect("task")
        .expect("registered");
    assert!(
        !slow_registered.is_finished(),
        "the slow registration was still held"
    );

    gate.open();
    slow_registered
        .await
        .expect("task")
        .expect("slow registers once its write is done");
    let clusters = region
        .send(ListClusters)
        .await
        .expect("the region is running");
    let connected: Vec<_> = clusters
        .iter()
        .filter(|c| c.connected)
        .map(|c| c.id.as_str().to_owned())
        .collect();
    assert_eq!(connected.len(), 3, "{connected:?}");
    assert!(!fast.is_closed() && !slow.is_closed());
}
