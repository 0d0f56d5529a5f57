//! The RHEL driver, after MAAS's `provisioningserver/drivers/osystem/rhel.py`: releases are the
//! RHEL images present, named `rhel<major>[<minor>][-<suffix>]`; titles `Redhat Enterprise
//! Linux 8.6 custom` (MAAS's spelling of the OS title); installed from root images only; no
//! license key (RHEL subscriptions are not product keys MAAS checks); default `rhel7`.

use super::centos::split_versioned;
use super::{only_purposes, OperatingSystem};
use crate::image::{BootImage, Purpose};
use std::collections::BTreeSet;

const NAME: &str = "rhel";
const TITLE: &str = "Redhat Enterprise Linux";
const DEFAULT: &str = "rhel7";

/// The title of a RHEL release (MAAS: `RHELOS.get_release_title`).
pub fn rhel_title(release: &str) -> String {
    let Some(parts) = split_versioned(NAME, release) else {
        return format!("{TITLE} {release}");
    };
    let mut title = TITLE.to_owned();
    match (parts.major, parts.minor) {
        (Some(major), Some(minor)) => title = format!("{title} {major}.{minor}"),
        (Some(major), None) => title = format!("{title} {major}"),
        (None, _) => {}
    }
    if let Some(suffix) = parts.title {
        title = format!("{title} {suffix}");
    }
    title
}

/// The RHEL driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rhel;

impl OperatingSystem for Rhel {
    fn name(&self) -> &str {
        NAME
    }

    fn title(&self) -> String {
        TITLE.to_owned()
    }

    fn releases(&self, images: &[BootImage]) -> BTreeSet<String> {
        images
            .iter()
            .filter(|i| i.osystem == NAME && split_versioned(NAME, &i.release).is_some())
            .map(|i| i.release.clone())
            .collect()
    }

    fn release_title(&self, release: &str) -> String {
        rhel_title(release)
    }

    fn default_release(&self, releases: &BTreeSet<String>) -> Option<String> {
        default_or_newest(DEFAULT, releases)
    }

    fn purposes(&self, image: &BootImage) -> BTreeSet<Purpose> {
        only_purposes(image, &[Purpose::Xinstall])
    }
}

/// MAAS's fixed default when present, else the last release by name.
pub(super) fn default_or_newest(default: &str, releases: &BTreeSet<String>) -> Option<String> {
    if releases.contains(default) {
        return Some(default.to_owned());
    }
    releases.iter().next_back().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::tests::{image_with, images};

    /// Mirrors MAAS `RHELOS.get_release_title`.
    #[test]
    fn titles_follow_maas_get_release_title() {
        let table = [
            ("rhel7", "Redhat Enterprise Linux 7"),
            ("rhel70", "Redhat Enterprise Linux 7.0"),
            ("rhel86", "Redhat Enterprise Linux 8.6"),
            ("rhel8-custom", "Redhat Enterprise Linux 8 custom"),
            ("rhel-custom", "Redhat Enterprise Linux custom"),
            ("centos7", "Redhat Enterprise Linux centos7"),
        ];
        for (release, title) in table {
            assert_eq!(rhel_title(release), title, "{release}");
        }
    }

    /// Mirrors MAAS `RHELOS.is_release_supported`, `get_default_release` and
    /// `get_boot_image_purposes`.
    #[test]
    fn releases_are_rhel_images_installed_by_xinstall() {
        let present = images(&["rhel/amd64/rhel86", "rhel/amd64/rhel7", "rhel/amd64/fedora"]);
        let releases = Rhel.releases(&present);
        assert_eq!(releases.iter().collect::<Vec<_>>(), ["rhel7", "rhel86"]);
        assert_eq!(Rhel.default_release(&releases).as_deref(), Some("rhel7"));
        let only_8: BTreeSet<String> = ["rhel86".to_owned()].into();
        assert_eq!(Rhel.default_release(&only_8).as_deref(), Some("rhel86"));
        let image = image_with("rhel/amd64/rhel86", &Purpose::ALL);
        assert_eq!(Rhel.purposes(&image), [Purpose::Xinstall].into());
        assert!(!Rhel.can_commission("rhel86"));
        assert!(!Rhel.requires_license_key("rhel86"));
    }
}
