//! The pure mappings of `preseed.rs` (the service methods' tests are
//! `region-bin/tests/domain.rs`): which refusal each render failure and each store outcome
//! becomes, and the views (see docs/TESTING.md, "Mutation testing").

use super::*;
use crate::region::template::{TemplateError, TemplateLimit};

fn template_error(limit: Option<TemplateLimit>) -> TemplateError {
    TemplateError {
        template: "generic".into(),
        line: Some(2),
        message: "syntax error".into(),
        limit,
    }
}

#[test]
fn a_render_failure_is_a_limit_a_busy_pool_or_the_callers_code() {
    let limited = render_failure(
        RenderFailure::Template(template_error(Some(TemplateLimit::Fuel))),
        "bad_template",
    );
    assert_eq!(
        (limited.kind, limited.code),
        (FailureKind::OverLimit, "template_limit")
    );
    assert!(
        limited.message.contains("\"generic\" line 2"),
        "{limited:?}"
    );

    let broken = render_failure(
        RenderFailure::Template(template_error(None)),
        "bad_template",
    );
    assert_eq!(
        (broken.kind, broken.code),
        (FailureKind::BadRequest, "bad_template")
    );
    assert_eq!(broken.message, "template \"generic\" line 2: syntax error");

    let busy = render_failure(RenderFailure::Busy, "bad_template");
    assert_eq!(
        (busy.kind, busy.code),
        (FailureKind::Unavailable, "render_busy")
    );
}

#[test]
fn each_store_outcome_becomes_its_own_refusal() {
    let missing = preseed_error(
        "generic",
        StoreError::NotFound {
            what: "preseed",
            key: "generic".into(),
        },
    );
    assert_eq!(
        (missing.kind, missing.code, missing.message.as_str()),
        (
            FailureKind::NotFound,
            "no_such_preseed",
            "no preseed named \"generic\""
        )
    );

    let stale = preseed_error(
        "generic",
        StoreError::Stale {
            name: "generic".into(),
            based_on: 1,
            current: 3,
        },
    );
    assert_eq!(
        (stale.kind, stale.code),
        (FailureKind::Conflict, "stale_preseed")
    );
    assert!(
        stale.message.contains("based on version 1")
            && stale.message.contains("the current version is 3"),
        "{stale:?}"
    );

    let invalid = preseed_error("generic", StoreError::Invalid("no conflict".into()));
    assert_eq!(
        (invalid.kind, invalid.code, invalid.message.as_str()),
        (FailureKind::Conflict, "cannot_resolve", "no conflict")
    );

    let lost = preseed_error("generic", StoreError::Connection("gone".into()));
    assert_eq!(
        (lost.kind, lost.code),
        (FailureKind::Unavailable, "database_unavailable")
    );
}

fn version(origin: PreseedOrigin) -> PreseedVersion {
    PreseedVersion {
        name: "generic".into(),
        version: 2,
        osystem: Some("ubuntu".into()),
        origin,
        parent_version: Some(1),
        content: "x\n".into(),
        content_hash: "abc".into(),
        created_at_ms: 7,
    }
}

#[test]
fn views_name_the_origin_and_the_conflict() {
    let from_cluster = version_view(version(PreseedOrigin::Cluster(ClusterId::new("c1"))));
    assert_eq!(
        (from_cluster.origin.as_str(), from_cluster.origin_cluster),
        ("cluster", Some(ClusterId::new("c1")))
    );
    assert_eq!(
        (from_cluster.version, from_cluster.parent_version),
        (2, Some(1))
    );
    let by_operator = version_view(version(PreseedOrigin::Operator));
    assert_eq!(
        (by_operator.origin.as_str(), by_operator.origin_cluster),
        ("operator", None)
    );

    let conflict = PreseedConflict {
        operator_version: 2,
        cluster_version: 3,
    };
    let shown = preseed_view(PreseedRecord {
        current: version(PreseedOrigin::Operator),
        conflict: Some(conflict),
        updated_at_ms: 9,
    });
    assert_eq!(shown.name, "generic");
    assert!(shown.in_conflict);
    assert_eq!(
        shown.conflict,
        Some(ConflictView {
            operator_version: 2,
            cluster_version: 3
        })
    );
    let settled = preseed_view(PreseedRecord {
        current: version(PreseedOrigin::Operator),
        conflict: None,
        updated_at_ms: 9,
    });
    assert_eq!((settled.in_conflict, settled.conflict), (false, None));

    let template = cluster_template_view(ClusterTemplateRecord {
        cluster: ClusterId::new("c1"),
        name: "curtin".into(),
        state: TemplateState::Approved,
        version: Some(4),
        content_hash: "abc".into(),
        error: None,
        first_seen_ms: 1,
        updated_at_ms: 2,
    });
    assert_eq!(
        (template.state.as_str(), template.version),
        ("approved", Some(4))
    );
}
