//! The ESXi driver, after MAAS's `provisioningserver/drivers/osystem/esxi.py`: releases are the
//! ESXi images present, named by version (`6.7`, `7.0.3-custom`); titles `VMware ESXi 6.7`;
//! installed from DD images only; no license key; default `6.7`.

use super::rhel::default_or_newest;
use super::{only_purposes, OperatingSystem};
use crate::image::{BootImage, Purpose};
use regex::Regex;
use std::collections::BTreeSet;
use std::sync::OnceLock;

const NAME: &str = "esxi";
const TITLE: &str = "VMware ESXi";
const DEFAULT: &str = "6.7";

fn matcher() -> &'static Regex {
    static MATCHER: OnceLock<Regex> = OnceLock::new();
    MATCHER.get_or_init(|| {
        Regex::new(r"^((?P<major>[0-9])(\.(?P<minor>[0-9]))?(\.(?P<micro>[0-9]))?)?([\-\.]?(?P<title>.+)?)$")
            .expect("the ESXi release pattern is valid")
    })
}

/// The title of an ESXi release (MAAS: `ESXi.get_release_title`).
pub fn esxi_title(release: &str) -> String {
    let Some(parts) = matcher().captures(release) else {
        return TITLE.to_owned();
    };
    let mut title = TITLE.to_owned();
    if let Some(major) = parts.name("major") {
        title = format!("{title} {}", major.as_str());
    }
    for part in ["minor", "micro"] {
        if let Some(value) = parts.name(part) {
            title = format!("{title}.{}", value.as_str());
        }
    }
    if let Some(suffix) = parts.name("title") {
        title = format!("{title} {}", suffix.as_str());
    }
    title
}

/// The ESXi driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct Esxi;

impl OperatingSystem for Esxi {
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
        esxi_title(release)
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

    /// Mirrors MAAS `ESXi.get_release_title`.
    #[test]
    fn titles_follow_maas_get_release_title() {
        let table = [
            ("6.7", "VMware ESXi 6.7"),
            ("7.0.3", "VMware ESXi 7.0.3"),
            ("6", "VMware ESXi 6"),
            ("6.7-custom", "VMware ESXi 6.7 custom"),
            ("custom", "VMware ESXi custom"),
        ];
        for (release, title) in table {
            assert_eq!(esxi_title(release), title, "{release}");
        }
    }

    /// Mirrors MAAS `ESXi.get_default_release` and `get_boot_image_purposes`.
    #[test]
    fn releases_are_esxi_images_installed_by_xinstall() {
        let present = images(&["esxi/amd64/6.7", "esxi/amd64/7.0"]);
        let releases = Esxi.releases(&present);
        assert_eq!(Esxi.default_release(&releases).as_deref(), Some("6.7"));
        let image = image_with("esxi/amd64/6.7", &Purpose::ALL);
        assert_eq!(Esxi.purposes(&image), [Purpose::Xinstall].into());
        assert!(!Esxi.can_commission("6.7"));
    }
}
