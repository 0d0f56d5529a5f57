//! The pure parts of the settings rules that `cargo mutants` found unguarded by
//! `settings.rs`'s own tests (see docs/TESTING.md, "Mutation testing").

use super::*;
use osmesh_core::mesh::{ClusterAnswer, ClusterReport};
use osmesh_core::{BootImage, ClusterId, OsystemInfo, Purpose, ReleaseInfo};
use std::collections::BTreeMap;

fn set(os: Option<&str>, release: Option<&str>, commissioning: Option<&str>) -> OsSettings {
    OsSettings {
        default_osystem: os.map(Into::into),
        default_distro_series: release.map(Into::into),
        commissioning_distro_series: commissioning.map(Into::into),
    }
}

#[test]
fn an_update_replaces_only_the_fields_it_sets() {
    let current = set(Some("ubuntu"), Some("jammy"), Some("noble"));
    let update = set(None, Some("noble"), None);
    assert_eq!(
        merged(&current, &update),
        set(Some("ubuntu"), Some("noble"), Some("noble"))
    );
    assert_eq!(
        merged(
            &OsSettings::default(),
            &set(Some("centos"), None, Some("jammy"))
        ),
        set(Some("centos"), None, Some("jammy"))
    );
}

#[test]
fn each_setting_is_stored_under_its_own_key() {
    let all = set(Some("os"), Some("rel"), Some("comm"));
    let got: Vec<_> = fields(&all)
        .into_iter()
        .map(|(key, value)| (key.as_str(), value.map(String::as_str)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("default_osystem", Some("os")),
            ("default_distro_series", Some("rel")),
            ("commissioning_distro_series", Some("comm")),
        ]
    );
    assert!(fields(&OsSettings::default())
        .iter()
        .all(|(_, v)| v.is_none()));
}

#[test]
fn a_refused_default_release_names_the_os_it_was_checked_against() {
    let osystems = vec![OsystemInfo {
        name: "ubuntu".into(),
        title: "Ubuntu".into(),
        releases: vec![ReleaseInfo {
            name: "jammy".into(),
            title: "jammy".into(),
            requires_license_key: false,
            can_commission: true,
            end_of_life: false,
        }],
        default_release: None,
        default_commissioning_release: None,
    }];
    let images = vec![BootImage {
        osystem: "ubuntu".into(),
        arch: "amd64".into(),
        subarch: "generic".into(),
        release: "jammy".into(),
        label: "stable".into(),
        purposes: [Purpose::Install].into(),
    }];
    let answer = ClusterAnswer::Answered(ClusterReport {
        osystems: osystems.into(),
        images: images.into(),
    });
    let view = MeshView::from_answers(&BTreeMap::from([(ClusterId::new("a"), answer)]));
    let update = set(Some("ubuntu"), Some("focal"), None);
    let refused = check_settings(&view, &update, &update).expect_err("focal is unknown");
    assert_eq!(refused.code, "invalid_setting");
    assert!(
        refused
            .message
            .ends_with("valid choices: jammy (releases of ubuntu)"),
        "{}",
        refused.message
    );
}
