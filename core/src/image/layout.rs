//! The pure rules that turn one label directory of a boot-resource tree into a `BootImage`.
//!
//! The tree is `<root>/<osystem>/<arch>/<subarch>/<release>/<label>/<files>`, with MAAS's
//! file names. Purposes, for every osystem except `windows`:
//!
//! - `boot-kernel` and `boot-initrd` together give `commissioning` and `install` (network
//!   boot). `boot-dtb` is accepted beside them (ARM) but gives nothing on its own.
//! - `diskless` needs a network boot *and* a root filesystem to run from: kernel + initrd +
//!   `squashfs`. (MAAS's ephemeral environment is exactly that triple.)
//! - `squashfs`, `root-tgz`, `root-tbz`, `root-txz`, `root-dd` and its compressed or
//!   archived forms (`root-dd.gz`, `root-dd.xz`, `root-dd.bz2`, `root-dd.tar`,
//!   `root-dd.tar.xz`, …) give `xinstall`.
//!
//! For `windows`: `pxeboot.0` gives `install`, `root-dd*` gives `xinstall`; nothing else.
//!
//! These are what the *files* allow; an operating-system driver may allow less (CentOS
//! cannot commission, say). That filtering is the registry's business.

use super::{BootImage, Purpose};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt;

/// How many directories below the root a label directory sits.
pub const LABEL_DEPTH: usize = 5;

const KERNEL: &str = "boot-kernel";
const INITRD: &str = "boot-initrd";
const SQUASHFS: &str = "squashfs";
const ROOT_TARBALLS: [&str; 3] = ["root-tgz", "root-tbz", "root-txz"];
const ROOT_DD: &str = "root-dd";
const ROOT_DD_SUFFIXES: [&str; 8] = [
    ".gz", ".xz", ".bz2", ".tar", ".tar.gz", ".tar.xz", ".tar.bz2", ".zst",
];
const WINDOWS: &str = "windows";
const WINDOWS_PXEBOOT: &str = "pxeboot.0";

/// A path in a boot-resource tree that is not an image, and why.
///
/// `path` is relative to the root, `/`-separated; names that are not UTF-8 appear with
/// replacement characters, so the path is for people, not for opening.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub reason: SkipReason,
}

/// Why a path in a boot-resource tree is not an image.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SkipReason {
    /// Not at label depth: a file above the label level, a directory below it, or a
    /// directory that ends before reaching it. `depth` counts components below the root.
    WrongDepth { depth: usize },
    /// A name on the path is not valid UTF-8, so it cannot name an osystem, release, etc.
    NonUtf8Name,
    /// A name on the path is empty, `.` or `..` (only reachable through the pure parser).
    BadName,
    /// The label directory holds no file that gives a purpose.
    NoPurpose,
    /// A symlink to a directory; the walk does not follow it, so it stays inside the tree.
    SymlinkedDirectory,
    /// The entry could not be read (dangling symlink, permissions, …).
    Unreadable { error: String },
    /// A hidden directory (`.noble-partial`: a download in progress); MAAS skips them too.
    Hidden,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::WrongDepth { depth } => {
                write!(f, "at depth {depth}, images sit at depth {LABEL_DEPTH}")
            }
            SkipReason::NonUtf8Name => f.write_str("name is not valid UTF-8"),
            SkipReason::BadName => f.write_str("empty, `.` or `..` path component"),
            SkipReason::NoPurpose => f.write_str("no file that gives a boot purpose"),
            SkipReason::SymlinkedDirectory => f.write_str("symlinked directory, not followed"),
            SkipReason::Unreadable { error } => write!(f, "unreadable: {error}"),
            SkipReason::Hidden => f.write_str("hidden (a partial download?), not read"),
        }
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Turns a label directory into a `BootImage`.
///
/// `components` are the directory's path components relative to the root
/// (`[osystem, arch, subarch, release, label]`); `files` are the names of the regular
/// files in it (symlinks that resolve to files included). File names that are not UTF-8
/// cannot be purpose-giving files and are ignored here; the walk reports them.
pub fn parse_label_dir(components: &[&OsStr], files: &[&OsStr]) -> Result<BootImage, Skipped> {
    let skipped = |reason| Skipped {
        path: display_path(components),
        reason,
    };
    if components.len() != LABEL_DEPTH {
        return Err(skipped(SkipReason::WrongDepth {
            depth: components.len(),
        }));
    }
    let names = utf8_components(components).ok_or_else(|| skipped(SkipReason::NonUtf8Name))?;
    if names.iter().any(|name| is_bad_name(name)) {
        return Err(skipped(SkipReason::BadName));
    }
    let files: BTreeSet<&str> = files.iter().filter_map(|file| file.to_str()).collect();
    let purposes = purposes_from_files(names[0], &files);
    if purposes.is_empty() {
        return Err(skipped(SkipReason::NoPurpose));
    }
    let [osystem, arch, subarch, release, label] = names.map(str::to_owned);
    Ok(BootImage {
        osystem,
        arch,
        subarch,
        release,
        label,
        purposes,
    })
}

