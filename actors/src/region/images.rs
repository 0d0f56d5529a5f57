//! Per-image records across the mesh: every image each cluster last reported, with its arch,
//! subarch, kernel flavour, label and purposes, whether its cluster is connected now (an image
//! of a disconnected cluster is only "last known"), and the release's title in the view.

use osmesh_core::image::ImageDetail;
use osmesh_core::{BootImage, ClusterId};
use serde::{Deserialize, Serialize};

use super::service::{RegionService, ServiceError};
use super::ListHeldImages;

/// One cluster's held images, as the region actor hands them out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldImages {
    pub cluster: ClusterId,
    pub connected: bool,
    pub disconnected_since_ms: Option<i64>,
    pub age_ms: Option<i64>,
    pub images: Vec<BootImage>,
}

/// Which images to list; each field left out matches all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
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
    fn matches(&self, image: &BootImage) -> bool {
        let ok = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        ok(&self.osystem, &image.osystem)
            && ok(&self.release, &image.release)
            && ok(&self.arch, &image.arch)
    }
}

impl RegionService {
    /// Every image the clusters last reported that `filter` matches, connected or not.
    pub async fn images(&self, filter: &ImageFilter) -> Result<ImagesAnswer, ServiceError> {
        let held = self
            .region()
            .send(ListHeldImages)
            .await
            .map_err(ServiceError::region_gone)?;
        let view = self.osystems_cached().await?.view;
        let mut images: Vec<ImageRecord> = held
            .iter()
            .flat_map(|cluster| {
                cluster
                    .images
                    .iter()
                    .filter(|image| filter.matches(image))
                    .map(move |image| ImageRecord {
                        cluster: cluster.cluster.clone(),
                        connected: cluster.connected,
                        disconnected_since_ms: cluster.disconnected_since_ms,
                        title: None,
                        detail: ImageDetail::new(image, None),
                    })
            })
            .collect();
        for record in &mut images {
            record.title = view
                .release(&record.detail.osystem, &record.detail.release)
                .map(|r| r.title.clone());
        }
        images.sort_by(|a, b| (&a.detail, &a.cluster).cmp(&(&b.detail, &b.cluster)));
        Ok(ImagesAnswer { images })
    }
}
