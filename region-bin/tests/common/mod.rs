//! An in-process mesh for the region's tests: a real region actor and real cluster actors
//! over the in-memory transport, in the test's actix System, on SQLite or PostgreSQL.
#![allow(dead_code)]

use actix::{Actor, Addr};
use osmesh_actors::clock::Clock;
use osmesh_actors::cluster::{ClusterActor, ClusterSettings, FixedImages};
use osmesh_actors::region::service::RegionService;
use osmesh_actors::region::{RegionActor, RegionSettings};
use osmesh_core::os::{parse_declared, RegistryConfig};
use osmesh_core::{BootImage, ClusterId, Purpose};
use osmesh_net::handshake::{HandshakeConfig, Secret};
use osmesh_net::messages::PreseedTemplate;
use osmesh_net::peer::PeerConfig;
use osmesh_net::{MemNetwork, DEFAULT_MAX_FRAME};
use osmesh_store::Store;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Duration;

pub use osmesh_store::testing::TestDb;
pub const REGION_ADDR: &str = "region";
pub const VALID_WINDOWS_KEY: &str = "ABCDE-12345-FGHIJ-67890-KLMNO";

pub fn image(osystem: &str, arch: &str, release: &str, purposes: &[Purpose]) -> BootImage {
    BootImage {
        osystem: osystem.into(),
        arch: arch.into(),
        subarch: "generic".into(),
        release: release.into(),
        label: "stable".into(),
        purposes: purposes.iter().copied().collect(),
    }
}

pub const NETBOOT: &[Purpose] = &[Purpose::Commissioning, Purpose::Install];

/// The declared OS the `gamma` cluster ships.
pub const ACME_OS: &str = r#"
[[os]]
name = "acme-linux"
title = "ACME Linux"
default_release = "a2"
requires_license_key = true
license_key_pattern = "^ACME-[0-9]{4}$"

[[os.release]]
name = "a2"
title = "ACME Linux 2"
"#;

/// One cluster of a test mesh.
#[derive(Clone)]
pub struct ClusterSpec {
    pub id: &'static str,
    pub images: Vec<BootImage>,
    pub declared: &'static str,
    pub templates: Vec<PreseedTemplate>,
}

pub fn template(name: &str, content: &str) -> PreseedTemplate {
    PreseedTemplate {
        name: name.into(),
        osystem: None,
        content: content.into(),
    }
}

/// `alpha`: ubuntu jammy amd64 + windows win2019 amd64; `beta`: ubuntu jammy arm64 and
/// noble amd64; `gamma`: declared acme-linux a2 amd64.
pub fn standard_clusters() -> Vec<ClusterSpec> {
    vec![
        ClusterSpec {
            id: "alpha",
            images: vec![
                image("ubuntu", "amd64", "jammy", NETBOOT),
                image("windows", "amd64", "win2019", &[Purpose::Install]),
            ],
            declared: "",
            templates: vec![
                template("generic", "generic for {{ hostname }}\n"),
                template(
                    "windows",
                    "windows {{ release }} on {{ data.hostname }} key={{ data.license_key }}\n",
                ),
            ],
        },
        ClusterSpec {
            id: "beta",
            images: vec![
                image("ubuntu", "arm64", "jammy", NETBOOT),
                image("ubuntu", "amd64", "noble", NETBOOT),
            ],
            declared: "",
            templates: vec![],
        },
        ClusterSpec {
            id: "gamma",
            images: vec![image("acme-linux", "amd64", "a2", &[Purpose::Xinstall])],
            declared: ACME_OS,
            templates: vec![],
        },
    ]
}

pub fn secret() -> Secret {
    Secret::new(b"test-secret-test-secret".to_vec())
}

/// A region and its clusters, running in the current actix System.
pub struct Mesh {
    pub network: MemNetwork,
    pub service: RegionService,
    /// The store under the region, for regiond's own tables (tokens, audit).
    pub store: Store,
    pub clusters: Vec<(ClusterId, Addr<ClusterActor>)>,
}

