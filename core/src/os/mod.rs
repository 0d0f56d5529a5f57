//! The cluster's operating-system registry: one driver per OS, and the `Registry` that
//! answers for all of them given the boot images the cluster holds.
//!
//! A registry is a pure value built from a `RegistryConfig` and the current images; it is
//! cheap to rebuild, so a cluster rebuilds it whenever a rescan changes its images. An OS
//! that has no release (Ubuntu or custom without images) is not listed at all.

mod centos;
mod custom;
mod declared;
mod esxi;
mod license;
mod rhel;
mod suse;
mod ubuntu;
mod ubuntu_core;
mod windows;

pub use centos::{centos_title, is_centos_release, split_versioned, Centos, VersionedName};
pub use custom::Custom;
pub use declared::{
    parse_declared, DeclaredError, DeclaredOs, DeclaredProblem, DeclaredRelease, LicenseKeyPattern,
};
pub use esxi::{esxi_title, Esxi};
pub use license::LicenseKeyError;
pub use rhel::{rhel_title, Rhel};
pub use suse::{suse_title, Suse};
pub use ubuntu::{ReleaseTableError, Ubuntu, UbuntuDate, UbuntuRelease, UbuntuReleaseTable};
pub use ubuntu_core::UbuntuCore;
pub use windows::{
    validate_product_key, windows_hostname, Windows, HOSTNAME_PRESEED, LICENSE_KEY_PRESEED,
    MAX_HOSTNAME,
};

use crate::image::{BootImage, Purpose};
use crate::osinfo::{OsystemInfo, ReleaseInfo};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use thiserror::Error;

/// The names of the built-in drivers; a declared OS may not take one.
pub const BUILT_IN_NAMES: [&str; 8] = [
    "centos",
    "custom",
    "esxi",
    "rhel",
    "suse",
    "ubuntu",
    "ubuntu-core",
    "windows",
];

/// One operating system's rules. Methods taking a `release` may be asked about any name;
/// the registry only asks about releases that `releases` listed.
pub trait OperatingSystem {
    fn name(&self) -> &str;

    fn title(&self) -> String;

    /// The releases offered, given every image the cluster holds (of any OS).
    fn releases(&self, images: &[BootImage]) -> BTreeSet<String>;

    fn release_title(&self, release: &str) -> String;

    /// The default release among `releases` (what `releases` returned).
    fn default_release(&self, releases: &BTreeSet<String>) -> Option<String>;

    /// The default commissioning release among `releases`; none unless one can commission.
    fn default_commissioning_release(&self, releases: &BTreeSet<String>) -> Option<String> {
        let mut commissioning = releases.iter().filter(|r| self.can_commission(r));
        let default = self.default_release(releases);
        match default {
            Some(default) if self.can_commission(&default) => Some(default),
            _ => commissioning.next_back().cloned(),
        }
    }

    fn can_commission(&self, _release: &str) -> bool {
        false
    }

    fn requires_license_key(&self, _release: &str) -> bool {
        false
    }

    /// Whether `release` is past its end of support.
    fn end_of_life(&self, _release: &str) -> bool {
        false
    }

    /// Checks a key's form for `release`. An OS that takes no key refuses every key.
    fn validate_license_key(&self, _release: &str, _key: &str) -> Result<(), LicenseKeyError> {
        Err(LicenseKeyError::NotUsed)
    }

    /// The purposes this OS allows for `image`: at most the purposes its files give.
    fn purposes(&self, image: &BootImage) -> BTreeSet<Purpose>;

    /// OS-specific data for the preseed of a node installing `release`.
    fn preseed_data(&self, _release: &str, _license_key: Option<&str>) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Node-specific preseed data for a preseed of `preseed_type` for the node `hostname`, or
    /// why this OS serves no such preseed (MAAS: `OperatingSystem.compose_preseed`).
    fn compose_preseed(
        &self,
        _preseed_type: &str,
        _hostname: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        Ok(BTreeMap::new())
    }
}

