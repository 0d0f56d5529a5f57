//! The pure rules of enlisting that `cargo mutants` found unguarded by `nodes.rs`'s own tests
//! (see docs/TESTING.md, "Mutation testing").

use super::*;
use crate::store::NodeStatus;
use osmesh_core::fields::MAX_POWER_PARAMETERS;
use serde_json::json;

fn enlist(power_parameters: Option<serde_json::Value>) -> EnlistRequest {
    EnlistRequest {
        hostname: "node-1".into(),
        arch: "amd64".into(),
        subarch: None,
        cluster: ClusterId::new("c1"),
        system_id: None,
        power_type: None,
        power_parameters,
    }
}

#[test]
fn a_hostname_takes_letters_digits_dashes_and_dots_not_leading() {
    let longest = "a".repeat(253);
    for ok in ["node-1", "n.example.com", "N0", longest.as_str()] {
        assert!(valid_hostname(ok), "{ok:?}");
    }
    let too_long = "a".repeat(254);
    for bad in [
        "",
        "-node",
        ".node",
        "no de",
        "no_de",
        "nöde",
        too_long.as_str(),
    ] {
        assert!(!valid_hostname(bad), "{bad:?}");
    }
}

#[test]
fn stored_fields_are_checked_and_power_parameters_must_be_flat_and_few() {
    assert_eq!(check_stored_fields(&enlist(None)), Ok(()));
    let flat = json!({"address": "10.0.0.1", "port": 623, "lan": true});
    assert_eq!(check_stored_fields(&enlist(Some(flat))), Ok(()));
    let most: serde_json::Map<_, _> = (0..MAX_POWER_PARAMETERS)
        .map(|i| (format!("k{i}"), json!(i)))
        .collect();
    assert_eq!(
        check_stored_fields(&enlist(Some(most.clone().into()))),
        Ok(()),
        "exactly the limit"
    );
    let mut too_many = most;
    too_many.insert("one_more".into(), json!(1));
    for bad in [
        json!(too_many),
        json!(["a"]),
        json!({"nested": {"a": 1}}),
        json!({"list": [1]}),
        json!({"null": null}),
        json!({"value": "x".repeat(100_000)}),
        json!({"bad key": "x"}),
    ] {
        let refused = check_stored_fields(&enlist(Some(bad.clone())));
        assert_eq!(refused.map_err(|e| e.code), Err("bad_field"), "{bad}");
    }
    let with_id = EnlistRequest {
        system_id: Some("a\0b".into()),
        ..enlist(None)
    };
    assert!(check_stored_fields(&with_id).is_err());
    let with_power = EnlistRequest {
        power_type: Some("x".repeat(10_000)),
        ..enlist(None)
    };
    assert!(check_stored_fields(&with_power).is_err());
}

#[test]
fn a_node_is_shown_as_stored_with_its_status_named() {
    let record = NodeRecord {
        id: 7,
        system_id: Some("abc".into()),
        hostname: "node-7".into(),
        arch: "arm64".into(),
        subarch: "generic".into(),
        cluster_id: ClusterId::new("c2"),
        power_type: Some("ipmi".into()),
        power_parameters: Some(json!({"a": 1})),
        status: NodeStatus::Allocated,
        osystem: Some("ubuntu".into()),
        distro_series: Some("jammy".into()),
        created_at_ms: 5,
        allocated_at_ms: Some(9),
    };
    let view = node_view(record);
    assert_eq!(view.id, 7);
    assert_eq!(view.status, "allocated");
    assert_eq!(view.cluster, ClusterId::new("c2"));
    assert_eq!((view.created_at_ms, view.allocated_at_ms), (5, Some(9)));
    assert_eq!(view.hostname, "node-7");
    let missing = node_not_found(7);
    assert_eq!(
        (missing.code, missing.message.as_str()),
        ("no_such_node", "no node with id 7")
    );
}
