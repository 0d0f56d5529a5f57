//! What a cluster's registry says about one operating system: the shape that crosses the
//! wire in `ListOperatingSystems` and that the region merges.

use serde::{Deserialize, Serialize};

/// One release of an operating system, as a registry describes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseInfo {
    pub name: String,
    pub title: String,
    pub requires_license_key: bool,
    pub can_commission: bool,
    /// Past its end of support (Ubuntu: distro-info's `eol-server`, else `eol`): shown, but
    /// never offered as a default or for commissioning. Absent from older clusters' replies.
    #[serde(default)]
    pub end_of_life: bool,
}

/// One operating system, as a registry describes it. Releases are sorted by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OsystemInfo {
    pub name: String,
    pub title: String,
    pub releases: Vec<ReleaseInfo>,
    pub default_release: Option<String>,
    pub default_commissioning_release: Option<String>,
}