/// What a registry is built from, besides the images.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Ubuntu release titles and LTS status; `UbuntuReleaseTable::built_in()` by default,
    /// or one the cluster parsed from `/usr/share/distro-info/ubuntu.csv`.
    pub ubuntu_releases: UbuntuReleaseTable,
    /// OS definitions the cluster ships. If two share a name, the first is kept.
    pub declared: Vec<DeclaredOs>,
    /// Titles for custom images, by release name (from image metadata).
    pub custom_titles: BTreeMap<String, String>,
    /// Today, for support status (end of life); `None` treats every release as supported.
    /// The cluster passes its clock's date in, so the registry stays a pure value.
    pub today: Option<UbuntuDate>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            ubuntu_releases: UbuntuReleaseTable::built_in(),
            declared: Vec::new(),
            custom_titles: BTreeMap::new(),
            today: None,
        }
    }
}

/// Why the registry could not answer a question about an OS or release.
#[derive(Error, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryError {
    #[error("no such operating system: `{0}`")]
    NoSuchOperatingSystem(String),
    #[error("operating system `{os}` has no release `{release}`")]
    NoSuchRelease { os: String, release: String },
    #[error("invalid license key for {os} {release}: {reason}")]
    InvalidLicenseKey {
        os: String,
        release: String,
        reason: LicenseKeyError,
    },
    #[error("{os} serves no {preseed_type} preseed: {reason}")]
    PreseedNotServed {
        os: String,
        preseed_type: String,
        reason: String,
    },
}

type Driver = Box<dyn OperatingSystem + Send + Sync>;

/// A cluster's operating systems, as its drivers describe them for its current images.
pub struct Registry {
    drivers: BTreeMap<String, Driver>,
    /// Sorted by name; each one's releases sorted by name and never empty.
    osystems: Vec<OsystemInfo>,
    /// The images of listed releases with the purposes their driver allows, sorted.
    images: Vec<BootImage>,
}

impl Registry {
    /// Builds the registry for `images`. Built-in drivers come first; a declared OS whose
    /// name is already taken is ignored (`parse_declared` refuses such names anyway).
    pub fn new(config: &RegistryConfig, images: &[BootImage]) -> Registry {
        let drivers = drivers(config);
        let osystems: Vec<OsystemInfo> = drivers
            .values()
            .filter_map(|driver| describe(driver.as_ref(), images))
            .collect();
        let mut registry = Registry {
            drivers,
            osystems,
            images: Vec::new(),
        };
        registry.images = registry.usable_images(images);
        registry
    }

    /// Every listed OS, sorted by name, releases sorted by name.
    pub fn list(&self) -> Vec<OsystemInfo> {
        self.osystems.clone()
    }

    pub fn get(&self, os: &str) -> Option<&OsystemInfo> {
        self.osystems
            .binary_search_by(|info| info.name.as_str().cmp(os))
            .ok()
            .map(|index| &self.osystems[index])
    }

    pub fn release(&self, os: &str, release: &str) -> Result<&ReleaseInfo, RegistryError> {
        let info = self
            .get(os)
            .ok_or_else(|| RegistryError::NoSuchOperatingSystem(os.to_owned()))?;
        info.releases
            .iter()
            .find(|info| info.name == release)
            .ok_or_else(|| RegistryError::NoSuchRelease {
                os: os.to_owned(),
                release: release.to_owned(),
            })
    }

    pub fn release_title(&self, os: &str, release: &str) -> Result<String, RegistryError> {
        Ok(self.release(os, release)?.title.clone())
    }

    pub fn validate_license_key(
        &self,
        os: &str,
        release: &str,
        key: &str,
    ) -> Result<(), RegistryError> {
        let driver = self.driver_for(os, release)?;
        driver.validate_license_key(release, key).map_err(|reason| {
            RegistryError::InvalidLicenseKey {
                os: os.to_owned(),
                release: release.to_owned(),
                reason,
            }
        })
    }

    pub fn preseed_data(
        &self,
        os: &str,
        release: &str,
        license_key: Option<&str>,
    ) -> Result<BTreeMap<String, String>, RegistryError> {
        Ok(self
            .driver_for(os, release)?
            .preseed_data(release, license_key))
    }

