//! The SUSE driver, after MAAS's `provisioningserver/drivers/osystem/suse.py`: releases are the
//! SUSE images present named `sles|opensuse|tumbleweed[<major>][.<minor>][-<suffix>]`; titles
//! name the product (`SUSE Linux Enterprise Server 15 SP4`, `OpenSUSE 15.5`); installed from
//! root images only; no license key; default `tumbleweed`.

use super::rhel::default_or_newest;
use super::{only_purposes, OperatingSystem};
use crate::image::{BootImage, Purpose};
use regex::Regex;
use std::collections::BTreeSet;
use std::sync::OnceLock;

const NAME: &str = "suse";
const TITLE: &str = "SUSE";
const DEFAULT: &str = "tumbleweed";

fn matcher() -> &'static Regex {
    static MATCHER: OnceLock<Regex> = OnceLock::new();
    MATCHER.get_or_init(|| {
        Regex::new(r"(?i)^(?P<product>sles|opensuse|tumbleweed)(?P<major>\d+)?(\.(?P<minor>\d+))?(-(?P<title>.+))?$")
            .expect("the SUSE release pattern is valid")
    })
}

/// The title of a SUSE release (MAAS: `SUSEOS.get_release_title`). Unlike MAAS, the product
/// is matched case-insensitively for the title too (MAAS raises a `KeyError` on `SLES15`).
pub fn suse_title(release: &str) -> String {
    let Some(parts) = matcher().captures(release) else {
        return format!("{TITLE} {release}");
    };
    let product = parts
        .name("product")
        .map_or("", |m| m.as_str())
        .to_ascii_lowercase();
    let mut title = match product.as_str() {
        "sles" => "SUSE Linux Enterprise Server",
        "opensuse" => "OpenSUSE",
        _ => "OpenSUSE Tumbleweed",
    }
    .to_owned();
    if let Some(major) = parts.name("major") {
        title = format!("{title} {}", major.as_str());
    }
    if let Some(minor) = parts.name("minor") {
        title = if product == "sles" {
            format!("{title} SP{}", minor.as_str())
        } else {
            format!("{title}.{}", minor.as_str())
        };
    }
    if let Some(suffix) = parts.name("title") {
        title = format!("{title} {}", suffix.as_str());
    }
    title
}

/// The SUSE driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct Suse;

impl OperatingSystem for Suse {
    fn name(&self) -> &str {
        NAME
    }

    fn title(&self) -> String {
        TITLE.to_owned()
    }

    fn releases(&self, images: &[BootImage]) -> BTreeSet<String> {
        images
            .iter()
            .filter(|i| i.osystem == NAME && matcher().is_match(&i.release))
            .map(|i| i.release.clone())
            .collect()
    }

    fn release_title(&self, release: &str) -> String {
        suse_title(release)
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

    /// Mirrors MAAS `SUSEOS.get_release_title`.
    #[test]
    fn titles_follow_maas_get_release_title() {
        let table = [
            ("sles15", "SUSE Linux Enterprise Server 15"),
            ("sles15.4", "SUSE Linux Enterprise Server 15 SP4"),
            (
                "sles12.5-custom",
                "SUSE Linux Enterprise Server 12 SP5 custom",
            ),
            ("opensuse15.5", "OpenSUSE 15.5"),
            ("opensuse15", "OpenSUSE 15"),
            ("tumbleweed", "OpenSUSE Tumbleweed"),
            ("SLES15", "SUSE Linux Enterprise Server 15"),
            ("leap15", "SUSE leap15"),
        ];
        for (release, title) in table {
            assert_eq!(suse_title(release), title, "{release}");
        }
    }

    /// Mirrors MAAS `SUSEOS.is_release_supported`, `get_default_release` and
    /// `get_boot_image_purposes`.
    #[test]
    fn releases_are_suse_images_installed_by_xinstall() {
        let present = images(&[
            "suse/amd64/sles15.4",
            "suse/amd64/tumbleweed",
            "suse/amd64/leap",
        ]);
        let releases = Suse.releases(&present);
        assert_eq!(
            releases.iter().collect::<Vec<_>>(),
            ["sles15.4", "tumbleweed"]
        );
        assert_eq!(
            Suse.default_release(&releases).as_deref(),
            Some("tumbleweed")
        );
        let image = image_with("suse/amd64/sles15.4", &Purpose::ALL);
        assert_eq!(Suse.purposes(&image), [Purpose::Xinstall].into());
        assert!(!Suse.requires_license_key("sles15.4"));
    }
}
