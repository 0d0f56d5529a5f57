//! osmesh-actors: the actix actors that drive `osmesh-core` logic.
//!
//! What will live here: the cluster actor (registry, boot-image rescans, answers the region),
//! one connection actor per peer (drives the `osmesh-net` RPC peer), the region actors
//! (per-cluster snapshots, the fan-out) and the store they persist through.
//!
//! What it must not know: that a simulator exists, or which transport carries its frames. No
//! domain rule lives here (actors call `core`); time is tokio time; randomness is handed in;
//! no OS threads, blocking pools or unbiased `select!` on the paths the simulator runs.

pub mod store;
