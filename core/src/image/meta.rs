//! `maas.meta`: the simplestreams product metadata MAAS writes at the root of a boot-resource
//! snapshot (`<storage>/current/maas.meta`), and the per-image record osmesh derives from it.
//!
//! The file is JSON nested by image path, `os → arch → subarch → kflavor → release → label →
//! {fields}` (MAAS's `BootImageMapping.dump_json`; files written before kernel flavours lack the
//! `kflavor` level, which is then derived from the subarch as MAAS's `extract_metadata` does:
//! the third `-`-separated part, else `generic`). Of the fields osmesh reads `subarches` (a
//! comma-separated list), `kflavor` and a title (`title`, `release_title`, or for Ubuntu
//! `release_title` + `release_codename`). Anything else is ignored; a file that is not such JSON
//! is refused as a whole with the reason, never half-read.

use super::{BootImage, Purpose};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// The file name MAAS gives the metadata, at the snapshot root.
pub const MAAS_META: &str = "maas.meta";

/// The largest `maas.meta` read; MAAS's own files are a few hundred KiB.
pub const MAX_META_BYTES: u64 = 16 << 20;

/// What `maas.meta` says about one image directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub kflavor: Option<String>,
    /// The subarchitectures the image boots (`generic`, `hwe-22.04`, …), as listed.
    pub subarches: Vec<String>,
    pub title: Option<String>,
}

/// `(osystem, arch, subarch, release, label)`: the directory an entry describes.
pub type ImagePath = (String, String, String, String, String);

/// The parsed `maas.meta`: one entry per image directory it describes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaasMeta {
    pub images: BTreeMap<ImagePath, ImageMeta>,
}

/// Why a `maas.meta` was refused.
#[derive(Error, Clone, Debug, PartialEq, Eq)]
pub enum MetaError {
    #[error("maas.meta is not JSON: {0}")]
    NotJson(String),
    #[error("maas.meta: {path}: {problem}")]
    BadShape { path: String, problem: String },
}

/// One image as the API and `osmesh images` show it: where it is and what it serves.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageDetail {
    pub osystem: String,
    pub release: String,
    pub arch: String,
    pub subarch: String,
    /// The kernel flavour: from `maas.meta` when known, else derived from the subarch.
    pub kflavor: String,
    pub label: String,
    pub purposes: BTreeSet<Purpose>,
    /// The subarchitectures it boots, from `maas.meta`; empty when unknown.
    pub subarches: Vec<String>,
}

/// MAAS's kernel flavour of a subarch (`extract_metadata`): `hwe-22.04-lowlatency` →
/// `lowlatency`; anything with fewer than three parts → `generic`.
pub fn kflavor_of(subarch: &str) -> String {
    subarch.split('-').nth(2).unwrap_or("generic").to_owned()
}

impl ImageDetail {
    /// The record for `image`, with what `meta` knows about it.
    pub fn new(image: &BootImage, meta: Option<&ImageMeta>) -> ImageDetail {
        ImageDetail {
            osystem: image.osystem.clone(),
            release: image.release.clone(),
            arch: image.arch.clone(),
            subarch: image.subarch.clone(),
            kflavor: meta
                .and_then(|m| m.kflavor.clone())
                .unwrap_or_else(|| kflavor_of(&image.subarch)),
            label: image.label.clone(),
            purposes: image.purposes.clone(),
            subarches: meta.map(|m| m.subarches.clone()).unwrap_or_default(),
        }
    }
}

impl MaasMeta {
    /// Parses the text of a `maas.meta` file.
    pub fn parse(text: &str) -> Result<MaasMeta, MetaError> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| MetaError::NotJson(e.to_string()))?;
        let mut meta = MaasMeta::default();
        let mut path = Vec::new();
        walk(&root, &mut path, &mut meta)?;
        Ok(meta)
    }

    /// What the file says about `image`'s directory.
    pub fn get(&self, image: &BootImage) -> Option<&ImageMeta> {
        self.images.get(&(
            image.osystem.clone(),
            image.arch.clone(),
            image.subarch.clone(),
            image.release.clone(),
            image.label.clone(),
        ))
    }

    /// Release titles the file gives, by release, for the drivers that take titles from
    /// metadata (custom images, Ubuntu Core). The first title met for a release wins.
    pub fn titles(&self, osystems: &[&str]) -> BTreeMap<String, String> {
        let mut titles = BTreeMap::new();
        for ((os, _, _, release, _), meta) in &self.images {
            if let (true, Some(title)) = (osystems.contains(&os.as_str()), &meta.title) {
                titles
                    .entry(release.clone())
                    .or_insert_with(|| title.clone());
            }
        }
        titles
    }
}

/// How deep the nesting may go: 6 levels with `kflavor`, 5 without.
const MAX_LEVELS: usize = 6;

fn walk<'a>(
    node: &'a Value,
    path: &mut Vec<&'a str>,
    meta: &mut MaasMeta,
) -> Result<(), MetaError> {
    let Value::Object(map) = node else {
        return Err(bad(path, "expected an object"));
    };
    if is_leaf(map) {
        return leaf(map, path, meta);
    }
    if path.len() >= MAX_LEVELS {
        return Err(bad(
            path,
            "nested deeper than os/arch/subarch/kflavor/release/label",
        ));
    }
    for (key, child) in map {
        path.push(key);
        walk(child, path, meta)?;
        path.pop();
    }
    Ok(())
}

