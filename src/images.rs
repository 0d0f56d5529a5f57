//! `osmesh images`: every image each cluster last reported, one row per image and cluster, with
//! its kernel flavour, label and purposes; rows of disconnected clusters are marked last known.

use anyhow::Result;
use osmesh_api::images::ImagesAnswer;

use crate::client::{call_typed, print_json, ApiArgs};
use crate::table::Table;

/// Which images to show; each filter left out matches all.
#[derive(clap::Args)]
pub struct ImagesArgs {
    #[arg(long)]
    pub osystem: Option<String>,
    #[arg(long)]
    pub release: Option<String>,
    #[arg(long)]
    pub arch: Option<String>,
}

pub fn images(api: &ApiArgs, args: &ImagesArgs) -> Result<()> {
    let query: Vec<String> = [
        ("osystem", &args.osystem),
        ("release", &args.release),
        ("arch", &args.arch),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={}", encode(v))))
    .collect();
    let mut path = String::from("/api/v1/images");
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let (answer, raw): (ImagesAnswer, _) = call_typed(api, "GET", &path, None)?;
    if api.json {
        return print_json(&raw);
    }
    print!("{}", render(&answer));
    Ok(())
}

fn render(answer: &ImagesAnswer) -> String {
    let mut table = Table::new([
        "OSYSTEM", "RELEASE", "TITLE", "ARCH", "SUBARCH", "KFLAVOR", "LABEL", "PURPOSES",
        "CLUSTER", "STATE",
    ]);
    for record in &answer.images {
        let d = &record.detail;
        let purposes: Vec<&str> = d.purposes.iter().map(|p| p.as_str()).collect();
        table.row(vec![
            d.osystem.clone(),
            d.release.clone(),
            record.title.clone().unwrap_or_else(|| "-".into()),
            d.arch.clone(),
            d.subarch.clone(),
            d.kflavor.clone(),
            d.label.clone(),
            purposes.join(","),
            record.cluster.to_string(),
            if record.connected {
                "available".into()
            } else {
                "last known (disconnected)".into()
            },
        ]);
    }
    table.render()
}

/// Percent-encodes a query value (letters, digits and `-._~` pass).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_api::images::ImageRecord;
    use osmesh_core::image::ImageDetail;
    use osmesh_core::{ClusterId, Purpose};

    #[test]
    fn rows_show_flavour_purposes_and_staleness() {
        let record = |cluster: &str, connected| ImageRecord {
            cluster: ClusterId::new(cluster),
            connected,
            disconnected_since_ms: (!connected).then_some(5),
            title: Some("Ubuntu 22.04 LTS \"Jammy Jellyfish\"".into()),
            detail: ImageDetail {
                osystem: "ubuntu".into(),
                release: "jammy".into(),
                arch: "amd64".into(),
                subarch: "hwe-22.04-lowlatency".into(),
                kflavor: "lowlatency".into(),
                label: "stable".into(),
                purposes: [Purpose::Install, Purpose::Xinstall].into(),
                subarches: vec![],
            },
        };
        let text = render(&ImagesAnswer {
            images: vec![record("a", true), record("b", false)],
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].contains("lowlatency") && lines[1].ends_with("available"));
        assert!(lines[1].contains("install,xinstall"));
        assert!(lines[2].ends_with("last known (disconnected)"), "{text}");
        assert_eq!(encode("win2016dc-core"), "win2016dc-core");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
