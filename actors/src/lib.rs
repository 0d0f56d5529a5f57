//! osmesh-actors: the actix actors that drive `osmesh-core` logic.
//!
//! What lives here: the cluster actor (registry, boot-image rescans, answers the region), one
//! connection actor per peer (drives the `osmesh-net` RPC peer), the region actor (per-cluster
//! snapshots, the fan-out) with its service functions, and the store seam it persists through
//! (`store::RegionStore`, implemented by `osmesh-store`).
//!
//! What it must not know: that a simulator exists, or which transport carries its frames. No
//! domain rule lives here (actors call `core`); time is tokio time; randomness is handed in;
//! no OS threads, blocking pools or unbiased `select!` on the paths the simulator runs (the
//! store's threads and the render pool are handed in by regiond). No database driver.

pub mod clock;
pub mod cluster;
pub mod connection;
mod masked;
pub mod metrics;
pub mod region;
pub mod store;

/// Stop an actor as a crash would: its links close at once and nothing is flushed beyond what
/// the store already committed. The simulator's `crash` fault and a daemon's shutdown use it.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Shutdown;
