//! The region's OS settings.

use serde::{Deserialize, Serialize};

/// The OS settings; `None` when unset. Also the body of an update: fields left out (or
/// `null`) are left as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OsSettings {
    #[serde(default)]
    pub default_osystem: Option<String>,
    #[serde(default)]
    pub default_distro_series: Option<String>,
    #[serde(default)]
    pub commissioning_distro_series: Option<String>,
}
