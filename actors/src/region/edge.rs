//! Edge checks of what a cluster reports (issue 13): every name in a boot-image report (OS,
//! release, arch, sub-architecture, label, titles, defaults) and every template's OS is
//! checked against its field rule before anything of the report is logged, stored or echoed.
//! A refusal names the field and the position, never the offending value.

use osmesh_core::fields::{FieldError, FieldRule, REPORTED_NAME, REPORTED_TITLE};
use osmesh_net::messages::{ReportBootImages, ReportPreseedTemplates};
use osmesh_net::RpcError;

/// `Ok` when every name and title in `report` fits its rule; else `BadRequest` naming where.
pub fn check_image_report_names(report: &ReportBootImages) -> Result<(), RpcError> {
    for (i, image) in report.images.iter().enumerate() {
        let names = [
            &image.osystem,
            &image.arch,
            &image.subarch,
            &image.release,
            &image.label,
        ];
        for name in names {
            check(REPORTED_NAME, name).map_err(|e| refused(format!("image {i}"), e))?;
        }
    }
    for (i, os) in report.osystems.iter().enumerate() {
        let at = |e| refused(format!("operating system {i}"), e);
        check(REPORTED_NAME, &os.name).map_err(at)?;
        check(REPORTED_TITLE, &os.title).map_err(at)?;
        for name in [&os.default_release, &os.default_commissioning_release]
            .into_iter()
            .flatten()
        {
            check(REPORTED_NAME, name).map_err(at)?;
        }
        for (j, release) in os.releases.iter().enumerate() {
            let at = |e| refused(format!("operating system {i}, release {j}"), e);
            check(REPORTED_NAME, &release.name).map_err(at)?;
            check(REPORTED_TITLE, &release.title).map_err(at)?;
        }
    }
    Ok(())
}

/// `Ok` when every template's OS (when it names one) is a valid reported name. Template names
/// and contents have their own rules (`fields::PRESEED_NAME`, `fields::PRESEED_CONTENT`).
pub fn check_template_report_names(report: &ReportPreseedTemplates) -> Result<(), RpcError> {
    for (i, template) in report.templates.iter().enumerate() {
        if let Some(osystem) = &template.osystem {
            check(REPORTED_NAME, osystem).map_err(|e| refused(format!("template {i}"), e))?;
        }
    }
    Ok(())
}

fn check(rule: FieldRule, value: &str) -> Result<(), FieldError> {
    rule.check(value)
}

fn refused(at: String, e: FieldError) -> RpcError {
    RpcError::bad_request(format!("{at}: {e}; nothing of the report was stored"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_core::{BootImage, OsystemInfo, Purpose};

    fn image(release: &str) -> BootImage {
        BootImage {
            osystem: "ubuntu".into(),
            arch: "amd64".into(),
            subarch: "generic".into(),
            release: release.into(),
            label: "stable".into(),
            purposes: [Purpose::Install].into(),
        }
    }

    fn report(release: &str, title: &str) -> ReportBootImages {
        ReportBootImages {
            images: vec![image(release)],
            osystems: vec![OsystemInfo {
                name: "ubuntu".into(),
                title: title.into(),
                releases: vec![],
                default_release: None,
                default_commissioning_release: None,
            }],
        }
    }

    #[test]
    fn valid_names_pass() {
        assert!(check_image_report_names(&report("jammy", "Ubuntu")).is_ok());
    }

    #[test]
    fn a_hostile_name_is_refused_without_being_echoed() {
        let hostile = "jammy\u{1b}[2J\nFORGED LOG LINE";
        let err = check_image_report_names(&report(hostile, "Ubuntu")).unwrap_err();
        assert!(err.message.contains("image 0"), "{}", err.message);
        assert!(!err.message.contains("FORGED"), "{}", err.message);
        let long = "x".repeat(1 << 20);
        let err = check_image_report_names(&report(&long, "Ubuntu")).unwrap_err();
        assert!(err.message.len() < 200, "{}", err.message);
        let err = check_image_report_names(&report("jammy", "two\nlines")).unwrap_err();
        assert!(
            err.message.contains("operating system 0"),
            "{}",
            err.message
        );
    }
}
