//! The one piece of I/O in core: a thin walk over a boot-resource tree that hands each
//! label directory to the pure parser and reports everything else it sees as skipped.
//!
//! Symlinks: the root itself is followed (MAAS's `current` is a symlink). Below it, a
//! symlink to a directory is never followed — it is reported as skipped — so the walk stays
//! inside the tree and cannot loop. A symlink inside a label directory counts as a file if
//! it resolves to a regular file (MAAS snapshots link files from a cache); a dangling one is
//! reported as unreadable.
//!
//! Hidden entries (names starting with `.`, such as MAAS's `.noble-partial` downloads) are
//! never read: a hidden directory is reported as skipped, a hidden file in a label directory
//! (`.boot-kernel.tmp`) gives no purpose.
//!
//! The walk never panics and never fails as a whole: whatever cannot be read is reported.

use super::layout::{display_path, parse_label_dir, SkipReason, Skipped, LABEL_DEPTH};
use super::meta::{MaasMeta, MetaError, MAAS_META, MAX_META_BYTES};
use super::BootImage;
use serde::{Deserialize, Serialize};
use std::ffi::{OsStr, OsString};
use std::fs::{self, DirEntry};
use std::path::Path;

/// What a scan of a boot-resource tree found. Both lists are sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    pub images: Vec<BootImage>,
    pub skipped: Vec<Skipped>,
}

/// Walks `<root>/<osystem>/<arch>/<subarch>/<release>/<label>/` and reports the images found
/// and every path that is not one. An unreadable root is reported as a skipped `.`.
pub fn scan_boot_resources(root: &Path) -> ScanReport {
    let mut report = ScanReport::default();
    visit_directory(root, &mut Vec::new(), &mut report);
    report.images.sort();
    report.skipped.sort();
    report
}

/// What one directory entry is, symlinks resolved the way the module comment says.
enum EntryKind {
    Directory,
    File,
    SymlinkedDirectory,
    /// Sockets, FIFOs, devices: never part of an image, not worth a report.
    Other,
}

fn visit_directory(dir: &Path, components: &mut Vec<OsString>, report: &mut ScanReport) {
    let entries = match read_entries(dir) {
        Ok(entries) => entries,
        Err(error) => return skip(report, components, unreadable(&error)),
    };
    if components.len() == LABEL_DEPTH {
        return visit_label_dir(&entries, components, report);
    }
    if entries.is_empty() && !components.is_empty() {
        let depth = components.len();
        return skip(report, components, SkipReason::WrongDepth { depth });
    }
    for entry in entries {
        visit_above_label(&entry, components, report);
    }
}

fn visit_above_label(entry: &DirEntry, components: &mut Vec<OsString>, report: &mut ScanReport) {
    components.push(entry.file_name());
    match classify(entry) {
        _ if entry.file_name().to_str().is_none() => {
            skip(report, components, SkipReason::NonUtf8Name)
        }
        _ if is_hidden(entry) => skip(report, components, SkipReason::Hidden),
        Ok(EntryKind::Directory) => visit_directory(&entry.path(), components, report),
        Ok(EntryKind::File) => {
            let depth = components.len();
            skip(report, components, SkipReason::WrongDepth { depth })
        }
        Ok(EntryKind::SymlinkedDirectory) => {
            skip(report, components, SkipReason::SymlinkedDirectory)
        }
        Ok(EntryKind::Other) => {}
        Err(error) => skip(report, components, unreadable(&error)),
    }
    components.pop();
}

fn visit_label_dir(entries: &[DirEntry], components: &mut Vec<OsString>, report: &mut ScanReport) {
    let mut files = Vec::new();
    for entry in entries {
        components.push(entry.file_name());
        match classify(entry) {
            _ if entry.file_name().to_str().is_none() => {
                skip(report, components, SkipReason::NonUtf8Name)
            }
            Ok(EntryKind::File) if is_hidden(entry) => {}
            _ if is_hidden(entry) => skip(report, components, SkipReason::Hidden),
            Ok(EntryKind::File) => files.push(entry.file_name()),
            Ok(EntryKind::Directory) => {
                let depth = components.len();
                skip(report, components, SkipReason::WrongDepth { depth })
            }
            Ok(EntryKind::SymlinkedDirectory) => {
                skip(report, components, SkipReason::SymlinkedDirectory)
            }
            Ok(EntryKind::Other) => {}
            Err(error) => skip(report, components, unreadable(&error)),
        }
        components.pop();
    }
    let components: Vec<&OsStr> = components.iter().map(OsString::as_os_str).collect();
    let files: Vec<&OsStr> = files.iter().map(OsString::as_os_str).collect();
    match parse_label_dir(&components, &files) {
        Ok(image) => report.images.push(image),
        Err(skipped) => report.skipped.push(skipped),
    }
}