/// The purposes the files of one label directory give, by the rules in the module comment.
pub fn purposes_from_files(osystem: &str, files: &BTreeSet<&str>) -> BTreeSet<Purpose> {
    if osystem == WINDOWS {
        windows_purposes(files)
    } else {
        linux_purposes(files)
    }
}

/// Joins path components with `/`, replacing invalid UTF-8.
pub(crate) fn display_path(components: &[&OsStr]) -> String {
    let parts: Vec<String> = components
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

fn utf8_components<'a>(components: &[&'a OsStr]) -> Option<[&'a str; LABEL_DEPTH]> {
    let mut names = [""; LABEL_DEPTH];
    for (name, component) in names.iter_mut().zip(components) {
        *name = component.to_str()?;
    }
    Some(names)
}

fn is_bad_name(name: &str) -> bool {
    name.is_empty() || name == "." || name == ".." || name.contains('/')
}

fn linux_purposes(files: &BTreeSet<&str>) -> BTreeSet<Purpose> {
    let mut purposes = BTreeSet::new();
    let netboot = files.contains(KERNEL) && files.contains(INITRD);
    if netboot {
        purposes.extend([Purpose::Commissioning, Purpose::Install]);
    }
    if netboot && files.contains(SQUASHFS) {
        purposes.insert(Purpose::Diskless);
    }
    if files.iter().any(|file| is_root_image(file)) {
        purposes.insert(Purpose::Xinstall);
    }
    purposes
}

fn windows_purposes(files: &BTreeSet<&str>) -> BTreeSet<Purpose> {
    let mut purposes = BTreeSet::new();
    if files.contains(WINDOWS_PXEBOOT) {
        purposes.insert(Purpose::Install);
    }
    if files.iter().any(|file| is_root_dd(file)) {
        purposes.insert(Purpose::Xinstall);
    }
    purposes
}

fn is_root_image(file: &str) -> bool {
    file == SQUASHFS || ROOT_TARBALLS.contains(&file) || is_root_dd(file)
}

