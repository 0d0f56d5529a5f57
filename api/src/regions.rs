//! `GET /api/v1/regions`: the regions sharing one database, and which clusters link to each.

use osmesh_core::ClusterId;
use serde::{Deserialize, Serialize};

/// Whether a region's heartbeat is current.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RegionState {
    Up,
    Down,
}

/// One region as `GET /api/v1/regions` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegionView {
    pub id: String,
    pub name: String,
    pub rpc_endpoints: Vec<String>,
    pub http_url: String,
    pub started_at_ms: i64,
    pub heartbeat_ms: i64,
    /// How long ago that heartbeat was, by the answering region's clock.
    pub heartbeat_age_ms: i64,
    pub state: RegionState,
    /// True for the region that produced this answer.
    pub answering: bool,
    /// Clusters linked to it: now for the answering region, at its last heartbeat for the
    /// others; none for a region that is down.
    pub connected_clusters: usize,
    pub clusters: Vec<ClusterId>,
}

/// Which live regions one cluster is linked to, and which it is not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterRegions {
    pub cluster: ClusterId,
    pub name: String,
    /// Ids of the live regions it is linked to.
    pub linked: Vec<String>,
    /// Ids of the live regions it is not linked to (empty when it reaches every region).
    pub missing: Vec<String>,
}

/// `GET /api/v1/regions`: every recorded region, and every known cluster's links.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegionsAnswer {
    /// Sorted by name, then id.
    pub regions: Vec<RegionView>,
    /// Sorted by cluster id.
    pub clusters: Vec<ClusterRegions>,
    /// A region is down after this long without a heartbeat, and forgotten after the second.
    pub down_after_ms: i64,
    pub forget_after_ms: i64,
}
