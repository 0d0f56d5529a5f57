//! What the region answers about its clusters: the OS view with every cluster's part in it,
//! and the status listing. Built by the state machine (`super::state`); the HTTP API, the CLI
//! and the simulator read them.

use osmesh_core::mesh::{MeshView, NoAnswerReason};
use osmesh_core::ClusterId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which read path produced an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReadPath {
    Cached,
    Live,
}

/// One cluster's part in an answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterPart {
    pub cluster: ClusterId,
    pub name: String,
    pub connected: bool,
    /// Since when the region has had no link to it (unix ms); `None` while connected. A
    /// disconnected cluster's part of a view is only ever "last known".
    pub disconnected_since_ms: Option<i64>,
    /// How old this cluster's part of the answer is (0 for a live answer it gave).
    pub age_ms: Option<i64>,
    /// Why it is not in the answer, when it is not.
    pub no_answer: Option<NoAnswerReason>,
}

/// The OS view, with how it was obtained and every known cluster's part in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OsystemsAnswer {
    pub source: ReadPath,
    pub view: Arc<MeshView>,
    pub clusters: Vec<ClusterPart>,
    /// For a live answer: the deadline it was given and how long it took, in milliseconds.
    pub deadline_ms: Option<u64>,
    pub elapsed_ms: Option<u64>,
}

/// A cluster as the status listing shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterStatus {
    pub id: ClusterId,
    pub name: String,
    pub connected: bool,
    pub disconnected_since_ms: Option<i64>,
    pub last_seen_ms: i64,
    pub image_count: usize,
    pub snapshot_age_ms: Option<i64>,
}
