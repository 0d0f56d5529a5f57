//! The Ubuntu Core driver, after MAAS's `provisioningserver/drivers/osystem/ubuntu_core.py`:
//! releases are the `ubuntu-core` images present (`16`, `22`, …), titled by their name (MAAS
//! leaves titles to the region, which reads them from image metadata); installed from DD images
//! only; no license key; default `16`, else the newest present.

use super::rhel::default_or_newest;
use super::{only_purposes, OperatingSystem};
use crate::image::{BootImage, Purpose};
use std::collections::{BTreeMap, BTreeSet};

const NAME: &str = "ubuntu-core";
const TITLE: &str = "Ubuntu Core";
const DEFAULT: &str = "16";

/// The Ubuntu Core driver.
#[derive(Clone, Debug, Default)]
pub struct UbuntuCore {
    titles: BTreeMap<String, String>,
}

impl UbuntuCore {
    /// `titles`: release titles from image metadata (`maas.meta`), by release.
    pub fn new(titles: BTreeMap<String, String>) -> Self {
        UbuntuCore { titles }
    }
}

impl OperatingSystem for UbuntuCore {
    fn name(&self) -> &str {
        NAME
    }

    fn title(&self) -> String {
        TITLE.to_owned()
    }

    fn releases(&self, images: &[BootImage]) -> BTreeSet<String> {
        images
            .iter()
            .filter(|i| i.osystem == NAME)
            .map(|i| i.release.clone())
            .collect()
    }

    fn release_title(&self, release: &str) -> String {
        self.titles
            .get(release)
            .cloned()
            .unwrap_or_else(|| release.to_owned())
    }

    fn default_release(&self, releases: &BTreeSet<String>) -> Option<String> {
        default_or_newest(DEFAULT, releases)
    }

    fn purposes(&self, image: &BootImage) -> BTreeSet<Purpose> {
        only_purposes(image, &[Purpose::Xinstall])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::tests::{image_with, images};

    /// Mirrors MAAS `UbuntuCoreOS.get_release_title`, `get_default_release` and
    /// `get_boot_image_purposes`.
    #[test]
    fn releases_are_ubuntu_core_images_titled_by_name() {
        let core = UbuntuCore::default();
        let present = images(&["ubuntu-core/amd64/16", "ubuntu-core/amd64/22"]);
        let releases = core.releases(&present);
        assert_eq!(core.default_release(&releases).as_deref(), Some("16"));
        assert_eq!(core.release_title("22"), "22");
        let titled = UbuntuCore::new([("22".to_owned(), "Ubuntu Core 22".to_owned())].into());
        assert_eq!(titled.release_title("22"), "Ubuntu Core 22");
        let image = image_with("ubuntu-core/amd64/22", &Purpose::ALL);
        assert_eq!(core.purposes(&image), [Purpose::Xinstall].into());
        assert!(!core.requires_license_key("22"));
    }
}