    /// Everything a preseed of `preseed_type` for node `hostname` installing `os`/`release`
    /// needs from the driver: its release data and its node data (the node's wins on a
    /// clash). Refused when the OS serves no such preseed (Windows: `curtin`).
    pub fn compose_preseed(
        &self,
        os: &str,
        release: &str,
        preseed_type: &str,
        hostname: &str,
        license_key: Option<&str>,
    ) -> Result<BTreeMap<String, String>, RegistryError> {
        let driver = self.driver_for(os, release)?;
        let mut data = driver.preseed_data(release, license_key);
        let node = driver
            .compose_preseed(preseed_type, hostname)
            .map_err(|reason| RegistryError::PreseedNotServed {
                os: os.to_owned(),
                preseed_type: preseed_type.to_owned(),
                reason,
            })?;
        data.extend(node);
        Ok(data)
    }

    /// The images this cluster reports: those of listed releases, with the purposes their
    /// driver allows; images left with no purpose, or of an unknown OS, are left out.
    pub fn boot_images(&self) -> &[BootImage] {
        &self.images
    }

    fn driver_for(&self, os: &str, release: &str) -> Result<&Driver, RegistryError> {
        self.release(os, release)?;
        self.drivers
            .get(os)
            .ok_or_else(|| RegistryError::NoSuchOperatingSystem(os.to_owned()))
    }

    fn usable_images(&self, images: &[BootImage]) -> Vec<BootImage> {
        let mut usable: Vec<BootImage> = images
            .iter()
            .filter(|image| self.release(&image.osystem, &image.release).is_ok())
            .filter_map(|image| self.restricted(image))
            .collect();
        usable.sort();
        usable.dedup();
        usable
    }

    fn restricted(&self, image: &BootImage) -> Option<BootImage> {
        let purposes = self.drivers.get(&image.osystem)?.purposes(image);
        (!purposes.is_empty()).then(|| BootImage {
            purposes,
            ..image.clone()
        })
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("osystems", &self.osystems)
            .field("images", &self.images)
            .finish()
    }
}

fn drivers(config: &RegistryConfig) -> BTreeMap<String, Driver> {
    let built_in: [Driver; 8] = [
        Box::new(Centos),
        Box::new(Custom::new(config.custom_titles.clone())),
        Box::new(Esxi),
        Box::new(Rhel),
        Box::new(Suse),
        Box::new(Ubuntu::new(config.ubuntu_releases.clone()).on(config.today)),
        Box::new(UbuntuCore::new(config.custom_titles.clone())),
        Box::new(Windows),
    ];
    let mut drivers = BTreeMap::new();
    let declared = config
        .declared
        .iter()
        .map(|os| Box::new(os.clone()) as Driver);
    for driver in built_in.into_iter().chain(declared) {
        drivers.entry(driver.name().to_owned()).or_insert(driver);
    }
    drivers
}

fn describe(driver: &dyn OperatingSystem, images: &[BootImage]) -> Option<OsystemInfo> {
    let names = driver.releases(images);
    if names.is_empty() {
        return None;
    }
    let listed = |release: Option<String>| release.filter(|name| names.contains(name));
    Some(OsystemInfo {
        name: driver.name().to_owned(),
        title: driver.title(),
        releases: names
            .iter()
            .map(|name| describe_release(driver, name))
            .collect(),
        default_release: listed(driver.default_release(&names)),
        default_commissioning_release: listed(driver.default_commissioning_release(&names)),
    })
}

fn describe_release(driver: &dyn OperatingSystem, release: &str) -> ReleaseInfo {
    ReleaseInfo {
        name: release.to_owned(),
        title: driver.release_title(release),
        requires_license_key: driver.requires_license_key(release),
        can_commission: driver.can_commission(release),
        end_of_life: driver.end_of_life(release),
    }
}

/// The image's purposes, less commissioning unless the OS can commission its release.
fn netboot_purposes(os: &dyn OperatingSystem, image: &BootImage) -> BTreeSet<Purpose> {
    let mut purposes = image.purposes.clone();
    if !os.can_commission(&image.release) {
        purposes.remove(&Purpose::Commissioning);
    }
    purposes
}

