//! Boot images: what a cluster holds on disk, and what each image can be used for.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// What a boot image can be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Commissioning,
    Install,
    Xinstall,
    Diskless,
}

impl Purpose {
    pub const ALL: [Purpose; 4] = [
        Purpose::Commissioning,
        Purpose::Install,
        Purpose::Xinstall,
        Purpose::Diskless,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Commissioning => "commissioning",
            Purpose::Install => "install",
            Purpose::Xinstall => "xinstall",
            Purpose::Diskless => "diskless",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One boot image found at `<root>/<osystem>/<arch>/<subarch>/<release>/<label>/`.
///
/// Invariant: `purposes` is never empty; a directory whose files give no purpose is not an
/// image (the scanner reports it as skipped instead).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BootImage {
    pub osystem: String,
    pub arch: String,
    pub subarch: String,
    pub release: String,
    pub label: String,
    /// Decoded leniently: a purpose this build does not know (a newer cluster's) is skipped,
    /// so it costs that purpose, not the whole report; the region drops an image left with
    /// none (`actors::region::edge`).
    #[serde(deserialize_with = "known_purposes")]
    pub purposes: BTreeSet<Purpose>,
}

/// The purposes among `names` that this build knows.
fn known_purposes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeSet<Purpose>, D::Error> {
    let names: Vec<String> = Vec::deserialize(d)?;
    Ok(names
        .iter()
        .filter_map(|name| Purpose::ALL.into_iter().find(|p| p.as_str() == name))
        .collect())
}

mod layout;
mod meta;
mod scan;

pub use meta::{
    kflavor_of, ImageDetail, ImageMeta, ImagePath, MaasMeta, MetaError, MAAS_META, MAX_META_BYTES,
};

pub use layout::{parse_label_dir, purposes_from_files, SkipReason, Skipped, LABEL_DEPTH};
pub use scan::{read_maas_meta, scan_boot_resources, ScanReport};
