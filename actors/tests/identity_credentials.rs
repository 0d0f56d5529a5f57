//! The region's credential rules off TCP (issue 13): the transport hands the authenticated
//! identity up (`FrameConn::security`), so the same rules run over in-memory links on paused
//! time as over TLS: only the certificate on record registers, a forged claim is refused, a
//! revoked cluster is cut off at once and refused on redial, and the shared secret never
//! stands in for an enrolled cluster.

use actix::{Actor, Addr};
use futures::future::BoxFuture;
use osmesh_actors::clock::Clock;
use osmesh_actors::region::identity::CutCluster;
use osmesh_actors::region::{ListClusters, RegionActor, RegionSettings};
use osmesh_core::ClusterId;
use osmesh_net::handshake::{dial_handshake, HandshakeConfig, HandshakeError, Secret};
use osmesh_net::messages::Register;
use osmesh_net::peer::{spawn_peer, IncomingCalls, Peer, PeerConfig};
use osmesh_net::{
    mem_pair, Credential, FrameConn, Listener, NetError, RpcError, Secured, Security,
    DEFAULT_MAX_FRAME,
};
use osmesh_store::{Store, StoreOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Duration;
use tokio::sync::mpsc;

const CALL: Duration = Duration::from_secs(5);
const SECRET: &[u8] = b"identity-credentials-test-secret";

/// A listener fed by the test, which decides what each link's transport proved.
struct FedListener(mpsc::UnboundedReceiver<FrameConn>);

impl Listener for FedListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<FrameConn, NetError>> {
        Box::pin(async move { self.0.recv().await.ok_or(NetError::Closed) })
    }

    fn local_addr(&self) -> String {
        "fed".into()
    }
}