/// Reads `<root>/maas.meta` when present: `None` when there is no such file, else the parse
/// (a file over [`MAX_META_BYTES`] or unreadable is refused, not read).
pub fn read_maas_meta(root: &Path) -> Option<Result<MaasMeta, MetaError>> {
    use std::io::Read;
    let file = fs::File::open(root.join(MAAS_META)).ok()?;
    let mut text = String::new();
    let read = file
        .take(MAX_META_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| MetaError::NotJson(e.to_string()));
    Some(read.and_then(|len| {
        if len as u64 > MAX_META_BYTES {
            return Err(MetaError::NotJson(format!(
                "larger than {MAX_META_BYTES} bytes, not read"
            )));
        }
        MaasMeta::parse(&text)
    }))
}

fn is_hidden(entry: &DirEntry) -> bool {
    entry.file_name().as_encoded_bytes().starts_with(b".")
}

fn read_entries(dir: &Path) -> std::io::Result<Vec<DirEntry>> {
    fs::read_dir(dir)?.collect()
}

fn classify(entry: &DirEntry) -> std::io::Result<EntryKind> {
    let file_type = entry.file_type()?;
    if file_type.is_dir() {
        return Ok(EntryKind::Directory);
    }
    if file_type.is_file() {
        return Ok(EntryKind::File);
    }
    if !file_type.is_symlink() {
        return Ok(EntryKind::Other);
    }
    let target = fs::metadata(entry.path())?;
    Ok(if target.is_dir() {
        EntryKind::SymlinkedDirectory
    } else if target.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    })
}

fn skip(report: &mut ScanReport, components: &[OsString], reason: SkipReason) {
    let parts: Vec<&OsStr> = components.iter().map(OsString::as_os_str).collect();
    let path = if parts.is_empty() {
        ".".to_owned()
    } else {
        display_path(&parts)
    };
    report.skipped.push(Skipped { path, reason });
}

