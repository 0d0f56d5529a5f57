//! The core types that cross the wire survive a CBOR round trip (ciborium, as `net` uses).

use osmesh_core::image::SkipReason;
use osmesh_core::{
    BootImage, ClusterAnswer, ClusterId, ClusterReport, LicenseKeyError, MeshView, NoAnswerReason,
    OsystemInfo, Purpose, Registry, RegistryConfig, RegistryError, ScanReport, Skipped,
};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let mut bytes = Vec::new();
    if let Err(error) = ciborium::into_writer(value, &mut bytes) {
        panic!("encode {value:?}: {error}");
    }
    match ciborium::from_reader::<T, _>(bytes.as_slice()) {
        Ok(decoded) => assert_eq!(&decoded, value),
        Err(error) => panic!("decode {value:?}: {error}"),
    }
}

fn image(os: &str, release: &str) -> BootImage {
    BootImage {
        osystem: os.into(),
        arch: "amd64".into(),
        subarch: "generic".into(),
        release: release.into(),
        label: "stable".into(),
        purposes: Purpose::ALL.into(),
    }
}

fn listing(images: &[BootImage]) -> (Vec<OsystemInfo>, Vec<BootImage>) {
    let registry = Registry::new(&RegistryConfig::default(), images);
    (registry.list(), registry.boot_images().to_vec())
}

#[test]
fn mesh_view_with_conflicts_and_absent_clusters_round_trips() {
    let (osystems_a, images_a) = listing(&[image("ubuntu", "jammy")]);
    let (osystems_b, images_b) = listing(&[image("ubuntu", "noble"), image("centos", "centos7")]);
    let answers = [
        (
            "a",
            ClusterAnswer::Answered(ClusterReport {
                osystems: osystems_a.into(),
                images: images_a.into(),
            }),
        ),
        (
            "b",
            ClusterAnswer::Answered(ClusterReport {
                osystems: osystems_b.into(),
                images: images_b.into(),
            }),
        ),
        (
            "c",
            ClusterAnswer::NoAnswer(NoAnswerReason::Error("refused".into())),
        ),
        ("d", ClusterAnswer::NoAnswer(NoAnswerReason::Timeout)),
    ];
    for (_, answer) in &answers {
        round_trip(answer);
    }
    let view = MeshView::merge(answers.map(|(id, answer)| (ClusterId::new(id), answer)));
    let Ok(view) = view else {
        panic!("distinct ids merge")
    };
    assert!(
        !view.conflicts.is_empty(),
        "jammy vs noble defaults should conflict"
    );
    round_trip(&view);
}

#[test]
fn registry_errors_and_scan_reports_round_trip() {
    round_trip(&RegistryError::InvalidLicenseKey {
        os: "windows".into(),
        release: "win2019".into(),
        reason: LicenseKeyError::WrongGroupCount {
            expected: 5,
            found: 1,
        },
    });
    round_trip(&RegistryError::NoSuchOperatingSystem("plan9".into()));
    round_trip(&ScanReport {
        images: vec![image("ubuntu", "jammy")],
        skipped: vec![Skipped {
            path: "ubuntu/amd64".into(),
            reason: SkipReason::WrongDepth { depth: 2 },
        }],
    });
}
