//! Scenario files: the clusters and their images, the settings, a fault plan, operations and
//! expectations, parsed from TOML into types that cannot hold an invalid plan.
//!
//! ```toml
//! description = "one cluster partitioned during a live fan-out"
//! [settings]
//! duration_ms = 60_000
//! [[cluster]]
//! id = "c1"
//! images = ["ubuntu/amd64/generic/jammy", "centos/amd64/generic/centos8:install"]
//! [[fault]]
//! fault = "partition"
//! at_ms = 20_000
//! cluster = "c1"
//! [[op]]
//! op = "list_osystems"
//! at_ms = 20_500
//! read = "live"
//! timeout_ms = 2_000
//! expect = { answered = [], not_answered = { c1 = "timed out" } }
//! ```
//!
//! Every error names the file, the 1-based line and the reason.

use osmesh_core::{BootImage, Purpose};
use serde::{Deserialize, Serialize};

pub use crate::ops::{
    AddLicenseKey, Allocate, ClustersExpect, EditPreseed, EnlistNode, KeyExpect, KeysExpect,
    LicenseKeys, ListClusters, ListExpect, ListOsystems, NodeExpect, Op, Preseed, PreseedExpect,
    Read, ReleaseNode, ResolvePreseed,
};
pub use crate::ops::{CredentialKind, Enroll, IdentityExpect, Impersonate, Remove, Revoke};
use std::collections::BTreeSet;

/// The region's node name in fault plans (`crash`/`restart`).
pub const REGION: &str = "region";

/// A whole scenario, as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub settings: Settings,
    #[serde(rename = "cluster")]
    pub clusters: Vec<ClusterSpec>,
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
    #[serde(default, rename = "op")]
    pub ops: Vec<Op>,
    #[serde(default)]
    pub expect: FinalExpect,
}

/// Timings of the system and of the simulated network. All durations in milliseconds.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Virtual time the run lasts.
    pub duration_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub heartbeat_timeout_ms: u64,
    pub refresh_interval_ms: u64,
    pub rescan_interval_ms: u64,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    pub handshake_timeout_ms: u64,
    /// How long a dial into a partition takes to fail (a SYN that is never answered).
    pub connect_timeout_ms: u64,
    /// Per-frame one-way latency, drawn uniformly from `[min, max]`.
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    /// How often the invariants are checked between operations.
    pub check_interval_ms: u64,
    /// Liveness mode: after the last fault, the cached view must converge within the bound.
    pub liveness: bool,
    /// Regions sharing the one store (`r1`, `r2`, …; a single one is named `region`).
    #[serde(skip_serializing_if = "is_one")]
    pub regions: usize,
    /// Every cluster is enrolled at the start and presents its certificate; the region's
    /// compatibility mode (the shared secret) is off, as in the daemons. Without it the
    /// clusters prove the shared secret (compatibility mode) until an `enroll`.
    pub enrolled: bool,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            duration_ms: 120_000,
            heartbeat_interval_ms: 5_000,
            heartbeat_timeout_ms: 15_000,
            refresh_interval_ms: 30_000,
            rescan_interval_ms: 60_000,
            backoff_base_ms: 500,
            backoff_cap_ms: 10_000,
            handshake_timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
            latency_min_ms: 1,
            latency_max_ms: 10,
            check_interval_ms: 1_000,
            liveness: false,
            regions: 1,
            enrolled: false,
        }
    }
}

