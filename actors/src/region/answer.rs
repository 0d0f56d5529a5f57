//! What the region answers about its clusters: the OS view with every cluster's part in it,
//! and the status listing. Built by the state machine (`super::state`); the types live in
//! `osmesh-api`, so the HTTP API, the CLI and the simulator read the same ones.

pub use osmesh_api::osystems::{ClusterPart, ClusterStatus, OsystemsAnswer, ReadPath};
