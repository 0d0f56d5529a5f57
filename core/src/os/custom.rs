//! The custom driver: user-uploaded images under `custom/`; any release name is accepted.
//!
//! Releases are the custom images present. A release's title comes from the title map the
//! cluster passes in (image metadata), else it is the release name. Custom images install
//! by xinstall only, cannot commission, and have no natural default release.

use super::{only_purposes, OperatingSystem};
use crate::image::{BootImage, Purpose};
use std::collections::{BTreeMap, BTreeSet};

const NAME: &str = "custom";

/// The custom-image driver.
#[derive(Clone, Debug, Default)]
pub struct Custom {
    titles: BTreeMap<String, String>,
}

impl Custom {
    /// `titles` maps a release name to the title its image metadata gives.
    pub fn new(titles: BTreeMap<String, String>) -> Self {
        Custom { titles }
    }
}

impl OperatingSystem for Custom {
    fn name(&self) -> &str {
        NAME
    }

    fn title(&self) -> String {
        "Custom".to_owned()
    }

    fn releases(&self, images: &[BootImage]) -> BTreeSet<String> {
        images
            .iter()
            .filter(|image| image.osystem == NAME)
            .map(|image| image.release.clone())
            .collect()
    }

    fn release_title(&self, release: &str) -> String {
        self.titles
            .get(release)
            .cloned()
            .unwrap_or_else(|| release.to_owned())
    }

    fn default_release(&self, _releases: &BTreeSet<String>) -> Option<String> {
        None
    }

    fn purposes(&self, image: &BootImage) -> BTreeSet<Purpose> {
        only_purposes(image, &[Purpose::Xinstall])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::tests::{image_with, images};

    #[test]
    fn releases_come_from_images_and_titles_from_metadata() {
        let custom = Custom::new([("golden".to_owned(), "Golden Image v3".to_owned())].into());
        let present = images(&[
            "custom/amd64/golden",
            "custom/amd64/scratch",
            "ubuntu/amd64/jammy",
        ]);
        let releases: Vec<String> = custom.releases(&present).into_iter().collect();
        assert_eq!(releases, ["golden", "scratch"]);
        assert_eq!(custom.release_title("golden"), "Golden Image v3");
        assert_eq!(custom.release_title("scratch"), "scratch");
    }

    #[test]
    fn custom_images_only_xinstall() {
        let image = image_with("custom/amd64/golden", &Purpose::ALL);
        assert_eq!(
            Custom::default().purposes(&image),
            [Purpose::Xinstall].into()
        );
    }
}