fn unreadable(error: &std::io::Error) -> SkipReason {
    SkipReason::Unreadable {
        error: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Purpose::{self, *};
    use std::collections::BTreeSet;
    use tempfile::TempDir;

    const JAMMY: &str = "ubuntu/amd64/generic/jammy/stable";

    fn tree(files: &[&str]) -> TempDir {
        let root = tempfile::tempdir().unwrap();
        for file in files {
            let path = root.path().join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, b"x").unwrap();
        }
        root
    }

    fn image(path: &str, purposes: &[Purpose]) -> BootImage {
        let parts: Vec<&str> = path.split('/').collect();
        BootImage {
            osystem: parts[0].into(),
            arch: parts[1].into(),
            subarch: parts[2].into(),
            release: parts[3].into(),
            label: parts[4].into(),
            purposes: purposes.iter().copied().collect::<BTreeSet<_>>(),
        }
    }

    fn skipped(path: &str, reason: SkipReason) -> Skipped {
        Skipped {
            path: path.into(),
            reason,
        }
    }

    #[test]
    fn finds_images_sorted_across_osystems() {
        let root = tree(&[
            "ubuntu/amd64/generic/noble/stable/boot-kernel",
            "ubuntu/amd64/generic/noble/stable/boot-initrd",
            "ubuntu/amd64/generic/noble/stable/squashfs",
            "centos/amd64/generic/centos7/20240101/root-tgz",
            "windows/amd64/generic/win2019/1/pxeboot.0",
            "windows/amd64/generic/win2019/1/root-dd.gz",
        ]);
        let report = scan_boot_resources(root.path());
        let expected = vec![
            image("centos/amd64/generic/centos7/20240101", &[Xinstall]),
            image(
                "ubuntu/amd64/generic/noble/stable",
                &[Commissioning, Install, Xinstall, Diskless],
            ),
            image("windows/amd64/generic/win2019/1", &[Install, Xinstall]),
        ];
        assert_eq!(report.images, expected);
        assert_eq!(report.skipped, vec![]);
    }

    #[test]
    fn missing_initrd_is_skipped_as_no_purpose() {
        let root = tree(&[&format!("{JAMMY}/boot-kernel")]);
        let report = scan_boot_resources(root.path());
        assert_eq!(report.images, vec![]);
        assert_eq!(report.skipped, vec![skipped(JAMMY, SkipReason::NoPurpose)]);
    }

    #[test]
    fn extra_depth_and_stray_files_are_skipped_but_the_image_stays() {
        let root = tree(&[
            &format!("{JAMMY}/root-tgz"),
            &format!("{JAMMY}/nested/boot-kernel"),
            "ubuntu/amd64/README",
        ]);
        fs::create_dir_all(root.path().join("centos/amd64")).unwrap();
        let report = scan_boot_resources(root.path());
        assert_eq!(report.images, vec![image(JAMMY, &[Xinstall])]);
        let expected = vec![
            skipped("centos/amd64", SkipReason::WrongDepth { depth: 2 }),
            skipped("ubuntu/amd64/README", SkipReason::WrongDepth { depth: 3 }),
            skipped(
                "ubuntu/amd64/generic/jammy/stable/nested",
                SkipReason::WrongDepth { depth: 6 },
            ),
        ];
        assert_eq!(report.skipped, expected);
    }

    #[test]
    fn missing_root_is_reported_not_panicked() {
        let root = tempfile::tempdir().unwrap();
        let report = scan_boot_resources(&root.path().join("absent"));
        assert_eq!(report.images, vec![]);
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].path, ".");
        assert!(matches!(
            report.skipped[0].reason,
            SkipReason::Unreadable { .. }
        ));
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_are_skipped_at_any_level() {
        use std::os::unix::ffi::OsStrExt;
        let root = tree(&[&format!("{JAMMY}/root-tgz")]);
        let bad = OsStr::from_bytes(b"bad\xff");
        fs::create_dir_all(root.path().join("ubuntu/amd64").join(bad).join("x/y")).unwrap();
        fs::write(root.path().join(JAMMY).join(bad), b"x").unwrap();
        let report = scan_boot_resources(root.path());
        assert_eq!(report.images, vec![image(JAMMY, &[Xinstall])]);
        let expected = vec![
            skipped("ubuntu/amd64/bad\u{fffd}", SkipReason::NonUtf8Name),
            skipped(&format!("{JAMMY}/bad\u{fffd}"), SkipReason::NonUtf8Name),
        ];
        assert_eq!(report.skipped, expected);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_files_count_and_symlinked_directories_are_not_followed() {
        use std::os::unix::fs::symlink;
        let root = tree(&[&format!("{JAMMY}/boot-initrd")]);
        let outside = tree(&[
            "cache/boot-kernel",
            "elsewhere/generic/focal/stable/root-tgz",
        ]);
        let label = root.path().join(JAMMY);
        symlink(
            outside.path().join("cache/boot-kernel"),
            label.join("boot-kernel"),
        )
        .unwrap();
        symlink(outside.path().join("cache"), label.join("linked-dir")).unwrap();
        symlink(outside.path().join("nowhere"), label.join("dangling")).unwrap();
        symlink(
            outside.path().join("elsewhere"),
            root.path().join("ubuntu/arm64"),
        )
        .unwrap();
        let report = scan_boot_resources(root.path());
        assert_eq!(report.images, vec![image(JAMMY, &[Commissioning, Install])]);
        let reasons: Vec<(&str, &SkipReason)> = report
            .skipped
            .iter()
            .map(|skip| (skip.path.as_str(), &skip.reason))
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert_eq!(reasons[0].0, "ubuntu/amd64/generic/jammy/stable/dangling");
        assert!(matches!(reasons[0].1, SkipReason::Unreadable { .. }));
        assert_eq!(
            reasons[1],
            (
                "ubuntu/amd64/generic/jammy/stable/linked-dir",
                &SkipReason::SymlinkedDirectory
            )
        );
        assert_eq!(
            reasons[2],
            ("ubuntu/arm64", &SkipReason::SymlinkedDirectory)
        );
    }

    #[test]
    fn hidden_partial_downloads_are_skipped_not_read() {
        let root = tree(&[
            &format!("{JAMMY}/root-tgz"),
            &format!("{JAMMY}/.boot-kernel.tmp"),
            "ubuntu/amd64/generic/.noble-partial/stable/root-tgz",
            ".cache/ubuntu/amd64/generic/noble/stable/root-tgz",
        ]);
        let report = scan_boot_resources(root.path());
        assert_eq!(report.images, vec![image(JAMMY, &[Xinstall])]);
        let expected = vec![
            skipped(".cache", SkipReason::Hidden),
            skipped("ubuntu/amd64/generic/.noble-partial", SkipReason::Hidden),
        ];
        assert_eq!(report.skipped, expected);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_root_is_followed() {
        use std::os::unix::fs::symlink;
        let real = tree(&[&format!("{JAMMY}/root-tgz")]);
        let holder = tempfile::tempdir().unwrap();
        let current = holder.path().join("current");
        symlink(real.path(), &current).unwrap();
        let report = scan_boot_resources(&current);
        assert_eq!(report.images, vec![image(JAMMY, &[Xinstall])]);
    }
}
