//! Pure checks of what a cluster sends the region (its `Register`, its image and template
//! reports), each refused whole with a `BadRequest` before anything is held or stored.
//! Peer-supplied text is quoted escaped (`{:?}`), and at most 64 characters of a name.

use osmesh_core::ClusterId;
use osmesh_net::limits::{
    MAX_IMAGES_PER_REPORT, MAX_OSYSTEMS_PER_REPORT, MAX_TEMPLATES_PER_REPORT,
};
use osmesh_net::messages::{Register, ReportBootImages, ReportPreseedTemplates};
use osmesh_net::RpcError;
use std::collections::BTreeMap;

use super::template::check_on_arrival;
use crate::store::{content_hash, ClusterTemplateRecord};

/// Checks a `Register` against the identity its link proved: the same identity, not empty,
/// and a valid name.
pub fn check_register(proved: &ClusterId, req: &Register) -> Result<(), RpcError> {
    if proved.as_str().is_empty() {
        return Err(RpcError::bad_request("an empty identity cannot register"));
    }
    if req.cluster != *proved {
        return Err(RpcError::bad_request(format!(
            "authenticated as {:?} but registering as {:?}",
            proved.as_str(),
            req.cluster.as_str()
        )));
    }
    osmesh_core::fields::CLUSTER_NAME
        .check(&req.name)
        .map_err(|e| RpcError::bad_request(e.to_string()))
}

/// Refuses an image report over `MAX_IMAGES_PER_REPORT` or `MAX_OSYSTEMS_PER_REPORT`.
pub fn check_image_report(report: &ReportBootImages) -> Result<(), RpcError> {
    if report.images.len() > MAX_IMAGES_PER_REPORT {
        return Err(RpcError::bad_request(format!(
            "{} images in one report; at most {MAX_IMAGES_PER_REPORT} allowed",
            report.images.len()
        )));
    }
    if report.osystems.len() > MAX_OSYSTEMS_PER_REPORT {
        return Err(RpcError::bad_request(format!(
            "{} operating systems in one report; at most {MAX_OSYSTEMS_PER_REPORT} allowed",
            report.osystems.len()
        )));
    }
    Ok(())
}

/// Refuses a template report over `MAX_TEMPLATES_PER_REPORT`, or with a template whose name
/// or content breaks its field rule. (The per-cluster bound needs the store; it checks it.)
pub fn check_template_report(report: &ReportPreseedTemplates) -> Result<(), RpcError> {
    if report.templates.len() > MAX_TEMPLATES_PER_REPORT {
        return Err(RpcError::bad_request(format!(
            "{} templates in one report; at most {MAX_TEMPLATES_PER_REPORT} allowed",
            report.templates.len()
        )));
    }
    for t in &report.templates {
        let field = osmesh_core::fields::PRESEED_NAME
            .check(&t.name)
            .and_then(|()| osmesh_core::fields::PRESEED_CONTENT.check(&t.content));
        if let Err(e) = field {
            return Err(RpcError::bad_request(format!(
                "template {:.64?}: {e}",
                t.name
            )));
        }
    }
    Ok(())
}

/// Each template's arrival check (parse and trial render, `check_on_arrival`): `None` when it
/// passes, else why not. A template whose text is the cluster's newest report of its name
/// (`rows`: the cluster's own) keeps that report's verdict without a second check, so a
/// cluster re-sending the same templates on every connect costs no render.
pub fn arrival_refusals(
    report: &ReportPreseedTemplates,
    rows: &[ClusterTemplateRecord],
) -> Vec<Option<String>> {
    let known: BTreeMap<&str, &ClusterTemplateRecord> =
        rows.iter().map(|r| (r.name.as_str(), r)).collect();
    report
        .templates
        .iter()
        .map(|t| match known.get(t.name.as_str()) {
            Some(row) if row.content_hash == content_hash(&t.content) => row.error.clone(),
            _ => check_on_arrival(&t.name, &t.content).err(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_net::messages::PreseedTemplate;

    fn report(templates: &[(&str, &str)]) -> ReportPreseedTemplates {
        ReportPreseedTemplates {
            templates: templates
                .iter()
                .map(|(name, content)| PreseedTemplate {
                    name: (*name).into(),
                    osystem: None,
                    content: (*content).into(),
                })
                .collect(),
        }
    }

    fn row(name: &str, content: &str, error: Option<&str>) -> ClusterTemplateRecord {
        ClusterTemplateRecord {
            cluster: ClusterId::new("c"),
            name: name.into(),
            state: crate::store::TemplateState::Pending,
            version: None,
            content_hash: content_hash(content),
            error: error.map(str::to_owned),
            first_seen_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn new_text_is_checked_and_a_re_report_keeps_its_verdict() {
        let fuel = "{% for a in range(100000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}";
        let sent = report(&[
            ("ok", "{{ hostname }}"),
            ("bad", "{% if %}"),
            ("slow", fuel),
        ]);
        let first = arrival_refusals(&sent, &[]);
        assert_eq!(first[0], None);
        assert!(
            first[1].as_deref().unwrap().contains("syntax error"),
            "{first:?}"
        );
        assert!(first[2].as_deref().unwrap().contains("fuel"), "{first:?}");
        // Known texts are not rendered again: the stored verdict stands (even a stale one).
        let rows = [
            row("ok", "{{ hostname }}", None),
            row("bad", "{% if %}", Some("stored")),
            row("slow", fuel, None),
        ];
        assert_eq!(
            arrival_refusals(&sent, &rows),
            [None, Some("stored".to_owned()), None]
        );
        // A changed text is checked again.
        let changed = report(&[("ok", "{% endif %}")]);
        assert!(arrival_refusals(&changed, &rows)[0].is_some());
    }
}
