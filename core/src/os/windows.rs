//! The Windows driver, after MAAS's `provisioningserver/drivers/osystem/windows.py`: MAAS's
//! releases with MAAS's titles (`Windows "Server 2019"`), most of which need a product key.
//!
//! Which releases need a key follows MAAS's `REQUIRE_LICENSE_KEY`: every Server, Nano,
//! Datacenter and Enterprise edition does; the free Hyper-V Server editions do not. A key is
//! five groups of five ASCII letters or digits separated by dashes, compared
//! case-insensitively (`preseed_data` hands it on upper-cased). Deliberate differences: osmesh
//! also knows `win2022` and `win2022-core` (which MAAS's image builder produces), and spells
//! "Datacenter" where MAAS's title for `win2019dc-core` has a typo.

use super::{only_purposes, LicenseKeyError, OperatingSystem};
use crate::image::{BootImage, Purpose};
use std::collections::{BTreeMap, BTreeSet};

const NAME: &str = "windows";
const KEY_GROUPS: usize = 5;
const KEY_GROUP_LENGTH: usize = 5;
/// The preseed key under which the product key is handed to the installer.
pub const LICENSE_KEY_PRESEED: &str = "license_key";
/// The preseed key under which the NetBIOS-safe hostname is handed to the installer.
pub const HOSTNAME_PRESEED: &str = "hostname";
/// Windows hostnames (NetBIOS names) are at most 15 characters (MAAS cuts them there).
pub const MAX_HOSTNAME: usize = 15;
const DEFAULT_RELEASE: &str = "win2019";

/// Release, title, requires a license key.
const RELEASES: [(&str, &str, bool); 19] = [
    ("win2008r2", "Windows \"Server 2008 R2\"", true),
    ("win2008hvr2", "Windows \"Hyper-V Server 2008 R2\"", false),
    ("win2012", "Windows \"Server 2012\"", true),
    ("win2012r2", "Windows \"Server 2012 R2\"", true),
    ("win2012hv", "Windows \"Hyper-V Server 2012\"", false),
    ("win2012hvr2", "Windows \"Hyper-V Server 2012 R2\"", false),
    ("win2016", "Windows \"Server 2016\"", true),
    ("win2016hv", "Windows \"Hyper-V Server 2016\"", false),
    ("win2016nano", "Windows \"Nano Server 2016\"", true),
    ("win2016-core", "Windows \"Server 2016 Core\"", true),
    ("win2016dc", "Windows \"Server 2016 Datacenter\"", true),
    (
        "win2016dc-core",
        "Windows \"Server 2016 Datacenter Core\"",
        true,
    ),
    ("win2019", "Windows \"Server 2019\"", true),
    ("win2019-core", "Windows \"Server 2019 Core\"", true),
    ("win2019dc", "Windows \"Server 2019 Datacenter\"", true),
    (
        "win2019dc-core",
        "Windows \"Server 2019 Datacenter Core\"",
        true,
    ),
    ("win10ent", "Windows \"10 Enterprise\"", true),
    ("win2022", "Windows \"Server 2022\"", true),
    ("win2022-core", "Windows \"Server 2022 Core\"", true),
];

/// The hostname a Windows installer gets: the first label of `hostname`, cut to 15 characters
/// (MAAS: `WindowsOS.compose_preseed`).
pub fn windows_hostname(hostname: &str) -> String {
    let label = hostname.split('.').next().unwrap_or_default();
    label.chars().take(MAX_HOSTNAME).collect()
}

/// The Windows driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct Windows;

impl Windows {
    fn entry(release: &str) -> Option<&'static (&'static str, &'static str, bool)> {
        RELEASES.iter().find(|(name, _, _)| *name == release)
    }
}

impl OperatingSystem for Windows {
    fn name(&self) -> &str {
        NAME
    }

    fn title(&self) -> String {
        "Windows".to_owned()
    }

    fn releases(&self, _images: &[BootImage]) -> BTreeSet<String> {
        RELEASES
            .iter()
            .map(|(name, _, _)| name.to_string())
            .collect()
    }

    fn release_title(&self, release: &str) -> String {
        // MAAS: `WINDOWS_CHOICES.get(release, release)`.
        Self::entry(release).map_or_else(|| release.to_owned(), |(_, title, _)| title.to_string())
    }

    fn default_release(&self, _releases: &BTreeSet<String>) -> Option<String> {
        Some(DEFAULT_RELEASE.to_owned())
    }

    fn requires_license_key(&self, release: &str) -> bool {
        Self::entry(release).is_some_and(|(_, _, required)| *required)
    }

    fn validate_license_key(&self, _release: &str, key: &str) -> Result<(), LicenseKeyError> {
        validate_product_key(key)
    }

    fn purposes(&self, image: &BootImage) -> BTreeSet<Purpose> {
        only_purposes(image, &[Purpose::Install, Purpose::Xinstall])
    }

    /// MAAS `WindowsOS.compose_preseed`: Windows installs without curtin, so a curtin preseed
    /// is refused rather than rendered; the hostname is cut to what NetBIOS allows.
    fn compose_preseed(
        &self,
        preseed_type: &str,
        hostname: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        if preseed_type == "curtin" {
            return Err("Windows is not installed by curtin".into());
        }
        Ok([(HOSTNAME_PRESEED.to_owned(), windows_hostname(hostname))].into())
    }

    fn preseed_data(&self, _release: &str, license_key: Option<&str>) -> BTreeMap<String, String> {
        license_key
            .map(|key| (LICENSE_KEY_PRESEED.to_owned(), key.to_ascii_uppercase()))
            .into_iter()
            .collect()
    }
}

