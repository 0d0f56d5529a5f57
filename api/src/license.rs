//! License keys: what an operator submits, and how every answer shows a stored key (masked).

use osmesh_core::ClusterId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A key as an operator submits it. `Debug` masks the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LicenseKeyRequest {
    pub osystem: String,
    pub distro_series: String,
    pub license_key: String,
}

impl std::fmt::Debug for LicenseKeyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseKeyRequest")
            .field("osystem", &self.osystem)
            .field("distro_series", &self.distro_series)
            .field("license_key", &"***")
            .finish()
    }
}

/// A stored key as every answer shows it: masked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicenseKeyView {
    pub osystem: String,
    pub distro_series: String,
    /// Only the last five characters are shown.
    pub license_key: String,
    pub validated_by: ClusterId,
    pub validated_at_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// In the answer to an add or update: the validators that refused the key before
    /// `validated_by` accepted it, with their reasons. Not stored.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused_by: BTreeMap<ClusterId, String>,
}

/// The body of a key's replacement: the release comes from the path. `Debug` masks the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LicenseKeyUpdate {
    pub license_key: String,
}

impl std::fmt::Debug for LicenseKeyUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseKeyUpdate")
            .field("license_key", &"***")
            .finish()
    }
}
