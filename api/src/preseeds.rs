//! Preseed templates: versions, conflicts, an operator's edit, a conflict's resolution and a
//! rendered preseed.

use osmesh_core::ClusterId;
use serde::{Deserialize, Serialize};

/// One version of a template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreseedVersionView {
    pub name: String,
    pub version: i32,
    pub osystem: Option<String>,
    /// `cluster` or `operator`.
    pub origin: String,
    /// The cluster that shipped it, for `cluster` versions.
    pub origin_cluster: Option<ClusterId>,
    pub parent_version: Option<i32>,
    pub content: String,
    pub content_hash: String,
    pub created_at_ms: i64,
}

/// A cluster change that disagrees with the operator's edit; both versions are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConflictView {
    /// The operator's version, current while the conflict lasts.
    pub operator_version: i32,
    /// The cluster's newest version.
    pub cluster_version: i32,
}

/// A preseed: its current version and any conflict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreseedView {
    pub name: String,
    pub current: PreseedVersionView,
    pub in_conflict: bool,
    pub conflict: Option<ConflictView>,
    pub updated_at_ms: i64,
}

/// An operator's edit: the new content and the version it was based on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PreseedEdit {
    pub content: String,
    pub based_on_version: i32,
}

/// A rendered preseed and what it was rendered from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenderedPreseed {
    pub node_id: i64,
    pub hostname: String,
    pub preseed_type: String,
    pub osystem: String,
    pub distro_series: String,
    pub cluster: ClusterId,
    /// The template chosen (the most specific that exists) and its current version.
    pub template: String,
    pub template_version: i32,
    pub content: String,
}

/// Which side of a conflict to keep: the operator's or the cluster's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    pub version: i32,
}

/// A template name as one cluster ships it. It serves only that cluster's nodes, and only
/// once `approved`; a name a cluster ships for the first time is `pending` until an admin
/// approves or refuses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterTemplateView {
    pub cluster: ClusterId,
    pub name: String,
    /// `pending`, `approved` or `refused`.
    pub state: String,
    /// The newest version (of the name's history) holding what the cluster ships that
    /// parsed and trial-rendered on arrival; `None` while nothing it shipped did.
    pub version: Option<i32>,
    /// Why the cluster's newest report of the name failed the arrival check (bounded).
    pub error: Option<String>,
    pub first_seen_ms: i64,
    pub updated_at_ms: i64,
}