/// The image's purposes that are among `allowed`.
fn only_purposes(image: &BootImage, allowed: &[Purpose]) -> BTreeSet<Purpose> {
    let allowed: BTreeSet<Purpose> = allowed.iter().copied().collect();
    image.purposes.intersection(&allowed).copied().collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::image::Purpose::*;

    /// An image at `"<osystem>/<arch>/<release>"` with the given purposes.
    pub(crate) fn image_with(path: &str, purposes: &[Purpose]) -> BootImage {
        let parts: Vec<&str> = path.split('/').collect();
        BootImage {
            osystem: parts[0].into(),
            arch: parts[1].into(),
            subarch: "generic".into(),
            release: parts[2].into(),
            label: "stable".into(),
            purposes: purposes.iter().copied().collect(),
        }
    }

    /// Images at `"<osystem>/<arch>/<release>"`, each good for every purpose.
    pub(crate) fn images(paths: &[&str]) -> Vec<BootImage> {
        paths
            .iter()
            .map(|path| image_with(path, &Purpose::ALL))
            .collect()
    }

    fn registry(paths: &[&str]) -> Registry {
        Registry::new(&RegistryConfig::default(), &images(paths))
    }

    fn names(registry: &Registry) -> Vec<String> {
        registry.list().into_iter().map(|os| os.name).collect()
    }

    #[test]
    fn lists_only_oses_with_releases_sorted_by_name() {
        assert_eq!(names(&registry(&[])), ["centos", "windows"]);
        let full = registry(&[
            "ubuntu/amd64/noble",
            "custom/amd64/gold",
            "ubuntu/amd64/jammy",
        ]);
        assert_eq!(names(&full), ["centos", "custom", "ubuntu", "windows"]);
        let ubuntu = full.get("ubuntu").cloned();
        let releases: Vec<String> = ubuntu
            .iter()
            .flat_map(|os| &os.releases)
            .map(|r| r.name.clone())
            .collect();
        assert_eq!(releases, ["jammy", "noble"]);
    }

    #[test]
    fn ubuntu_entry_carries_defaults_and_release_facts() {
        let registry = registry(&["ubuntu/amd64/jammy", "ubuntu/amd64/oracular"]);
        let expected = OsystemInfo {
            name: "ubuntu".into(),
            title: "Ubuntu".into(),
            releases: vec![
                ReleaseInfo {
                    name: "jammy".into(),
                    title: "Ubuntu 22.04 LTS \"Jammy Jellyfish\"".into(),
                    requires_license_key: false,
                    can_commission: true,
                    end_of_life: false,
                },
                ReleaseInfo {
                    name: "oracular".into(),
                    title: "Ubuntu 24.10 \"Oracular Oriole\"".into(),
                    requires_license_key: false,
                    can_commission: false,
                    end_of_life: false,
                },
            ],
            default_release: Some("jammy".into()),
            default_commissioning_release: Some("jammy".into()),
        };
        assert_eq!(registry.get("ubuntu"), Some(&expected));
    }

    #[test]
    fn release_title_names_the_missing_os_or_release() {
        let registry = registry(&["ubuntu/amd64/jammy"]);
        assert_eq!(
            registry.release_title("centos", "centos7"),
            Ok("CentOS 7".to_owned())
        );
        let no_os = registry.release_title("plan9", "4");
        assert_eq!(
            no_os,
            Err(RegistryError::NoSuchOperatingSystem("plan9".into()))
        );
        let no_release = registry.release_title("ubuntu", "noble").unwrap_err();
        assert_eq!(
            no_release.to_string(),
            "operating system `ubuntu` has no release `noble`"
        );
    }

    #[test]
    fn license_keys_are_validated_by_the_os_driver() {
        let registry = registry(&["ubuntu/amd64/jammy"]);
        let good = "ABCDE-12345-FGHIJ-67890-KLMNO";
        assert_eq!(
            registry.validate_license_key("windows", "win2019", good),
            Ok(())
        );
        let bad = registry
            .validate_license_key("windows", "win2019", "ABCDE")
            .unwrap_err();
        assert_eq!(
            bad.to_string(),
            "invalid license key for windows win2019: expected 5 dash-separated groups, found 1"
        );
        let unused = registry.validate_license_key("ubuntu", "jammy", good);
        assert!(matches!(
            unused,
            Err(RegistryError::InvalidLicenseKey {
                reason: LicenseKeyError::NotUsed,
                ..
            })
        ));
        let unknown = registry.validate_license_key("windows", "win95", good);
        assert!(matches!(unknown, Err(RegistryError::NoSuchRelease { .. })));
    }

    #[test]
    fn reported_images_carry_only_the_purposes_their_os_allows() {
        let registry = registry(&[
            "ubuntu/amd64/jammy",
            "ubuntu/amd64/oracular",
            "centos/amd64/centos7",
            "centos/amd64/centos6",
            "plan9/amd64/4",
        ]);
        let reported: Vec<(String, BTreeSet<Purpose>)> = registry
            .boot_images()
            .iter()
            .map(|image| (image.release.clone(), image.purposes.clone()))
            .collect();
        // centos6 counts, as in MAAS: any `centos<version>` image is CentOS.
        let expected = vec![
            ("centos6".to_owned(), [Xinstall].into()),
            ("centos7".to_owned(), [Xinstall].into()),
            ("jammy".to_owned(), Purpose::ALL.into()),
            ("oracular".to_owned(), [Install, Xinstall, Diskless].into()),
        ];
        assert_eq!(reported, expected);
    }

    #[test]
    fn declared_oses_are_listed_as_declared_and_cannot_shadow_built_ins() {
        let text = "[[os]]\nname = \"acme\"\ntitle = \"ACME\"\ndefault_release = \"a1\"\n[[os.release]]\nname = \"a1\"\ntitle = \"ACME 1\"\n";
        let acme = parse_declared("acme.toml", text).unwrap_or_default();
        assert_eq!(acme.len(), 1);
        let mut shadow = acme[0].clone();
        shadow.name = "ubuntu".into();
        let config = RegistryConfig {
            declared: vec![acme[0].clone(), shadow],
            ..RegistryConfig::default()
        };
        let registry = Registry::new(&config, &[]);
        assert_eq!(names(&registry), ["acme", "centos", "windows"]);
        assert_eq!(
            registry.release_title("acme", "a1"),
            Ok("ACME 1".to_owned())
        );
        let default = registry
            .get("acme")
            .and_then(|os| os.default_release.clone());
        assert_eq!(default.as_deref(), Some("a1"));
    }

    #[test]
    fn preseed_data_comes_from_the_driver() {
        let registry = registry(&[]);
        let data =
            registry.preseed_data("windows", "win2019", Some("abcde-12345-fghij-67890-klmno"));
        let key = data
            .ok()
            .and_then(|data| data.get(LICENSE_KEY_PRESEED).cloned());
        assert_eq!(key.as_deref(), Some("ABCDE-12345-FGHIJ-67890-KLMNO"));
        assert!(registry.preseed_data("ubuntu", "jammy", None).is_err());
    }

    /// Mirrors MAAS `WindowsOS.compose_preseed`: no curtin preseed; the hostname cut to 15.
    #[test]
    fn windows_preseeds_refuse_curtin_and_cut_the_hostname() {
        let registry = registry(&[]);
        let data = registry.compose_preseed(
            "windows",
            "win2019",
            "windows",
            "a-very-long-hostname.example",
            None,
        );
        let hostname = data.ok().and_then(|d| d.get(HOSTNAME_PRESEED).cloned());
        assert_eq!(hostname.as_deref(), Some("a-very-long-hos"));
        let curtin = registry.compose_preseed("windows", "win2019", "curtin", "n1", None);
        assert!(matches!(
            curtin,
            Err(RegistryError::PreseedNotServed { .. })
        ));
        let centos = registry.compose_preseed("centos", "centos7", "curtin", "n1", None);
        assert_eq!(centos, Ok(BTreeMap::new()));
    }
}