fn is_root_dd(file: &str) -> bool {
    match file.strip_prefix(ROOT_DD) {
        Some("") => true,
        Some(suffix) => ROOT_DD_SUFFIXES.contains(&suffix),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Purpose::*;

    fn os<'a>(names: &'a [&'a str]) -> Vec<&'a OsStr> {
        names.iter().map(OsStr::new).collect()
    }

    fn purposes(osystem: &str, files: &[&str]) -> BTreeSet<Purpose> {
        purposes_from_files(osystem, &files.iter().copied().collect())
    }

    #[test]
    fn files_give_purposes_by_maas_names() {
        let table: &[(&str, &[&str], &[Purpose])] = &[
            (
                "ubuntu",
                &["boot-kernel", "boot-initrd"],
                &[Commissioning, Install],
            ),
            (
                "ubuntu",
                &["boot-kernel", "boot-initrd", "boot-dtb"],
                &[Commissioning, Install],
            ),
            (
                "ubuntu",
                &["boot-kernel", "boot-initrd", "squashfs"],
                &[Commissioning, Install, Xinstall, Diskless],
            ),
            ("ubuntu", &["boot-kernel"], &[]),
            ("ubuntu", &["boot-initrd"], &[]),
            ("ubuntu", &["boot-dtb"], &[]),
            ("ubuntu", &["squashfs"], &[Xinstall]),
            ("centos", &["root-tgz"], &[Xinstall]),
            ("centos", &["root-tbz"], &[Xinstall]),
            ("centos", &["root-txz"], &[Xinstall]),
            ("custom", &["root-dd"], &[Xinstall]),
            ("custom", &["root-dd.gz"], &[Xinstall]),
            ("custom", &["root-dd.xz"], &[Xinstall]),
            ("custom", &["root-dd.bz2"], &[Xinstall]),
            ("custom", &["root-dd.tar"], &[Xinstall]),
            ("custom", &["root-dd.tar.xz"], &[Xinstall]),
            ("custom", &["root-dd.tar.gz"], &[Xinstall]),
            ("custom", &["root-dd.zip"], &[]),
            ("custom", &["root-ddx"], &[]),
            (
                "custom",
                &["root-tgz.old", "README", "boot-kernel.bak"],
                &[],
            ),
            ("custom", &[], &[]),
            ("windows", &["pxeboot.0"], &[Install]),
            ("windows", &["pxeboot.0", "root-dd"], &[Install, Xinstall]),
            ("windows", &["root-dd.gz"], &[Xinstall]),
            ("windows", &["boot-kernel", "boot-initrd"], &[]),
            ("windows", &["root-tgz", "squashfs"], &[]),
            ("ubuntu", &["pxeboot.0"], &[]),
        ];
        for (osystem, files, expected) in table {
            let expected: BTreeSet<Purpose> = expected.iter().copied().collect();
            assert_eq!(purposes(osystem, files), expected, "{osystem} {files:?}");
        }
    }

    #[test]
    fn label_dir_with_purpose_files_is_an_image() {
        let image = parse_label_dir(
            &os(&["ubuntu", "amd64", "ga-22.04", "jammy", "stable"]),
            &os(&["boot-kernel", "boot-initrd", "squashfs", "notes.txt"]),
        );
        let expected = BootImage {
            osystem: "ubuntu".into(),
            arch: "amd64".into(),
            subarch: "ga-22.04".into(),
            release: "jammy".into(),
            label: "stable".into(),
            purposes: [Commissioning, Install, Xinstall, Diskless].into(),
        };
        assert_eq!(image, Ok(expected));
    }

    #[test]
    fn label_dir_is_skipped_with_the_reason() {
        let table: &[(&[&str], &[&str], &str, SkipReason)] = &[
            (
                &["ubuntu", "amd64", "generic", "jammy"],
                &["boot-kernel", "boot-initrd"],
                "ubuntu/amd64/generic/jammy",
                SkipReason::WrongDepth { depth: 4 },
            ),
            (
                &["ubuntu", "amd64", "generic", "jammy", "stable", "extra"],
                &["boot-kernel", "boot-initrd"],
                "ubuntu/amd64/generic/jammy/stable/extra",
                SkipReason::WrongDepth { depth: 6 },
            ),
            (
                &["ubuntu", "amd64", "generic", "jammy", "stable"],
                &["boot-kernel"],
                "ubuntu/amd64/generic/jammy/stable",
                SkipReason::NoPurpose,
            ),
            (
                &["ubuntu", "amd64", "generic", "jammy", "stable"],
                &[],
                "ubuntu/amd64/generic/jammy/stable",
                SkipReason::NoPurpose,
            ),
            (
                &["ubuntu", "amd64", "..", "jammy", "stable"],
                &["root-dd"],
                "ubuntu/amd64/../jammy/stable",
                SkipReason::BadName,
            ),
            (
                &["", "amd64", "generic", "jammy", "stable"],
                &["root-dd"],
                "/amd64/generic/jammy/stable",
                SkipReason::BadName,
            ),
        ];
        for (components, files, path, reason) in table {
            let expected = Skipped {
                path: path.to_string(),
                reason: reason.clone(),
            };
            assert_eq!(parse_label_dir(&os(components), &os(files)), Err(expected));
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_component_is_skipped_and_shown_lossily() {
        use std::os::unix::ffi::OsStrExt;
        let bad = OsStr::from_bytes(b"jam\xffmy");
        let components = [
            OsStr::new("ubuntu"),
            OsStr::new("amd64"),
            OsStr::new("generic"),
            bad,
            OsStr::new("stable"),
        ];
        let skipped = parse_label_dir(&components, &os(&["root-dd"]));
        let expected = Skipped {
            path: "ubuntu/amd64/generic/jam\u{fffd}my/stable".into(),
            reason: SkipReason::NonUtf8Name,
        };
        assert_eq!(skipped, Err(expected));
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_file_names_are_ignored_not_fatal() {
        use std::os::unix::ffi::OsStrExt;
        let files = [OsStr::from_bytes(b"\xff\xfe"), OsStr::new("root-tgz")];
        let image = parse_label_dir(&os(&["centos", "amd64", "generic", "centos7", "l"]), &files);
        assert_eq!(image.map(|image| image.purposes), Ok([Xinstall].into()));
    }
}
