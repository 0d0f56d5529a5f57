//! Nodes: enlisting one, allocating one, and a node as the API shows it. `Debug` masks the
//! power parameters.

use osmesh_core::ClusterId;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::MaskedParams;

/// A node to enlist. `Debug` masks the power parameters (`masked.rs`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnlistRequest {
    pub hostname: String,
    pub arch: String,
    #[serde(default)]
    pub subarch: Option<String>,
    pub cluster: ClusterId,
    #[serde(default)]
    pub system_id: Option<String>,
    #[serde(default)]
    pub power_type: Option<String>,
    #[serde(default)]
    pub power_parameters: Option<serde_json::Value>,
}

/// What an allocation asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AllocateRequest {
    pub osystem: String,
    pub distro_series: String,
    pub arch: String,
    #[serde(default)]
    pub subarch: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
}

/// A node as the API shows it. `Debug` masks the power parameters (`masked.rs`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeView {
    pub id: i64,
    pub system_id: Option<String>,
    pub hostname: String,
    pub arch: String,
    pub subarch: String,
    pub cluster: ClusterId,
    pub power_type: Option<String>,
    pub power_parameters: Option<serde_json::Value>,
    /// `ready` or `allocated`.
    pub status: String,
    pub osystem: Option<String>,
    pub distro_series: Option<String>,
    pub created_at_ms: i64,
    pub allocated_at_ms: Option<i64>,
}

impl fmt::Debug for EnlistRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnlistRequest")
            .field("hostname", &self.hostname)
            .field("arch", &self.arch)
            .field("subarch", &self.subarch)
            .field("cluster", &self.cluster)
            .field("system_id", &self.system_id)
            .field("power_type", &self.power_type)
            .field("power_parameters", &MaskedParams(&self.power_parameters))
            .finish()
    }
}

impl fmt::Debug for NodeView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeView")
            .field("id", &self.id)
            .field("hostname", &self.hostname)
            .field("cluster", &self.cluster)
            .field("status", &self.status)
            .field("power_type", &self.power_type)
            .field("power_parameters", &MaskedParams(&self.power_parameters))
            .finish_non_exhaustive()
    }
}