/// A resource's fields, as opposed to a level of the path: any value that is not an object
/// (or an empty object, which describes nothing).
fn is_leaf(map: &Map<String, Value>) -> bool {
    map.is_empty() || map.values().any(|v| !v.is_object())
}

fn leaf(map: &Map<String, Value>, path: &[&str], meta: &mut MaasMeta) -> Result<(), MetaError> {
    let (os, arch, subarch, kflavor, release, label) = match path {
        [os, arch, subarch, kflavor, release, label] => {
            (os, arch, subarch, Some(*kflavor), release, label)
        }
        [os, arch, subarch, release, label] => (os, arch, subarch, None, release, label),
        [] if map.is_empty() => return Ok(()),
        _ => {
            return Err(bad(
                path,
                "an image entry must sit at os/arch/subarch/[kflavor/]release/label",
            ))
        }
    };
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    let subarches = text("subarches")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let title = text("title").or_else(|| match (text("release_title"), text("release_codename")) {
        (Some(version), Some(codename)) if *os == "ubuntu" => {
            Some(format!("Ubuntu {version} \"{codename}\""))
        }
        (Some(title), _) => Some(title),
        _ => None,
    });
    let entry = ImageMeta {
        kflavor: text("kflavor").or_else(|| kflavor.map(str::to_owned)),
        subarches,
        title,
    };
    let key = (
        os.to_string(),
        arch.to_string(),
        subarch.to_string(),
        release.to_string(),
        label.to_string(),
    );
    meta.images.insert(key, entry);
    Ok(())
}

fn bad(path: &[&str], problem: &str) -> MetaError {
    MetaError::BadShape {
        path: if path.is_empty() {
            "(root)".into()
        } else {
            path.join("/")
        },
        problem: problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = r#"{
      "ubuntu": {"amd64": {
        "ga-22.04": {"generic": {"jammy": {"20240101": {
          "subarches": "generic,hwe-p,hwe-q,ga-22.04",
          "release_title": "22.04 LTS", "release_codename": "Jammy Jellyfish",
          "kflavor": "generic", "content_id": "com.ubuntu.maas:v3:download.json"}}}},
        "hwe-22.04-lowlatency": {"lowlatency": {"jammy": {"20240101": {
          "subarches": "generic", "kflavor": "lowlatency"}}}}
      }},
      "custom": {"amd64": {"generic": {"gold": {"uploaded": {"title": "Golden Image v3"}}}}}
    }"#;

    /// Mirrors MAAS `extract_metadata`'s kernel flavour rule.
    #[test]
    fn kflavor_comes_from_the_third_part_of_the_subarch() {
        let table = [
            ("generic", "generic"),
            ("ga-22.04", "generic"),
            ("hwe-22.04-lowlatency", "lowlatency"),
            ("hwe-20.04-edge-64k", "edge"),
        ];
        for (subarch, kflavor) in table {
            assert_eq!(kflavor_of(subarch), kflavor, "{subarch}");
        }
    }

    #[test]
    fn entries_with_and_without_kflavor_levels_are_read() {
        let meta = MaasMeta::parse(META).unwrap_or_default();
        assert_eq!(meta.images.len(), 3);
        let jammy = meta.images.get(&(
            "ubuntu".into(),
            "amd64".into(),
            "ga-22.04".into(),
            "jammy".into(),
            "20240101".into(),
        ));
        let expected = ImageMeta {
            kflavor: Some("generic".into()),
            subarches: vec![
                "generic".into(),
                "hwe-p".into(),
                "hwe-q".into(),
                "ga-22.04".into(),
            ],
            title: Some("Ubuntu 22.04 LTS \"Jammy Jellyfish\"".into()),
        };
        assert_eq!(jammy, Some(&expected));
        assert_eq!(
            meta.titles(&["custom"]),
            [("gold".to_owned(), "Golden Image v3".to_owned())].into()
        );
        let legacy = MaasMeta::parse(
            r#"{"ubuntu": {"arm64": {"generic": {"focal": {"stable": {"subarches": "generic"}}}}}}"#,
        )
        .unwrap_or_default();
        assert_eq!(legacy.images.len(), 1);
    }

    #[test]
    fn malformed_files_are_refused_with_the_reason() {
        let table: &[(&str, &str)] = &[
            ("not json", "not JSON"),
            ("[1, 2]", "(root): expected an object"),
            (
                r#"{"ubuntu": {"amd64": {"x": 1}}}"#,
                "ubuntu/amd64: an image entry",
            ),
            (
                r#"{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}"#,
                "nested deeper",
            ),
        ];
        for (text, reason) in table {
            let err = MaasMeta::parse(text).map(|_| ()).map_err(|e| e.to_string());
            assert!(
                err.as_ref().is_err_and(|e| e.contains(reason)),
                "{text}: {err:?}"
            );
        }
        assert_eq!(MaasMeta::parse("{}"), Ok(MaasMeta::default()));
    }
}