impl Settings {
    /// The convergence bound of liveness mode, in milliseconds, after the last fault heals:
    ///
    /// `bound = max(heartbeat_timeout, connect_timeout, handshake_timeout, push_timeout)
    ///          + backoff_cap + 20 × latency_max + 1 000`
    ///
    /// Why: at the heal, a cluster's link is either still up (frames flow again at once), or
    /// dead, in which case the cluster learns it within the largest of the timeouts that can
    /// be running (silence past the heartbeat timeout; a dial into the partition; a stalled
    /// handshake; an unacknowledged `ReportBootImages` push, 10 s). It then waits one backoff
    /// delay, at most `backoff_cap`, dials, and the handshake plus `Register`,
    /// `ReportBootImages` and `ReportPreseedTemplates` take under 20 one-way latencies. The
    /// region holds the pushed snapshot as soon as it is acknowledged; the last second
    /// covers the invariant checker's sampling interval.
    ///
    /// With several regions, `+ MESH_LAG_MS` (6 s): a cluster may learn of a restarted
    /// region (a new registry id) only from another region's next heartbeat, which pushes
    /// the new list; it dials the new region at once.
    pub fn convergence_bound_ms(&self) -> u64 {
        let push_timeout = osmesh_actors::cluster::PUSH_TIMEOUT.as_millis() as u64;
        let detect = self
            .heartbeat_timeout_ms
            .max(self.connect_timeout_ms)
            .max(self.handshake_timeout_ms)
            .max(push_timeout);
        let learn = if self.regions > 1 {
            crate::world::regions::MESH_LAG_MS
        } else {
            0
        };
        detect + self.backoff_cap_ms + 20 * self.latency_max_ms + 1_000 + learn
    }
}

/// One simulated cluster.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub id: String,
    /// `"osystem/arch/subarch/release"`, optionally `":purpose+purpose"` (default
    /// `commissioning+install+xinstall`).
    #[serde(default)]
    pub images: Vec<String>,
    /// Declared-OS TOML text, as a cluster would ship it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<String>,
    /// The preseed templates the cluster ships on connect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateSpec>,
}

/// One preseed template a cluster ships.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub osystem: Option<String>,
    pub content: String,
}

/// Which way a partition drops frames.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    /// Frames from the cluster to the region are lost.
    ToRegion,
    /// Frames from the region to the cluster are lost.
    FromRegion,
}

/// A fault at a virtual time. `cluster = None` means every link. `region` (in a world of
/// several regions) names one region: `r1`, `r2`, …
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "fault", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Partitions `cluster` from every region, or from `region` only.
    Partition {
        at_ms: u64,
        cluster: String,
        #[serde(default)]
        direction: Direction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
    },
    /// Ends the partitions of `cluster` (or all); with `region`, only the one from it.
    Heal {
        at_ms: u64,
        #[serde(default)]
        cluster: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
    },
    Delay {
        at_ms: u64,
        #[serde(default)]
        cluster: Option<String>,
        min_ms: u64,
        max_ms: u64,
    },
    DropRate {
        at_ms: u64,
        #[serde(default)]
        cluster: Option<String>,
        rate: f64,
    },
    DuplicateRate {
        at_ms: u64,
        #[serde(default)]
        cluster: Option<String>,
        rate: f64,
    },
    /// The share of frames that may overtake earlier ones.
    ReorderRate {
        at_ms: u64,
        #[serde(default)]
        cluster: Option<String>,
        rate: f64,
    },
    /// The cluster's replies take `extra_ms` longer (0 ends it); heartbeats are not slowed.
    Slow {
        at_ms: u64,
        cluster: String,
        extra_ms: u64,
    },
    /// A cluster or `"region"` stops as a crash would; its links are cut. With several
    /// regions, `region` says which (`r1` when absent).
    Crash {
        at_ms: u64,
        node: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
    },
    Restart {
        at_ms: u64,
        node: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
    },
    /// The cluster's image set becomes `images`; the cluster rescans at once if running.
    ImagesChange {
        at_ms: u64,
        cluster: String,
        images: Vec<String>,
    },
    /// The cluster's preseed templates become `templates`. A cluster ships its templates
    /// when it connects, so the change reaches the region at the cluster's next start.
    TemplatesChange {
        at_ms: u64,
        cluster: String,
        templates: Vec<TemplateSpec>,
    },
    /// Ends every network fault: partitions, loss, duplication, reordering, delays, slowness.
    HealAll { at_ms: u64 },
    /// An attacker dials the region as a cluster with a credential that must not admit it.
    Impersonate(Impersonate),
}

