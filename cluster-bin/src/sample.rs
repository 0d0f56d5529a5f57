//! Sample boot-resource trees and OS definitions, for the demo, the end-to-end tests and the
//! benchmarks: three clusters whose image sets overlap but differ, so the mesh view diverges.

use std::io;
use std::path::Path;

/// One image directory of a sample tree: path components under the root, and its files.
struct SampleImage {
    osystem: &'static str,
    arch: &'static str,
    subarch: &'static str,
    release: &'static str,
    files: &'static [&'static str],
}

const NETBOOT: &[&str] = &["boot-kernel", "boot-initrd", "squashfs"];
const NETBOOT_ARM: &[&str] = &["boot-kernel", "boot-initrd", "boot-dtb", "squashfs"];

/// The label every sample image carries.
pub const SAMPLE_LABEL: &str = "stable";

/// A sample image of the generic subarchitecture.
const fn generic(
    osystem: &'static str,
    arch: &'static str,
    release: &'static str,
    files: &'static [&'static str],
) -> SampleImage {
    SampleImage {
        osystem,
        arch,
        subarch: "generic",
        release,
        files,
    }
}

fn images_of(variant: usize) -> &'static [SampleImage] {
    const A: &[SampleImage] = &[
        generic("ubuntu", "amd64", "jammy", NETBOOT),
        generic("ubuntu", "amd64", "noble", NETBOOT),
        generic("centos", "amd64", "centos7", &["root-tgz"]),
    ];
    const B: &[SampleImage] = &[
        generic("ubuntu", "amd64", "focal", NETBOOT),
        generic("ubuntu", "amd64", "jammy", NETBOOT),
        generic("ubuntu", "arm64", "jammy", NETBOOT_ARM),
        generic("windows", "amd64", "win2019", &["pxeboot.0", "root-dd"]),
    ];
    const C: &[SampleImage] = &[
        generic("ubuntu", "amd64", "noble", NETBOOT),
        generic("custom", "amd64", "ml-workstation", &["root-tgz"]),
        generic("acme-linux", "amd64", "a2", &["root-dd.xz"]),
    ];
    match variant % 3 {
        0 => A,
        1 => B,
        _ => C,
    }
}

/// Writes sample variant `variant` (0, 1, 2, then repeating) under `root`.
pub fn write_sample_tree(root: &Path, variant: usize) -> io::Result<()> {
    for image in images_of(variant) {
        let dir = root
            .join(image.osystem)
            .join(image.arch)
            .join(image.subarch)
            .join(image.release)
            .join(SAMPLE_LABEL);
        std::fs::create_dir_all(&dir)?;
        for file in image.files {
            std::fs::write(dir.join(file), b"")?;
        }
    }
    Ok(())
}

/// A declared-OS file a cluster ships for hardware only it serves (used by sample variant 2).
pub const SAMPLE_DECLARED_OS: &str = r#"
[[os]]
name = "acme-linux"
title = "ACME Linux"
default_release = "a2"
requires_license_key = true
license_key_pattern = "^ACME-[0-9]{4}$"

[[os.release]]
name = "a1"
title = "ACME Linux 1"

[[os.release]]
name = "a2"
title = "ACME Linux 2"
"#;

/// Whether sample variant `variant` ships the declared-OS file.
pub fn sample_declares_os(variant: usize) -> bool {
    variant % 3 == 2
}

/// The preseed templates sample variant `variant` ships: every variant a `generic` one; the
/// Ubuntu clusters a `curtin_ubuntu`; the Windows cluster a `windows` one (Windows is not
/// installed by curtin) that carries the license key and NetBIOS hostname its driver hands out.
pub fn sample_templates(variant: usize) -> Vec<osmesh_net::messages::PreseedTemplate> {
    const GENERIC: &str = "# generic preseed for {{ hostname }} ({{ arch }}/{{ subarch }})\n\
                           # {{ osystem }} {{ release }}, served by {{ cluster }}\n";
    const UBUNTU: &str = "#cloud-config\n\
                          hostname: {{ hostname }}\n\
                          # curtin installs {{ osystem }} {{ release }} on {{ arch }}\n";
    const WINDOWS: &str = "<!-- unattend for {{ data.hostname }}: {{ osystem }} {{ release }} -->\n\
                           {% if data.license_key is defined %}<ProductKey>{{ data.license_key }}</ProductKey>\n{% endif %}";
    let template =
        |name: &str, osystem: Option<&str>, content: &str| osmesh_net::messages::PreseedTemplate {
            name: name.to_owned(),
            osystem: osystem.map(str::to_owned),
            content: content.to_owned(),
        };
    let mut templates = vec![template("generic", None, GENERIC)];
    match variant % 3 {
        0 => templates.push(template("curtin_ubuntu", Some("ubuntu"), UBUNTU)),
        1 => templates.push(template("windows", Some("windows"), WINDOWS)),
        _ => {}
    }
    templates
}

/// Writes [`sample_templates`] into `dir`, one file per template, for `clusterd --preseeds`.
pub fn write_sample_templates(dir: &Path, variant: usize) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for template in sample_templates(variant) {
        std::fs::write(dir.join(&template.name), template.content)?;
    }
    Ok(())
}
