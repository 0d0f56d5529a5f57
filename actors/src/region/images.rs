//! Per-image records across the mesh: every image each cluster last reported, with its arch,
//! subarch, kernel flavour, label and purposes, whether its cluster is connected now (an image
//! of a disconnected cluster is only "last known"), and the release's title in the view.

use osmesh_core::image::ImageDetail;
use osmesh_core::{BootImage, ClusterId};

pub use osmesh_api::images::{ImageFilter, ImageRecord, ImagesAnswer};

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
