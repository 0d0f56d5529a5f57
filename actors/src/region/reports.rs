//! Pure checks of what a cluster sends the region (its `Register`, its image and template
//! reports), each refused whole with a `BadRequest` before anything is held or stored.
//! Peer-supplied text is quoted escaped (`{:?}`), and at most 64 characters of a name.

use osmesh_core::ClusterId;
use osmesh_net::limits::{
    MAX_IMAGES_PER_REPORT, MAX_OSYSTEMS_PER_REPORT, MAX_TEMPLATES_PER_REPORT,
};
use osmesh_net::messages::{Register, ReportBootImages, ReportPreseedTemplates};
use osmesh_net::RpcError;

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
