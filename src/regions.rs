//! `osmesh regions`: every region sharing the database, up or down, with its endpoints and
//! linked clusters; then the clusters linked to only some of the live regions.

use anyhow::Result;
use osmesh_api::regions::{RegionState, RegionsAnswer};
use std::collections::BTreeMap;

use crate::client::{call_typed, format_age, print_json, ApiArgs};
use crate::table::Table;

pub fn regions(api: &ApiArgs) -> Result<()> {
    let (answer, raw): (RegionsAnswer, _) = call_typed(api, "GET", "/api/v1/regions", None)?;
    if api.json {
        return print_json(&raw);
    }
    print!("{}", render(&answer));
    Ok(())
}

/// The regions table (sorted by name, then id, as the API answers), and the partly linked
/// clusters below it, or a line saying every cluster reaches every live region.
pub fn render(answer: &RegionsAnswer) -> String {
    let mut table = Table::new([
        "NAME",
        "ID",
        "STATE",
        "RPC",
        "HTTP",
        "CLUSTERS",
        "HEARTBEAT",
    ]);
    let mut names = BTreeMap::new();
    for r in &answer.regions {
        names.insert(r.id.as_str(), r.name.as_str());
        let name = if r.answering {
            format!("{} *", r.name)
        } else {
            r.name.clone()
        };
        let state = match r.state {
            RegionState::Up => "up",
            RegionState::Down => "down",
        };
        table.row(vec![
            name,
            short_id(&r.id),
            state.into(),
            r.rpc_endpoints.join(","),
            r.http_url.clone(),
            r.connected_clusters.to_string(),
            format!("{} ago", format_age(r.heartbeat_age_ms.max(0))),
        ]);
    }
    let mut out = table.render();
    out.push_str("(* answered this request)\n");
    let partial: Vec<_> = answer
        .clusters
        .iter()
        .filter(|c| !c.missing.is_empty())
        .collect();
    if partial.is_empty() {
        out.push_str("every cluster is linked to every live region\n");
        return out;
    }
    let label = |ids: &[String]| {
        let named: Vec<_> = ids
            .iter()
            .map(|id| {
                names
                    .get(id.as_str())
                    .map_or_else(|| short_id(id), |n| n.to_string())
            })
            .collect();
        if named.is_empty() {
            "-".to_owned()
        } else {
            named.join(",")
        }
    };
    let mut clusters = Table::new(["CLUSTER", "LINKED TO", "NOT LINKED TO"]);
    for c in partial {
        clusters.row(vec![
            c.cluster.to_string(),
            label(&c.linked),
            label(&c.missing),
        ]);
    }
    out.push('\n');
    out.push_str(&clusters.render());
    out
}

/// The first 8 characters of a region id: enough to tell a handful apart.
fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_actors::region::regions::{ClusterRegions, RegionView};
    use osmesh_core::ClusterId;

    fn region(id: &str, name: &str, state: RegionState, clusters: &[&str]) -> RegionView {
        RegionView {
            id: id.into(),
            name: name.into(),
            rpc_endpoints: vec![format!("{name}:5250")],
            http_url: format!("http://{name}:5240"),
            started_at_ms: 0,
            heartbeat_ms: 0,
            heartbeat_age_ms: 2_000,
            state,
            answering: name == "r1",
            connected_clusters: clusters.len(),
            clusters: clusters.iter().map(|c| ClusterId::new(*c)).collect(),
        }
    }

    #[test]
    fn partly_linked_clusters_are_listed_under_the_regions() {
        let answer = RegionsAnswer {
            regions: vec![
                region("aaaaaaaaaaaa", "r1", RegionState::Up, &["c1", "c2"]),
                region("bbbbbbbbbbbb", "r2", RegionState::Up, &["c1"]),
                region("cccccccccccc", "r3", RegionState::Down, &[]),
            ],
            clusters: vec![
                ClusterRegions {
                    cluster: ClusterId::new("c1"),
                    name: "c1".into(),
                    linked: vec!["aaaaaaaaaaaa".into(), "bbbbbbbbbbbb".into()],
                    missing: vec![],
                },
                ClusterRegions {
                    cluster: ClusterId::new("c2"),
                    name: "c2".into(),
                    linked: vec!["aaaaaaaaaaaa".into()],
                    missing: vec!["bbbbbbbbbbbb".into()],
                },
            ],
            down_after_ms: 15_000,
            forget_after_ms: 3_600_000,
        };
        let text = render(&answer);
        let lines: Vec<_> = text.lines().map(str::trim_end).collect();
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(
            lines[1].starts_with("r1 *") && lines[1].contains(" up "),
            "{text}"
        );
        assert!(
            lines[3].starts_with("r3") && lines[3].contains(" down "),
            "{text}"
        );
        let c2 = lines.iter().find(|l| l.starts_with("c2")).expect(&text);
        assert!(c2.contains("r1") && c2.ends_with("r2"), "{text}");
        assert!(!lines.iter().any(|l| l.starts_with("c1 ")), "{text}");
    }
}
