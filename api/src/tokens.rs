//! API tokens: the body that creates one.

use serde::{Deserialize, Serialize};

/// A token to create: its name, role (`reader`, `operator` or `admin`) and lifetime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    pub role: String,
    /// Lifetime in seconds; none means until revoked.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}
