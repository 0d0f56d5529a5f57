//! The pure parts of the key rules that `cargo mutants` found unguarded by `license.rs`'s own
//! tests (see docs/TESTING.md, "Mutation testing").

use super::*;

fn request(osystem: &str, distro_series: &str, license_key: &str) -> LicenseKeyRequest {
    LicenseKeyRequest {
        osystem: osystem.into(),
        distro_series: distro_series.into(),
        license_key: license_key.into(),
    }
}

#[test]
fn a_request_is_trimmed_and_refused_when_empty_or_oversized() {
    let trimmed = checked(&request(" windows ", "win2019\n", " KEY-1 ")).expect("valid");
    assert_eq!(
        (
            trimmed.osystem.as_str(),
            trimmed.distro_series.as_str(),
            trimmed.license_key.as_str()
        ),
        ("windows", "win2019", "KEY-1")
    );
    for (empty, field) in [
        (request(" ", "r", "k"), "osystem"),
        (request("o", "", "k"), "distro_series"),
        (request("o", "r", "  "), "license_key"),
    ] {
        let refused = checked(&empty).expect_err("empty");
        assert_eq!(refused.code, "bad_body");
        assert_eq!(refused.message, format!("{field} must not be empty"));
    }
    let longest = "k".repeat(MAX_KEY_LEN);
    assert!(
        checked(&request("o", "r", &longest)).is_ok(),
        "at the limit"
    );
    let over = "k".repeat(MAX_KEY_LEN + 1);
    let refused = checked(&request("o", "r", &over)).expect_err("over");
    assert!(
        refused.message.contains("longer than 256"),
        "{}",
        refused.message
    );
}

#[test]
fn a_failed_validator_is_named_by_its_failure_kind() {
    let cases = [
        (ErrorKind::Timeout, "timed out after 5000 ms"),
        (ErrorKind::Unavailable, "unavailable: gone"),
        (ErrorKind::NoSuchOperatingSystem, "no longer knows it: gone"),
        (ErrorKind::NoSuchRelease, "no longer knows it: gone"),
        (ErrorKind::Internal, "error: "),
    ];
    for (kind, expected) in cases {
        let reason = failure_reason(&RpcError::new(kind, "gone"));
        assert!(reason.starts_with(expected), "{kind:?}: {reason}");
    }
}

#[test]
fn lists_and_reasons_read_as_text() {
    assert_eq!(list_or_none::<&str>(&[]), "none");
    assert_eq!(list_or_none(&["a", "b"]), "a, b");
    let by = BTreeMap::from([
        (ClusterId::new("c1"), "bad key".to_owned()),
        (ClusterId::new("c2"), "expired".to_owned()),
    ]);
    assert_eq!(reasons(&by), "c1 (bad key), c2 (expired)");
    assert_eq!(reasons(&BTreeMap::new()), "none");
}

#[test]
fn a_stored_key_is_only_ever_shown_masked() {
    let record = LicenseKeyRecord {
        osystem: "windows".into(),
        distro_series: "win2019".into(),
        license_key: "ABCDE-FGHIJ-KLMNO".into(),
        validated_by: ClusterId::new("c1"),
        validated_at_ms: 3,
        created_at_ms: 1,
        updated_at_ms: 2,
    };
    let view = license_key_view(record);
    assert_eq!(view.license_key, "*****-*****-KLMNO");
    assert_eq!(
        (view.osystem.as_str(), view.distro_series.as_str()),
        ("windows", "win2019")
    );
    assert_eq!(view.validated_by, ClusterId::new("c1"));
    assert_eq!(
        (view.validated_at_ms, view.created_at_ms, view.updated_at_ms),
        (3, 1, 2)
    );
    assert!(view.refused_by.is_empty());
}

#[test]
fn a_new_key_records_the_request_and_who_validated_it() {
    let req = request("windows", "win2019", "KEY");
    let by = ClusterId::new("c1");
    let new = new_key(&req, &by, 42);
    assert_eq!(
        (new.osystem, new.distro_series, new.license_key),
        ("windows", "win2019", "KEY")
    );
    assert_eq!((new.validated_by, new.validated_at_ms), (&by, 42));
    let exists = key_exists(&req);
    assert_eq!(exists.code, "license_key_exists");
    assert!(exists.message.starts_with("windows/win2019 already"));
    let missing = key_not_found("windows", "win2019");
    assert_eq!(missing.code, "no_such_license_key");
    assert_eq!(missing.message, "no license key for windows/win2019");
}
