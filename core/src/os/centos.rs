//! The CentOS driver: a fixed list of releases, installed from root tarballs only.
//!
//! The driver always lists its releases, whether or not an image is present: whether a
//! cluster can *install* one is a question of images, which the mesh view answers as
//! availability. CentOS cannot commission (commissioning runs Ubuntu).

use super::{only_purposes, OperatingSystem};
use crate::image::{BootImage, Purpose};
use std::collections::BTreeSet;

const NAME: &str = "centos";

/// Releases and titles, oldest first; the last is the default.
const RELEASES: [(&str, &str); 3] = [
    ("centos7", "CentOS 7"),
    ("centos8", "CentOS 8"),
    ("centos9-stream", "CentOS Stream 9"),
];

/// The CentOS driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct Centos;

impl OperatingSystem for Centos {
    fn name(&self) -> &str {
        NAME
    }

    fn title(&self) -> String {
        "CentOS".to_owned()
    }

    fn releases(&self, _images: &[BootImage]) -> BTreeSet<String> {
        RELEASES.iter().map(|(name, _)| name.to_string()).collect()
    }

    fn release_title(&self, release: &str) -> String {
        RELEASES
            .iter()
            .find(|(name, _)| *name == release)
            .map_or_else(|| release.to_owned(), |(_, title)| title.to_string())
    }

    fn default_release(&self, _releases: &BTreeSet<String>) -> Option<String> {
        RELEASES.last().map(|(name, _)| name.to_string())
    }

    fn purposes(&self, image: &BootImage) -> BTreeSet<Purpose> {
        only_purposes(image, &[Purpose::Xinstall])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::tests::image_with;

    #[test]
    fn lists_its_fixed_releases_without_images() {
        let releases: Vec<String> = Centos.releases(&[]).into_iter().collect();
        assert_eq!(releases, ["centos7", "centos8", "centos9-stream"]);
        assert_eq!(Centos.release_title("centos7"), "CentOS 7");
        assert_eq!(
            Centos.default_release(&BTreeSet::new()).as_deref(),
            Some("centos9-stream")
        );
    }

    #[test]
    fn installs_by_xinstall_only_and_never_commissions() {
        let all = Purpose::ALL;
        let image = image_with("centos/amd64/centos7", &all);
        assert_eq!(Centos.purposes(&image), [Purpose::Xinstall].into());
        assert!(!Centos.can_commission("centos7"));
        assert_eq!(
            Centos.default_commissioning_release(&Centos.releases(&[])),
            None
        );
    }
}
