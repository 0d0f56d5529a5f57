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

/// Drops the images of `report` left with no purpose this build knows (their unknown
/// purposes were skipped when decoding); returns how many. The rest of the report stands.
pub fn drop_images_without_known_purposes(report: &mut ReportBootImages) -> usize {
    let before = report.images.len();
    report.images.retain(|image| !image.purposes.is_empty());
    before - report.images.len()
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
    fn an_unknown_purpose_costs_that_purpose_not_the_report() {
        let body = serde_json::json!({
            "images": [
                {"osystem": "ubuntu", "arch": "amd64", "subarch": "generic", "release": "jammy",
                 "label": "stable", "purposes": ["install", "teleport"]},
                {"osystem": "ubuntu", "arch": "amd64", "subarch": "generic", "release": "noble",
                 "label": "stable", "purposes": ["teleport"]}
            ],
            "osystems": []
        });
        let cbor = osmesh_net::encode_body(&body);
        let mut report: ReportBootImages = osmesh_net::decode_body(&cbor).expect("decodes");
        assert_eq!(drop_images_without_known_purposes(&mut report), 1);
        assert_eq!(report.images.len(), 1);
        assert_eq!(report.images[0].purposes, [Purpose::Install].into());
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
