//! What the actors' integration tests share: a paused-time actix system, and a region actor on
//! an in-memory network over a fresh SQLite file.

#![allow(dead_code)]

use actix::{Actor, Addr};
use osmesh_actors::clock::Clock;
use osmesh_actors::region::{RegionActor, RegionSettings};
use osmesh_net::handshake::HandshakeConfig;
use osmesh_net::mem::MemNetwork;
use osmesh_net::peer::PeerConfig;
use osmesh_store::{Store, StoreOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::future::Future;
use std::time::Duration;

/// Runs `test` inside an actix system on a paused current-thread runtime, with a temporary
/// directory for the database.
pub fn paused<F: Future<Output = ()>>(test: impl FnOnce(tempfile::TempDir) -> F) {
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

/// A region actor listening as `"region"` on `network`, its store in `dir`, refreshing hourly
/// (so only what a test does moves it).
pub fn start_region(
    network: &MemNetwork,
    dir: &tempfile::TempDir,
    handshake: HandshakeConfig,
) -> Addr<RegionActor> {
    let listener = network.listen("region").expect("listen");
    let db = format!("sqlite://{}", dir.path().join("region.db").display());
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
            name: "region".into(),
            handshake,
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