struct World {
    region: Addr<RegionActor>,
    store: Store,
    links: mpsc::UnboundedSender<FrameConn>,
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

/// A region accepting certificates, and the shared secret too when `compatibility`.
fn start_region(dir: &tempfile::TempDir, compatibility: bool) -> World {
    let db = format!("sqlite://{}", dir.path().join("region.db").display());
    let store = Store::open_with(
        &db,
        &StoreOptions {
            pool_size: 1,
            ..StoreOptions::default()
        },
    )
    .expect("store");
    let (links, fed) = mpsc::unbounded_channel();
    let handshake = HandshakeConfig {
        secret: compatibility.then(|| Secret::new(SECRET)),
        ..HandshakeConfig::certificates("region")
    };
    let region = RegionActor::new(
        RegionSettings {
            name: "region".into(),
            handshake,
            peer: PeerConfig::default(),
            refresh_interval: Duration::from_secs(3600),
        },
        store.inline(),
        Clock::anchored_at(0),
        StdRng::seed_from_u64(1),
        Box::new(FedListener(fed)),
    )
    .start();
    World {
        region,
        store,
        links,
    }
}

/// A link whose transport proved `certificate` (identity, fingerprint), claiming `claimed`.
async fn link(
    world: &World,
    certificate: Option<(&str, &str)>,
    claimed: HandshakeConfig,
) -> Result<(Peer, IncomingCalls), HandshakeError> {
    let (ours, mut theirs) = mem_pair(DEFAULT_MAX_FRAME);
    if let Some((identity, fingerprint)) = certificate {
        theirs.security = Security::secured(Secured {
            credential: Some(Credential {
                identity: identity.into(),
                fingerprint: fingerprint.into(),
            }),
            channel_binding: Vec::new(),
        });
    }
    world.links.send(theirs).expect("region listening");
    let auth = dial_handshake(ours, &claimed, [3; 32]).await?;
    Ok(spawn_peer(auth, PeerConfig::default()))
}

async fn register(peer: &Peer, id: &str) -> Result<(), RpcError> {
    let req = Register {
        cluster: ClusterId::new(id),
        name: id.into(),
        capabilities: Vec::new(),
    };
    peer.call_typed(&req, CALL).await.map(|_| ())
}

async fn listed(world: &World) -> Vec<(String, bool)> {
    let list = world.region.send(ListClusters).await.expect("region");
    list.into_iter()
        .map(|c| (c.id.to_string(), c.connected))
        .collect()
}

/// Enrolls `id` in the store as the region's enroller would: token redeemed, certificate
/// `fingerprint` on record.
fn enroll(store: &Store, id: &str, fingerprint: &str) {
    let id = ClusterId::new(id);
    store.create_enrollment(&id, "hash", 1_000_000, 0).unwrap();
    assert!(store.redeem_enrollment(&id, "hash", 1).unwrap());
    store.set_enrolled_certificate(&id, fingerprint).unwrap();
}

#[test]
fn only_the_certificate_on_record_registers_and_a_revoked_one_is_cut_off() {
    paused(|dir| async move {
        let world = start_region(&dir, false);
        let certs = || HandshakeConfig::certificates("cluster-a");

        // A certificate the region never issued for cluster-a: refused at Register.
        let (peer, _in) = link(&world, Some(("cluster-a", "aa")), certs())
            .await
            .expect("handshake");
        let err = register(&peer, "cluster-a").await.unwrap_err();
        assert!(err.message.contains("not the one on record"), "{err}");

        // A forged claim: cluster-a's certificate, claiming cluster-b.
        let forged = link(
            &world,
            Some(("cluster-a", "aa")),
            HandshakeConfig::certificates("cluster-b"),
        )
        .await;
        let Err(HandshakeError::Refused(reason)) = forged else {
            panic!("a forged claim must be refused");
        };
        assert!(reason.contains("certificate names"), "{reason}");

        // No certificate and no secret: refused in the handshake.
        let Err(HandshakeError::Refused(reason)) = link(&world, None, certs()).await else {
            panic!("a link without a credential must be refused");
        };
        assert!(reason.contains("no client certificate"), "{reason}");

        // Enrolled: the certificate on record registers.
        enroll(&world.store, "cluster-a", "aa");
        let (genuine, _genuine_in) = link(&world, Some(("cluster-a", "aa")), certs())
            .await
            .expect("handshake");
        register(&genuine, "cluster-a").await.expect("registered");
        assert_eq!(listed(&world).await, [("cluster-a".into(), true)]);

        // Revoked: the link is closed at once; a redial with the same certificate is refused.
        let now = 10;
        assert!(world
            .store
            .revoke_cluster(&ClusterId::new("cluster-a"), now)
            .unwrap());
        let cut = world
            .region
            .send(CutCluster {
                cluster: ClusterId::new("cluster-a"),
            })
            .await
            .expect("region");
        assert!(cut);
        genuine.closed().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(listed(&world).await, [("cluster-a".into(), false)]);
        let (again, _again_in) = link(&world, Some(("cluster-a", "aa")), certs())
            .await
            .expect("handshake");
        let err = register(&again, "cluster-a").await.unwrap_err();
        assert!(err.message.contains("is revoked"), "{err}");
    });
}

#[test]
fn the_shared_secret_never_stands_in_for_an_enrolled_cluster() {
    paused(|dir| async move {
        let world = start_region(&dir, true);
        let secret = |id: &str| HandshakeConfig::new(id, Secret::new(SECRET));
        enroll(&world.store, "cluster-a", "aa");

        let (holder, _in) = link(&world, None, secret("cluster-a"))
            .await
            .expect("the secret passes the handshake");
        let err = register(&holder, "cluster-a").await.unwrap_err();
        assert!(
            err.message.contains("must present its certificate"),
            "{err}"
        );

        // An identity that is not enrolled still joins in compatibility mode.
        let (legacy, _legacy_in) = link(&world, None, secret("cluster-b"))
            .await
            .expect("handshake");
        register(&legacy, "cluster-b").await.expect("registered");
        assert_eq!(listed(&world).await, [("cluster-b".into(), true)]);
    });
}