impl Fault {
    pub fn at_ms(&self) -> u64 {
        match self {
            Fault::Partition { at_ms, .. }
            | Fault::Heal { at_ms, .. }
            | Fault::Delay { at_ms, .. }
            | Fault::DropRate { at_ms, .. }
            | Fault::DuplicateRate { at_ms, .. }
            | Fault::ReorderRate { at_ms, .. }
            | Fault::Slow { at_ms, .. }
            | Fault::Crash { at_ms, .. }
            | Fault::Restart { at_ms, .. }
            | Fault::ImagesChange { at_ms, .. }
            | Fault::TemplatesChange { at_ms, .. }
            | Fault::HealAll { at_ms } => *at_ms,
            Fault::Impersonate(attack) => attack.at_ms,
        }
    }

    /// The region this fault names, if any.
    pub fn region(&self) -> Option<&str> {
        match self {
            Fault::Partition { region, .. }
            | Fault::Heal { region, .. }
            | Fault::Crash { region, .. }
            | Fault::Restart { region, .. } => region.as_deref(),
            _ => None,
        }
    }

    /// The clusters or nodes this fault names, for validation.
    fn names(&self) -> Vec<&str> {
        match self {
            Fault::Partition { cluster, .. }
            | Fault::Slow { cluster, .. }
            | Fault::ImagesChange { cluster, .. }
            | Fault::TemplatesChange { cluster, .. } => vec![cluster],
            Fault::Impersonate(attack) => vec![&attack.cluster],
            Fault::Heal { cluster, .. }
            | Fault::Delay { cluster, .. }
            | Fault::DropRate { cluster, .. }
            | Fault::DuplicateRate { cluster, .. }
            | Fault::ReorderRate { cluster, .. } => cluster.iter().map(String::as_str).collect(),
            Fault::Crash { .. } | Fault::Restart { .. } | Fault::HealAll { .. } => vec![],
        }
    }
}

/// What must hold at the end of the run.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FinalExpect {
    /// Exactly these clusters hold a link to the region at the end.
    pub connected: Option<Vec<String>>,
    /// The cached view equals the clusters' true state at the end.
    pub converged: Option<bool>,
}

/// A scenario that cannot be run: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// Parses and validates a scenario; `file` only labels errors.
pub fn parse_scenario(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError {
        file: file.to_owned(),
        line: e.span().map_or(1, |span| line_of(text, span.start)),
        reason: e.message().to_owned(),
    })?;
    validate(&scenario).map_err(|(table, index, reason)| ScenarioError {
        file: file.to_owned(),
        line: header_line(text, table, index),
        reason,
    })?;
    Ok(scenario)
}

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line of the `index`-th `[[table]]` header (0-based), or 1.
fn header_line(text: &str, table: &str, index: usize) -> usize {
    let header = format!("[[{table}]]");
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.trim() == header)
        .nth(index)
        .map_or(1, |(n, _)| n + 1)
}