impl Mesh {
    /// Starts the region on `url` and every cluster, and waits until each has connected and
    /// reported (and, if it ships templates, they are recorded).
    pub async fn start(url: &str, specs: &[ClusterSpec]) -> Mesh {
        let network = MemNetwork::new(DEFAULT_MAX_FRAME);
        let store = Store::open(url).unwrap_or_else(|e| panic!("open {url}: {e}"));
        let settings = RegionSettings {
            name: REGION_ADDR.into(),
            handshake: HandshakeConfig::new(REGION_ADDR, secret()),
            peer: PeerConfig::default(),
            refresh_interval: Duration::from_secs(3600),
        };
        let listener = network.listen(REGION_ADDR).expect("listen");
        let region = RegionActor::new(
            settings,
            store.inline(),
            Clock::anchored_at(1_700_000_000_000),
            StdRng::seed_from_u64(1),
            Box::new(listener),
        )
        .start();
        let mut mesh = Mesh {
            network,
            service: RegionService::new(region, store.inline()),
            store,
            clusters: Vec::new(),
        };
        for spec in specs {
            mesh.start_cluster(spec).await;
        }
        mesh
    }

    /// Starts (or restarts) one cluster and waits until the region holds its report.
    pub async fn start_cluster(&mut self, spec: &ClusterSpec) {
        let id = ClusterId::new(spec.id);
        let mut registry = RegistryConfig::default();
        if !spec.declared.is_empty() {
            registry.declared = parse_declared(spec.id, spec.declared).expect("declared OS");
        }
        let settings = ClusterSettings {
            id: id.clone(),
            name: spec.id.into(),
            region_addrs: vec![REGION_ADDR.into()],
            handshake: HandshakeConfig::new(spec.id, secret()),
            peer: PeerConfig::default(),
            rescan_interval: Duration::from_secs(3600),
            backoff_base: Duration::from_millis(20),
            backoff_cap: Duration::from_millis(200),
        };
        let addr = ClusterActor::new(
            settings,
            Arc::new(self.network.dialer()),
            Box::new(FixedImages(spec.images.clone())),
            registry,
            spec.templates.clone(),
            StdRng::seed_from_u64(7),
        )
        .start();
        self.clusters.retain(|(c, _)| *c != id);
        self.clusters.push((id.clone(), addr));
        let templates = spec.templates.clone();
        self.wait_until(|status, store| {
            let reported = status
                .iter()
                .any(|c| c.id == id && c.connected && c.snapshot_age_ms.is_some());
            reported && templates.iter().all(|t| shipped(store, &id, t))
        })
        .await;
    }

    /// Stops a cluster as a crash would and waits until the region sees it disconnected.
    pub async fn stop_cluster(&mut self, id: &str) {
        let id = ClusterId::new(id);
        let index = self
            .clusters
            .iter()
            .position(|(c, _)| *c == id)
            .expect("a started cluster");
        let (_, addr) = self.clusters.remove(index);
        addr.do_send(osmesh_actors::Shutdown);
        self.wait_until(|status, _| status.iter().any(|c| c.id == id && !c.connected))
            .await;
    }

    async fn wait_until(
        &self,
        done: impl Fn(&[osmesh_actors::region::ClusterStatus], &Store) -> bool,
    ) {
        for _ in 0..500 {
            let status = self.service.clusters().await.expect("clusters");
            if done(&status, &self.store) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the mesh did not settle in 5 s");
    }
}

/// Whether the region recorded `template` as shipped by `cluster`: the cluster has a row for
/// the name, and the history holds the text (or the row says why it was refused on arrival).
fn shipped(store: &Store, cluster: &ClusterId, template: &PreseedTemplate) -> bool {
    let Some(row) = store.list_cluster_templates().ok().and_then(|rows| {
        rows.into_iter()
            .find(|r| &r.cluster == cluster && r.name == template.name)
    }) else {
        return false;
    };
    row.error.is_some()
        || store
            .history(&template.name)
            .is_ok_and(|versions| versions.iter().any(|v| v.content == template.content))
}

/// Approves every template name a cluster shipped, as an admin would.
pub async fn approve_all_templates(mesh: &Mesh) {
    for row in mesh
        .service
        .cluster_templates()
        .await
        .expect("cluster templates")
    {
        mesh.service
            .decide_cluster_template(&row.cluster, &row.name, true)
            .await
            .expect("approve");
    }
}

/// A region with no cluster, on a fresh SQLite database (kept alive by the `TestDb`).
pub async fn empty_mesh() -> (TestDb, Mesh) {
    let db = TestDb::sqlite();
    let mesh = Mesh::start(&db.url, &[]).await;
    (db, mesh)
}
