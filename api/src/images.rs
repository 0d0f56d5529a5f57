//! Every image each cluster holds, as the API lists them, and the filter of that list.

use osmesh_core::image::ImageDetail;
use osmesh_core::{BootImage, ClusterId};
use serde::{Deserialize, Serialize};

/// Which images to list; each field left out matches all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ImageFilter {
    #[serde(default)]
    pub osystem: Option<String>,
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default)]
    pub arch: Option<String>,
}

/// One image on one cluster, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageRecord {
    pub cluster: ClusterId,
    /// `false`: the cluster is disconnected and this image is only last known.
    pub connected: bool,
    pub disconnected_since_ms: Option<i64>,
    /// The release's title in the cached view, when the view has it.
    pub title: Option<String>,
    #[serde(flatten)]
    pub detail: ImageDetail,
}

/// Every image record, sorted by OS, release, arch, subarch, label, then cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImagesAnswer {
    pub images: Vec<ImageRecord>,
}

impl ImageFilter {
    /// Whether `image` passes the filter.
    pub fn matches(&self, image: &BootImage) -> bool {
        let ok = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        ok(&self.osystem, &image.osystem)
            && ok(&self.release, &image.release)
            && ok(&self.arch, &image.arch)
    }
}