/// Checks the `XXXXX-XXXXX-XXXXX-XXXXX-XXXXX` shape, naming the first group that is wrong.
pub fn validate_product_key(key: &str) -> Result<(), LicenseKeyError> {
    if key.is_empty() {
        return Err(LicenseKeyError::Empty);
    }
    let groups: Vec<&str> = key.split('-').collect();
    if groups.len() != KEY_GROUPS {
        return Err(LicenseKeyError::WrongGroupCount {
            expected: KEY_GROUPS,
            found: groups.len(),
        });
    }
    for (index, group) in groups.iter().enumerate() {
        check_group(index + 1, group)?;
    }
    Ok(())
}

fn check_group(group: usize, text: &str) -> Result<(), LicenseKeyError> {
    if !text.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(LicenseKeyError::NotAlphanumeric { group });
    }
    if text.len() != KEY_GROUP_LENGTH {
        return Err(LicenseKeyError::WrongGroupLength {
            group,
            length: text.len(),
            expected: KEY_GROUP_LENGTH,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::tests::image_with;
    use LicenseKeyError::*;

    #[test]
    fn product_keys_are_checked_group_by_group() {
        let table: &[(&str, Result<(), LicenseKeyError>)] = &[
            ("ABCDE-12345-FGHIJ-67890-KLMNO", Ok(())),
            ("abcde-12345-fghij-67890-klmno", Ok(())),
            ("", Err(Empty)),
            (
                "ABCDE-12345-FGHIJ-67890",
                Err(WrongGroupCount {
                    expected: 5,
                    found: 4,
                }),
            ),
            (
                "ABCDE-12345-FGHIJ-67890-KLMNO-",
                Err(WrongGroupCount {
                    expected: 5,
                    found: 6,
                }),
            ),
            (
                "ABCDE12345FGHIJ67890KLMNO",
                Err(WrongGroupCount {
                    expected: 5,
                    found: 1,
                }),
            ),
            (
                "ABCDE-1234-FGHIJ-67890-KLMNO",
                Err(WrongGroupLength {
                    group: 2,
                    length: 4,
                    expected: 5,
                }),
            ),
            (
                "ABCDE-12345-FG_IJ-67890-KLMNO",
                Err(NotAlphanumeric { group: 3 }),
            ),
            (
                "ABCDE-12345-FGHIJ-67890-KLMNÖ",
                Err(NotAlphanumeric { group: 5 }),
            ),
            (
                " ABCD-12345-FGHIJ-67890-KLMNO",
                Err(NotAlphanumeric { group: 1 }),
            ),
        ];
        for (key, expected) in table {
            assert_eq!(&validate_product_key(key), expected, "{key:?}");
        }
    }

    /// Mirrors MAAS `WindowsOS.get_release_title` and `requires_license_key` over
    /// `WINDOWS_CHOICES` and `REQUIRE_LICENSE_KEY`.
    #[test]
    fn releases_titles_and_key_rules_follow_maas() {
        let table = [
            ("win2008r2", "Windows \"Server 2008 R2\"", true),
            ("win2008hvr2", "Windows \"Hyper-V Server 2008 R2\"", false),
            ("win2012hvr2", "Windows \"Hyper-V Server 2012 R2\"", false),
            ("win2016hv", "Windows \"Hyper-V Server 2016\"", false),
            ("win2016nano", "Windows \"Nano Server 2016\"", true),
            ("win2016-core", "Windows \"Server 2016 Core\"", true),
            ("win2016dc", "Windows \"Server 2016 Datacenter\"", true),
            (
                "win2016dc-core",
                "Windows \"Server 2016 Datacenter Core\"",
                true,
            ),
            ("win2019", "Windows \"Server 2019\"", true),
            ("win2019-core", "Windows \"Server 2019 Core\"", true),
            ("win2019dc", "Windows \"Server 2019 Datacenter\"", true),
            (
                "win2019dc-core",
                "Windows \"Server 2019 Datacenter Core\"",
                true,
            ),
            ("win10ent", "Windows \"10 Enterprise\"", true),
        ];
        let listed = Windows.releases(&[]);
        for (release, title, key) in table {
            assert!(listed.contains(release), "{release} listed");
            assert_eq!(Windows.release_title(release), title);
            assert_eq!(Windows.requires_license_key(release), key, "{release}");
        }
        assert_eq!(Windows.release_title("win95"), "win95");
        assert_eq!(Windows.default_release(&listed).as_deref(), Some("win2019"));
        assert!(!Windows.can_commission("win2019"));
    }

    /// Mirrors MAAS `WindowsOS.compose_preseed`'s hostname: first label, 15 characters.
    #[test]
    fn hostnames_are_cut_to_fifteen_characters() {
        let table = [
            ("node-1", "node-1"),
            ("node-1.maas", "node-1"),
            ("a-very-long-hostname-indeed.example", "a-very-long-hos"),
            ("exactly15chars!", "exactly15chars!"),
        ];
        for (hostname, cut) in table {
            assert_eq!(windows_hostname(hostname), cut);
        }
    }

    #[test]
    fn preseed_carries_the_key_upper_cased() {
        let data = Windows.preseed_data("win2019", Some("abcde-12345-fghij-67890-klmno"));
        let expected = [(
            LICENSE_KEY_PRESEED.to_owned(),
            "ABCDE-12345-FGHIJ-67890-KLMNO".to_owned(),
        )];
        assert_eq!(data, expected.into());
        assert_eq!(Windows.preseed_data("win2019", None), BTreeMap::new());
    }

    #[test]
    fn windows_images_install_but_never_commission() {
        let image = image_with("windows/amd64/win2019", &Purpose::ALL);
        assert_eq!(
            Windows.purposes(&image),
            [Purpose::Install, Purpose::Xinstall].into()
        );
    }
}
