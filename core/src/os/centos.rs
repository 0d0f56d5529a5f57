//! The CentOS driver, after MAAS's `provisioningserver/drivers/osystem/centos.py`: any release
//! named `centos<major>[<minor>][-<suffix>]` is CentOS, installed from root images only.
//!
//! Releases are the well-known ones (always listed, so the mesh shows them before an image
//! arrives; whether a cluster can *install* one is availability) plus every CentOS image
//! present, whatever its version or suffix (`centos65`, `centos71-custom`). Titles follow
//! MAAS's `get_release_title`: `CentOS 7.1 custom`, with no minor shown for `X.0` or `6.6`.
//! One deliberate difference: a version starting with `1` takes two digits as the major
//! (`centos10-stream` is CentOS 10, where MAAS's one-digit pattern reads CentOS 1.0).
//! CentOS cannot commission (commissioning runs Ubuntu) and needs no license key.

use super::{only_purposes, OperatingSystem};
use crate::image::{BootImage, Purpose};
use std::collections::BTreeSet;

const NAME: &str = "centos";
const TITLE: &str = "CentOS";

/// Releases listed without images, oldest first; the last is the default.
const WELL_KNOWN: [&str; 3] = ["centos7", "centos8", "centos9-stream"];

/// The parts of a CentOS-style release name: `<prefix><major>[<minor>][[-.]<title>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionedName<'a> {
    pub major: Option<&'a str>,
    pub minor: Option<&'a str>,
    pub title: Option<&'a str>,
}

/// Splits `release` after `prefix` (matched case-insensitively) as MAAS's `DISTRO_MATCHER`
/// does for CentOS and RHEL; `None` when the name does not start with the prefix. A major
/// version starting with `1` takes two digits (see the module comment).
pub fn split_versioned<'a>(prefix: &str, release: &'a str) -> Option<VersionedName<'a>> {
    let head = release.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = &release[prefix.len()..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let major_len = match (digits, rest.as_bytes().first()) {
        (0, _) => 0,
        (2.., Some(b'1')) => 2,
        _ => 1,
    };
    let major = (major_len > 0).then(|| &rest[..major_len]);
    let after_major = &rest[major_len..];
    let minor_len =
        usize::from(major.is_some() && after_major.starts_with(|c: char| c.is_ascii_digit()));
    let minor = (minor_len > 0).then(|| &after_major[..1]);
    let tail = &after_major[minor_len..];
    let tail = tail.strip_prefix(['-', '.']).unwrap_or(tail);
    let title = (!tail.is_empty()).then_some(tail);
    Some(VersionedName {
        major,
        minor,
        title,
    })
}

/// Whether `release` names a CentOS release (MAAS: `CentOS.is_release_supported`).
pub fn is_centos_release(release: &str) -> bool {
    split_versioned(NAME, release).is_some()
}

/// The title of a CentOS release (MAAS: `CentOS.get_release_title`).
pub fn centos_title(release: &str) -> String {
    let Some(parts) = split_versioned(NAME, release) else {
        return format!("{TITLE} {release}");
    };
    let mut title = TITLE.to_owned();
    match (parts.major, parts.minor) {
        // MAAS hides the minor of X.0 and 6.6: the streams do not pin a minor release.
        (Some(major), None | Some("0")) => title = format!("{title} {major}"),
        (Some("6"), Some("6")) => title = format!("{title} 6"),
        (Some(major), Some(minor)) => title = format!("{title} {major}.{minor}"),
        (None, _) => {}
    }
    if let Some(suffix) = parts.title {
        title = format!("{title} {suffix}");
    }
    title
}

/// The CentOS driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct Centos;

impl OperatingSystem for Centos {
    fn name(&self) -> &str {
        NAME
    }

    fn title(&self) -> String {
        TITLE.to_owned()
    }

    fn releases(&self, images: &[BootImage]) -> BTreeSet<String> {
        let present = images
            .iter()
            .filter(|image| image.osystem == NAME && is_centos_release(&image.release))
            .map(|image| image.release.clone());
        WELL_KNOWN
            .iter()
            .map(|r| r.to_string())
            .chain(present)
            .collect()
    }

    fn release_title(&self, release: &str) -> String {
        centos_title(release)
    }

    fn default_release(&self, _releases: &BTreeSet<String>) -> Option<String> {
        WELL_KNOWN.last().map(|name| name.to_string())
    }

    fn purposes(&self, image: &BootImage) -> BTreeSet<Purpose> {
        only_purposes(image, &[Purpose::Xinstall])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::tests::{image_with, images};

    /// Mirrors MAAS `CentOS.get_release_title` (and its tests' table of names).
    #[test]
    fn titles_follow_maas_get_release_title() {
        let table = [
            ("centos65", "CentOS 6.5"),
            ("centos66", "CentOS 6"),
            ("centos7", "CentOS 7"),
            ("centos70", "CentOS 7"),
            ("centos71", "CentOS 7.1"),
            ("centos71-custom", "CentOS 7.1 custom"),
            ("centos8", "CentOS 8"),
            ("centos9-stream", "CentOS 9 stream"),
            ("centos7.custom", "CentOS 7 custom"),
            ("centos-custom", "CentOS custom"),
            ("centos", "CentOS"),
            ("CentOS7", "CentOS 7"),
            // Deliberately better than MAAS's one-digit major (which reads CentOS 1.0):
            ("centos10-stream", "CentOS 10 stream"),
            ("fedora40", "CentOS fedora40"),
        ];
        for (release, title) in table {
            assert_eq!(centos_title(release), title, "{release}");
        }
    }

    /// Mirrors MAAS `CentOS.is_release_supported`: the name only has to start with `centos`.
    #[test]
    fn any_centos_named_image_is_a_release() {
        let present = images(&[
            "centos/amd64/centos65",
            "centos/amd64/centos71-custom",
            "centos/amd64/fedora40",
            "ubuntu/amd64/centos7x",
        ]);
        let releases: Vec<String> = Centos.releases(&present).into_iter().collect();
        assert_eq!(
            releases,
            [
                "centos65",
                "centos7",
                "centos71-custom",
                "centos8",
                "centos9-stream"
            ]
        );
        assert_eq!(
            Centos.default_release(&BTreeSet::new()).as_deref(),
            Some("centos9-stream")
        );
    }

    /// Mirrors MAAS `CentOS.get_boot_image_purposes`: XINSTALL only.
    #[test]
    fn installs_by_xinstall_only_and_never_commissions() {
        let all = Purpose::ALL;
        let image = image_with("centos/amd64/centos7", &all);
        assert_eq!(Centos.purposes(&image), [Purpose::Xinstall].into());
        assert!(!Centos.can_commission("centos7"));
        assert!(!Centos.requires_license_key("centos7"));
        assert_eq!(
            Centos.default_commissioning_release(&Centos.releases(&[])),
            None
        );
    }
}