type Invalid = (&'static str, usize, String);

/// Checks what serde cannot: names that must exist, images that must parse, times in range.
pub fn validate(scenario: &Scenario) -> Result<(), Invalid> {
    let mut ids = BTreeSet::new();
    for (i, cluster) in scenario.clusters.iter().enumerate() {
        let bad = |reason: String| ("cluster", i, reason);
        if cluster.id.is_empty() || cluster.id == REGION {
            return Err(bad(format!(
                "cluster id {:?} is reserved or empty",
                cluster.id
            )));
        }
        if !ids.insert(cluster.id.as_str()) {
            return Err(bad(format!("cluster `{}` is defined twice", cluster.id)));
        }
        parse_images(&cluster.images).map_err(bad)?;
        if let Some(text) = &cluster.declared {
            osmesh_core::parse_declared(&format!("cluster {} declared", cluster.id), text)
                .map_err(|e| bad(e.to_string()))?;
        }
    }
    let duration = scenario.settings.duration_ms;
    for (i, fault) in scenario.faults.iter().enumerate() {
        let bad = |reason: String| ("fault", i, reason);
        if fault.at_ms() > duration {
            return Err(bad(format!(
                "at_ms {} is after duration_ms {duration}",
                fault.at_ms()
            )));
        }
        for name in fault.names() {
            if !ids.contains(name) {
                return Err(bad(format!("no cluster named `{name}`")));
            }
        }
        match fault {
            Fault::Crash { node, .. } | Fault::Restart { node, .. }
                if node != REGION && !ids.contains(node.as_str()) =>
            {
                return Err(bad(format!("no cluster or region named `{node}`")));
            }
            Fault::DropRate { rate, .. }
            | Fault::DuplicateRate { rate, .. }
            | Fault::ReorderRate { rate, .. }
                if !(0.0..=1.0).contains(rate) =>
            {
                return Err(bad(format!("rate {rate} is not between 0 and 1")));
            }
            Fault::Delay { min_ms, max_ms, .. } if min_ms > max_ms => {
                return Err(bad(format!("min_ms {min_ms} exceeds max_ms {max_ms}")));
            }
            Fault::ImagesChange { images, .. } => {
                parse_images(images).map_err(bad)?;
            }
            Fault::Impersonate(attack) => {
                parse_images(&attack.images).map_err(bad)?;
            }
            _ => {}
        }
    }
    for (i, op) in scenario.ops.iter().enumerate() {
        if op.at_ms() > duration {
            return Err((
                "op",
                i,
                format!("at_ms {} is after duration_ms {duration}", op.at_ms()),
            ));
        }
    }
    validate_regions(scenario)?;
    let s = &scenario.settings;
    if s.latency_min_ms > s.latency_max_ms {
        return Err((
            "settings",
            0,
            "latency_min_ms exceeds latency_max_ms".into(),
        ));
    }
    if s.check_interval_ms == 0 || s.heartbeat_interval_ms == 0 || s.refresh_interval_ms == 0 {
        return Err(("settings", 0, "intervals must be positive".into()));
    }
    Ok(())
}

/// The most regions a world runs (each is a region actor and its registry beat).
pub const MAX_SIM_REGIONS: usize = 8;

/// The region count is in range, and every region a fault or an operation names exists; a
/// crash or restart names a region only for `node = "region"`.
fn validate_regions(scenario: &Scenario) -> Result<(), Invalid> {
    let regions = scenario.settings.regions;
    if !(1..=MAX_SIM_REGIONS).contains(&regions) {
        let reason = format!("regions must be 1 to {MAX_SIM_REGIONS}");
        return Err(("settings", 0, reason));
    }
    for (i, fault) in scenario.faults.iter().enumerate() {
        if let Some(region) = fault.region() {
            check_region(region, regions).map_err(|r| ("fault", i, r))?;
        }
        if let Fault::Crash { node, region, .. } | Fault::Restart { node, region, .. } = fault {
            if node != REGION && region.is_some() {
                let reason = format!("`region` names a region; `{node}` is a cluster");
                return Err(("fault", i, reason));
            }
        }
    }
    for (i, op) in scenario.ops.iter().enumerate() {
        if let Some(region) = op.region() {
            check_region(region, regions).map_err(|r| ("op", i, r))?;
        }
    }
    Ok(())
}

/// A region name (`r1` … `rN`) that exists in a world of `regions` regions.
fn check_region(name: &str, regions: usize) -> Result<(), String> {
    match crate::world::regions::region_index(name, regions) {
        Some(_) => Ok(()),
        None => Err(format!(
            "no region named `{name}` (this world has {regions}: r1 to r{regions})"
        )),
    }
}

/// Parses image strings into a sorted set of boot images.
pub fn parse_images(specs: &[String]) -> Result<Vec<BootImage>, String> {
    let mut images = specs
        .iter()
        .map(|spec| parse_image(spec))
        .collect::<Result<Vec<_>, _>>()?;
    images.sort();
    images.dedup();
    Ok(images)
}

fn parse_image(spec: &str) -> Result<BootImage, String> {
    let (path, purposes) = match spec.split_once(':') {
        Some((path, purposes)) => (path, Some(purposes)),
        None => (spec, None),
    };
    let parts: Vec<&str> = path.split('/').collect();
    let [osystem, arch, subarch, release] = parts[..] else {
        return Err(format!(
            "image {spec:?} is not \"osystem/arch/subarch/release[:purpose+purpose]\""
        ));
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("image {spec:?} has an empty part"));
    }
    let purposes = match purposes {
        None => BTreeSet::from([Purpose::Commissioning, Purpose::Install, Purpose::Xinstall]),
        Some(list) => list
            .split('+')
            .map(|p| {
                Purpose::ALL
                    .into_iter()
                    .find(|known| known.as_str() == p)
                    .ok_or_else(|| format!("image {spec:?}: unknown purpose {p:?}"))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(BootImage {
        osystem: osystem.into(),
        arch: arch.into(),
        subarch: subarch.into(),
        release: release.into(),
        label: "sim".into(),
        purposes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse_scenario("x.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_field_is_refused_with_its_line() {
        let text = "[[cluster]]\nid = \"c1\"\nimagez = []\n";
        assert_eq!(error(text).split(": ").next(), Some("x.toml:3"));
    }

    #[test]
    fn unknown_cluster_in_a_fault_names_the_fault_line() {
        let text =
            "[[cluster]]\nid = \"c1\"\n\n[[fault]]\nfault = \"crash\"\nat_ms = 1\nnode = \"c9\"\n";
        assert_eq!(error(text), "x.toml:4: no cluster or region named `c9`");
    }

    #[test]
    fn a_misspelt_op_or_fault_is_a_parse_error() {
        let op = "[[cluster]]\nid = \"c1\"\n[[op]]\nop = \"list_osystem\"\nat_ms = 1\n";
        assert!(
            error(op).contains("unknown variant `list_osystem`"),
            "{}",
            error(op)
        );
        let fault = "[[cluster]]\nid = \"c1\"\n[[fault]]\nfault = \"partiton\"\nat_ms = 1\ncluster = \"c1\"\n";
        assert!(
            error(fault).contains("unknown variant `partiton`"),
            "{}",
            error(fault)
        );
    }

    #[test]
    fn an_op_field_it_does_not_have_is_refused() {
        let text =
            "[[cluster]]\nid = \"c1\"\n[[op]]\nop = \"list_clusters\"\nat_ms = 1\nexpct = {}\n";
        assert!(
            error(text).contains("unknown field `expct`"),
            "{}",
            error(text)
        );
        let good = "[[cluster]]\nid = \"c1\"\n[[op]]\nop = \"list_clusters\"\nat_ms = 1\n";
        let scenario = parse_scenario("x.toml", good).expect("parses");
        assert_eq!(scenario.ops[0].describe(), "list_clusters");
    }

    #[test]
    fn a_region_that_does_not_exist_is_refused_with_its_line() {
        let crash = "[settings]\nregions = 2\n[[cluster]]\nid = \"c1\"\n[[fault]]\nfault = \"crash\"\nat_ms = 1\nnode = \"region\"\nregion = \"r3\"\n";
        assert_eq!(
            error(crash),
            "x.toml:5: no region named `r3` (this world has 2: r1 to r2)"
        );
        let op = "[[cluster]]\nid = \"c1\"\n[[op]]\nop = \"list_clusters\"\nat_ms = 1\nregion = \"r2\"\n";
        assert!(
            error(op).starts_with("x.toml:3: no region named `r2`"),
            "{}",
            error(op)
        );
        let cluster = "[settings]\nregions = 2\n[[cluster]]\nid = \"c1\"\n[[fault]]\nfault = \"crash\"\nat_ms = 1\nnode = \"c1\"\nregion = \"r1\"\n";
        assert!(
            error(cluster).contains("`c1` is a cluster"),
            "{}",
            error(cluster)
        );
        let none = "[settings]\nregions = 0\n[[cluster]]\nid = \"c1\"\n";
        assert!(
            error(none).contains("regions must be 1 to 8"),
            "{}",
            error(none)
        );
        let good = "[settings]\nregions = 3\n[[cluster]]\nid = \"c1\"\n[[fault]]\nfault = \"partition\"\nat_ms = 1\ncluster = \"c1\"\nregion = \"r3\"\n";
        assert!(parse_scenario("x.toml", good).is_ok());
    }

    #[test]
    fn bad_image_is_refused() {
        let text = "[[cluster]]\nid = \"c1\"\nimages = [\"ubuntu/amd64\"]\n";
        assert!(error(text).starts_with("x.toml:1: image \"ubuntu/amd64\""));
    }
}
