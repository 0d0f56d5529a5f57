//! A generated MAAS-like image cache, scanned end to end: a storage directory holding a
//! `cache/` of downloaded files, a dated snapshot whose image directories link into it, the
//! `current` symlink MAAS points at the latest snapshot, `maas.meta`, and partial downloads.
//! (MAAS: `provisioningserver/import_images/boot_resources.py` writes this layout and
//! `provisioningserver/boot/tftppath.py::list_boot_images` reads it.)

#![cfg(unix)]

use osmesh_core::image::{read_maas_meta, ImageDetail, SkipReason};
use osmesh_core::os::{Registry, RegistryConfig};
use osmesh_core::{scan_boot_resources, Purpose};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

const SNAPSHOT: &str = "snapshot-20240101-000000";

const META: &str = r#"{
  "ubuntu": {"amd64": {
    "ga-24.04": {"generic": {"noble": {"20240101": {
      "subarches": "generic,hwe-22.04,ga-24.04", "kflavor": "generic",
      "release_title": "24.04 LTS", "release_codename": "Noble Numbat"}}}},
    "hwe-22.04-lowlatency": {"lowlatency": {"jammy": {"20240101": {
      "subarches": "generic,hwe-22.04", "kflavor": "lowlatency"}}}}
  }},
  "centos": {"amd64": {"generic": {"generic": {"centos71-custom": {"20240101": {}}}}}},
  "custom": {"amd64": {"generic": {"generic": {"gold": {"uploaded": {"title": "Golden Image v3"}}}}}},
  "windows": {"amd64": {"generic": {"generic": {"win2016dc-core": {"uploaded": {}}}}}}
}"#;

/// Writes `file` in the cache and links it into the snapshot's `dir`.
fn cached(storage: &Path, dir: &str, file: &str) {
    let cache = storage.join("cache");
    fs::create_dir_all(&cache).unwrap();
    let blob = cache.join(format!("{}-{file}", dir.replace('/', "_")));
    fs::write(&blob, b"x").unwrap();
    let target = storage.join(SNAPSHOT).join(dir);
    fs::create_dir_all(&target).unwrap();
    symlink(&blob, target.join(file)).unwrap();
}

fn generate(storage: &Path) {
    for file in ["boot-kernel", "boot-initrd", "squashfs"] {
        cached(storage, "ubuntu/amd64/ga-24.04/noble/20240101", file);
        cached(
            storage,
            "ubuntu/amd64/hwe-22.04-lowlatency/jammy/20240101",
            file,
        );
    }
    cached(
        storage,
        "centos/amd64/generic/centos71-custom/20240101",
        "root-tgz",
    );
    cached(storage, "custom/amd64/generic/gold/uploaded", "root-dd.xz");
    cached(
        storage,
        "windows/amd64/generic/win2016dc-core/uploaded",
        "pxeboot.0",
    );
    cached(
        storage,
        "windows/amd64/generic/win2016dc-core/uploaded",
        "root-dd",
    );
    // A download in progress: a hidden release directory and a hidden file beside an image.
    let partial = storage
        .join(SNAPSHOT)
        .join("ubuntu/amd64/ga-24.04/.oracular-partial/x");
    fs::create_dir_all(&partial).unwrap();
    fs::write(partial.join("boot-kernel"), b"x").unwrap();
    let noble = storage
        .join(SNAPSHOT)
        .join("ubuntu/amd64/ga-24.04/noble/20240101");
    fs::write(noble.join(".squashfs.tmp"), b"x").unwrap();
    fs::write(storage.join(SNAPSHOT).join("maas.meta"), META).unwrap();
    symlink(storage.join(SNAPSHOT), storage.join("current")).unwrap();
}

#[test]
fn a_maas_image_cache_is_read_end_to_end() {
    let storage = tempfile::tempdir().unwrap();
    generate(storage.path());
    let current = storage.path().join("current");

    let report = scan_boot_resources(&current);
    let paths: Vec<String> = report
        .images
        .iter()
        .map(|i| {
            format!(
                "{}/{}/{}/{}/{}",
                i.osystem, i.arch, i.subarch, i.release, i.label
            )
        })
        .collect();
    assert_eq!(
        paths,
        [
            "centos/amd64/generic/centos71-custom/20240101",
            "custom/amd64/generic/gold/uploaded",
            "ubuntu/amd64/ga-24.04/noble/20240101",
            "ubuntu/amd64/hwe-22.04-lowlatency/jammy/20240101",
            "windows/amd64/generic/win2016dc-core/uploaded",
        ]
    );
    let hidden: Vec<&str> = report
        .skipped
        .iter()
        .filter(|s| s.reason == SkipReason::Hidden)
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(hidden, ["ubuntu/amd64/ga-24.04/.oracular-partial"]);

    let meta = match read_maas_meta(&current) {
        Some(Ok(meta)) => meta,
        other => panic!("maas.meta should parse: {other:?}"),
    };
    let config = RegistryConfig {
        custom_titles: meta.titles(&["custom", "ubuntu-core"]),
        ..RegistryConfig::default()
    };
    let registry = Registry::new(&config, &report.images);
    let title = |os: &str, release: &str| registry.release_title(os, release).ok();
    assert_eq!(title("custom", "gold").as_deref(), Some("Golden Image v3"));
    assert_eq!(
        title("centos", "centos71-custom").as_deref(),
        Some("CentOS 7.1 custom")
    );
    assert_eq!(
        title("windows", "win2016dc-core").as_deref(),
        Some("Windows \"Server 2016 Datacenter Core\"")
    );
    assert_eq!(
        title("ubuntu", "noble").as_deref(),
        Some("Ubuntu 24.04 LTS \"Noble Numbat\"")
    );

    let details: Vec<ImageDetail> = registry
        .boot_images()
        .iter()
        .map(|image| ImageDetail::new(image, meta.get(image)))
        .collect();
    let jammy = details.iter().find(|d| d.release == "jammy");
    let jammy = jammy.map(|d| (d.kflavor.as_str(), d.subarches.clone(), d.purposes.clone()));
    assert_eq!(
        jammy,
        Some((
            "lowlatency",
            vec!["generic".to_owned(), "hwe-22.04".to_owned()],
            Purpose::ALL.into()
        ))
    );
    let windows = details.iter().find(|d| d.osystem == "windows");
    assert_eq!(
        windows.map(|d| d.purposes.clone()),
        Some([Purpose::Install, Purpose::Xinstall].into())
    );
}
