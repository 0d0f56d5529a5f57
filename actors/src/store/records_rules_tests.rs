//! What `cargo mutants` found unguarded in the records' own tests (see docs/TESTING.md,
//! "Mutation testing"): masking beyond ASCII, the masked `Debug`s, and the stored names.

use super::*;

#[test]
fn masking_keeps_spaces_and_punctuation_and_hides_everything_else() {
    assert_eq!(mask_key("ABCDE FGHIJ"), "***** FGHIJ");
    assert_eq!(
        mask_key("é-ABCDEFG"),
        "*-**CDEFG",
        "a non-ASCII character is hidden"
    );
    assert_eq!(mask_key("\tABCDEF"), "**BCDEF", "so is a control character");
}

#[test]
fn the_debug_of_a_key_shows_it_masked() {
    let by = ClusterId::new("c1");
    let record = LicenseKeyRecord {
        osystem: "windows".into(),
        distro_series: "win2019".into(),
        license_key: "SECRET-KEY-ABCDE".into(),
        validated_by: by.clone(),
        validated_at_ms: 1,
        created_at_ms: 2,
        updated_at_ms: 3,
    };
    assert_eq!(record.masked(), "******-***-ABCDE");
    let shown = format!("{record:?}");
    assert!(shown.contains("******-***-ABCDE"), "{shown}");
    assert!(
        shown.contains("win2019") && !shown.contains("SECRET"),
        "{shown}"
    );
    let new = NewLicenseKey {
        osystem: "windows",
        distro_series: "win2019",
        license_key: "SECRET-KEY-ABCDE",
        validated_by: &by,
        validated_at_ms: 1,
    };
    let shown = format!("{new:?}");
    assert!(shown.contains("******-***-ABCDE"), "{shown}");
    assert!(
        shown.contains("win2019") && !shown.contains("SECRET"),
        "{shown}"
    );
}

#[test]
fn statuses_and_setting_keys_round_trip_through_their_stored_names() {
    for (status, name) in [
        (NodeStatus::Ready, "ready"),
        (NodeStatus::Allocated, "allocated"),
    ] {
        assert_eq!(status.as_str(), name);
        assert_eq!(NodeStatus::parse(name), Some(status));
    }
    assert_eq!(NodeStatus::parse("retired"), None);
    let names: Vec<_> = SettingKey::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "default_osystem",
            "default_distro_series",
            "commissioning_distro_series"
        ]
    );
    for key in SettingKey::ALL {
        assert_eq!(SettingKey::parse(key.as_str()), Some(key));
    }
    assert_eq!(SettingKey::parse("theme"), None);
}
