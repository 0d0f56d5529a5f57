//! Nodes: enlisting through a known cluster, and allocation that only picks a node whose
//! cluster is connected and holds a boot image for the requested OS, release and arch (and
//! only when a license key is stored for a release that needs one). Allocation is the store's
//! atomic claim, so concurrent requests never get the same node. A refusal says, per cluster,
//! why it could not serve.

use osmesh_core::mesh::{MeshView, NoAnswerReason};
use osmesh_core::{ClusterId, Purpose};
use std::collections::BTreeMap;

use super::license::list_or_none;
pub use osmesh_api::nodes::{AllocateRequest, EnlistRequest, NodeView};

use super::service::{RegionService, ServiceError};
use crate::store::{AllocationRequest, NewNode, NodeRecord, StoreError};

/// A node can be installed by a cluster holding an image of the release with either
/// purpose: `install` (netboot kernel + initrd, the installer runs) or `xinstall` (a root
/// image or tarball written to disk, as curtin does). Images with only `commissioning` or
/// `diskless` do not count.
pub const INSTALL_PURPOSES: [Purpose; 2] = [Purpose::Install, Purpose::Xinstall];

/// The subarchitecture of a node enlisted without one.
pub const DEFAULT_SUBARCH: &str = "generic";

/// A node as the API shows it.
pub fn node_view(node: NodeRecord) -> NodeView {
    NodeView {
        id: node.id,
        system_id: node.system_id,
        hostname: node.hostname,
        arch: node.arch,
        subarch: node.subarch,
        cluster: node.cluster_id,
        power_type: node.power_type,
        power_parameters: node.power_parameters,
        status: node.status.as_str().to_owned(),
        osystem: node.osystem,
        distro_series: node.distro_series,
        created_at_ms: node.created_at_ms,
        allocated_at_ms: node.allocated_at_ms,
    }
}

/// Where an allocation may look, decided from the view alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocationPlan {
    /// Connected clusters holding an install or xinstall image of the release for the arch
    /// (sorted). The view counts only connected clusters as answering, so a disconnected
    /// cluster is never here, whatever it last reported.
    pub clusters: Vec<ClusterId>,
    pub requires_license_key: bool,
    /// Every other cluster of the view, with why it cannot serve the request.
    pub cannot_serve: BTreeMap<ClusterId, String>,
}

/// How many cluster names one reason lists in a refusal before it says "and N more".
pub const MAX_NAMES_PER_REASON: usize = 20;

/// Why each cluster of `view` other than those in `serving` cannot install
/// `osystem`/`release` on `arch`. `disconnected_since` says since when (unix ms) each
/// disconnected cluster has been so, where known.
pub fn cannot_serve(
    view: &MeshView,
    osystem: &str,
    release: &str,
    arch: &str,
    serving: &[ClusterId],
    disconnected_since: &BTreeMap<ClusterId, i64>,
) -> BTreeMap<ClusterId, String> {
    let detail = view.release(osystem, release);
    let mut reasons = BTreeMap::new();
    for (cluster, why) in &view.not_answered {
        let mut reason = match (why, disconnected_since.get(cluster)) {
            (NoAnswerReason::NotConnected, Some(since)) => {
                format!("not connected since {since} ms")
            }
            (other, _) => other.to_string(),
        };
        let last_known = detail
            .and_then(|d| d.last_known.get(arch))
            .is_some_and(|on| on.contains_key(cluster));
        if last_known {
            reason.push_str(" (last known to hold an image; not used until it reconnects)");
        }
        reasons.insert(cluster.clone(), reason);
    }
    for cluster in view.answered.iter().filter(|c| !serving.contains(c)) {
        let reason = match detail {
            Some(d) if d.supported_by.contains(cluster) => {
                let archs: Vec<&str> = d
                    .available
                    .iter()
                    .filter(|(_, on)| on.contains_key(cluster))
                    .map(|(a, _)| a.as_str())
                    .collect();
                if archs.contains(&arch) {
                    format!("its {arch} image of {osystem}/{release} serves neither install nor xinstall")
                } else {
                    format!(
                        "holds no {arch} image of {osystem}/{release} (has: {})",
                        list_or_none(&archs)
                    )
                }
            }
            _ => format!("does not know {osystem}/{release}"),
        };
        reasons.insert(cluster.clone(), reason);
    }
    reasons
}

/// `reason: a, b, c; reason: d`: clusters grouped by reason, each group's names capped.
pub fn group_reasons(reasons: &BTreeMap<ClusterId, String>) -> String {
    // Groups in the order of their first cluster, so the text reads in cluster-id order.
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (cluster, reason) in reasons {
        let at = *index.entry(reason).or_insert_with(|| {
            groups.push((reason, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(cluster.as_str());
    }
    let parts: Vec<String> = groups
        .into_iter()
        .map(|(reason, names)| {
            let shown = names.len().min(MAX_NAMES_PER_REASON);
            let more = match names.len() - shown {
                0 => String::new(),
                hidden => format!(" and {hidden} more"),
            };
            format!("{}{more}: {reason}", names[..shown].join(", "))
        })
        .collect();
    if parts.is_empty() {
        return "none".into();
    }
    parts.join("; ")
}

/// Which clusters can install `osystem`/`release` on `arch`, or why none can: the OS or
/// release is unknown everywhere (`no_such_osystem`, `no_such_release`), or no cluster holds
/// an image for it (`no_cluster_with_image`).
pub fn plan_allocation(
    view: &MeshView,
    osystem: &str,
    release: &str,
    arch: &str,
    disconnected_since: &BTreeMap<ClusterId, i64>,
) -> Result<AllocationPlan, ServiceError> {
    let detail = super::service::known_release(view, osystem, release)?;
    let mut clusters: Vec<ClusterId> = INSTALL_PURPOSES
        .iter()
        .flat_map(|purpose| view.is_available(osystem, release, arch, *purpose))
        .collect();
    clusters.sort();
    clusters.dedup();
    let cannot = cannot_serve(view, osystem, release, arch, &clusters, disconnected_since);
    if clusters.is_empty() {
        return Err(ServiceError::conflict(
            "no_cluster_with_image",
            format!(
                "no connected cluster holds an install or xinstall image of {osystem}/{release} for {arch}; per cluster: {}",
                group_reasons(&cannot)
            ),
        ));
    }
    Ok(AllocationPlan {
        clusters,
        requires_license_key: detail.requires_license_key,
        cannot_serve: cannot,
    })
}

impl RegionService {
    /// Enlists a node, `ready`, on a cluster the region knows.
    pub async fn enlist_node(&self, request: &EnlistRequest) -> Result<NodeView, ServiceError> {
        let hostname = request.hostname.trim();
        if !valid_hostname(hostname) {
            return Err(ServiceError::bad_request(
                "bad_hostname",
                format!(
                    "{hostname:?} is not a hostname (letters, digits, '-' and '.', at most 253)"
                ),
            ));
        }
        let arch = request.arch.trim();
        let subarch = request
            .subarch
            .as_deref()
            .map_or(DEFAULT_SUBARCH, str::trim);
        for (field, value) in [("arch", arch), ("subarch", subarch)] {
            if !valid_word(value) {
                return Err(ServiceError::bad_request(
                    "bad_body",
                    format!("{field} {value:?} must be 1 to 64 letters, digits, '-', '.' or '_'"),
                ));
            }
        }
        check_stored_fields(request)?;
        let known = self
            .store()
            .get_cluster(&request.cluster)
            .map_err(ServiceError::from_store)?;
        if known.is_none() {
            return Err(self.unknown_cluster(&request.cluster).await);
        }
        let node = NewNode {
            system_id: request.system_id.clone(),
            hostname: hostname.to_owned(),
            arch: arch.to_owned(),
            subarch: subarch.to_owned(),
            cluster_id: request.cluster.clone(),
            power_type: request.power_type.clone(),
            power_parameters: request.power_parameters.clone(),
        };
        let now = self.now_ms().await?;
        let record = self.store().create_node(&node, now).map_err(|e| match e {
            StoreError::Conflict { .. } => ServiceError::conflict(
                "node_exists",
                format!("a node with hostname {hostname:?} or the same system_id exists"),
            ),
            other => ServiceError::from_store(other),
        })?;
        Ok(node_view(record))
    }

    /// Every node, sorted by id.
    pub async fn nodes(&self) -> Result<Vec<NodeView>, ServiceError> {
        let nodes = self
            .store()
            .list_nodes()
            .map_err(ServiceError::from_store)?;
        Ok(nodes.into_iter().map(node_view).collect())
    }

    pub async fn node(&self, id: i64) -> Result<NodeView, ServiceError> {
        self.node_record(id).await.map(node_view)
    }

    pub(crate) async fn node_record(&self, id: i64) -> Result<NodeRecord, ServiceError> {
        self.store()
            .get_node(id)
            .map_err(ServiceError::from_store)?
            .ok_or_else(|| node_not_found(id))
    }

    pub async fn delete_node(&self, id: i64) -> Result<(), ServiceError> {
        self.store().delete_node(id).map_err(|e| match e {
            StoreError::NotFound { .. } => node_not_found(id),
            other => ServiceError::from_store(other),
        })
    }

    /// Allocates one ready node for the request (see [`plan_allocation`] and
    /// [`INSTALL_PURPOSES`]); every refusal is a conflict whose code says why:
    /// `no_such_osystem`, `no_such_release`, `no_cluster_with_image`,
    /// `license_key_missing` or `no_free_node`.
    pub async fn allocate_node(&self, request: &AllocateRequest) -> Result<NodeView, ServiceError> {
        // The clock is read before the view, so a cluster that disconnects after the view was
        // taken shows a `disconnected_since_ms` no earlier than the allocation's timestamp.
        let now = self.now_ms().await?;
        let answer = self.osystems_cached().await?;
        let disconnected_since: BTreeMap<ClusterId, i64> = answer
            .clusters
            .iter()
            .filter_map(|p| p.disconnected_since_ms.map(|at| (p.cluster.clone(), at)))
            .collect();
        let view = answer.view;
        let plan = plan_allocation(
            &view,
            &request.osystem,
            &request.distro_series,
            &request.arch,
            &disconnected_since,
        )?;
        if plan.requires_license_key {
            let key = self
                .store()
                .get_license_key(&request.osystem, &request.distro_series)
                .map_err(ServiceError::from_store)?;
            if key.is_none() {
                return Err(ServiceError::conflict(
                    "license_key_missing",
                    format!(
                        "{}/{} requires a license key and none is stored; add one first",
                        request.osystem, request.distro_series
                    ),
                ));
            }
        }
        let claim = AllocationRequest {
            arch: &request.arch,
            subarch: request.subarch.as_deref(),
            cluster_ids: &plan.clusters,
            hostname: request.hostname.as_deref(),
            osystem: &request.osystem,
            distro_series: &request.distro_series,
        };
        match self
            .store()
            .allocate(&claim, now)
            .map_err(ServiceError::from_store)?
        {
            Some(node) => {
                tracing::info!(node = node.id, hostname = %node.hostname, osystem = %request.osystem, release = %request.distro_series, "node allocated");
                Ok(node_view(node))
            }
            None => Err(self.no_free_node(request, &plan)),
        }
    }

    /// Returns a node to `ready`.
    pub async fn release_node(&self, id: i64) -> Result<NodeView, ServiceError> {
        self.store()
            .release_node(id)
            .map(node_view)
            .map_err(|e| match e {
                StoreError::NotFound { .. } => node_not_found(id),
                other => ServiceError::from_store(other),
            })
    }

    /// The refusal when the connected image clusters have no free node: every cluster of the
    /// view, grouped by why it could not serve.
    fn no_free_node(&self, request: &AllocateRequest, plan: &AllocationPlan) -> ServiceError {
        let mut reasons = plan.cannot_serve.clone();
        let named = request
            .hostname
            .as_deref()
            .map(|h| format!(" named {h:?}"))
            .unwrap_or_default();
        for cluster in &plan.clusters {
            reasons.insert(
                cluster.clone(),
                format!("no ready {} node{named}", request.arch),
            );
        }
        ServiceError::conflict(
            "no_free_node",
            format!(
                "no ready {} node{named} on the connected clusters with an image of {}/{}; per cluster: {}",
                request.arch,
                request.osystem,
                request.distro_series,
                group_reasons(&reasons)
            ),
        )
    }

    async fn unknown_cluster(&self, cluster: &ClusterId) -> ServiceError {
        let known = match self.store().list_clusters() {
            Ok(list) => list.into_iter().map(|c| c.id.0).collect(),
            Err(_) => Vec::new(),
        };
        ServiceError::bad_request(
            "unknown_cluster",
            format!(
                "the region knows no cluster {cluster}; known: {}",
                list_or_none(&known)
            ),
        )
    }
}

pub(crate) fn node_not_found(id: i64) -> ServiceError {
    ServiceError::not_found("no_such_node", format!("no node with id {id}"))
}

/// The length and character rules of `osmesh_core::fields` for what enlisting stores as given.
fn check_stored_fields(request: &EnlistRequest) -> Result<(), ServiceError> {
    use osmesh_core::fields::{
        MAX_POWER_PARAMETERS, POWER_PARAMETER_KEY, POWER_PARAMETER_VALUE, POWER_TYPE, SYSTEM_ID,
    };
    let bad =
        |e: osmesh_core::fields::FieldError| ServiceError::bad_request("bad_field", e.to_string());
    if let Some(id) = &request.system_id {
        SYSTEM_ID.check(id).map_err(bad)?;
    }
    if let Some(power_type) = &request.power_type {
        POWER_TYPE.check(power_type).map_err(bad)?;
    }
    let Some(params) = &request.power_parameters else {
        return Ok(());
    };
    let not_flat = || {
        ServiceError::bad_request(
            "bad_field",
            format!("power_parameters: an object of at most {MAX_POWER_PARAMETERS} keys, each a string, number or boolean"),
        )
    };
    let params = params.as_object().ok_or_else(not_flat)?;
    if params.len() > MAX_POWER_PARAMETERS {
        return Err(not_flat());
    }
    for (key, value) in params {
        POWER_PARAMETER_KEY.check(key).map_err(bad)?;
        match value {
            serde_json::Value::String(v) => POWER_PARAMETER_VALUE.check(v).map_err(bad)?,
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {}
            _ => return Err(not_flat()),
        }
    }
    Ok(())
}

fn valid_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with(['-', '.'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_core::mesh::{ClusterAnswer, ClusterReport};
    use osmesh_core::{BootImage, OsystemInfo, ReleaseInfo};

    #[test]
    fn a_word_takes_exactly_what_its_refusal_names() {
        let longest = "a".repeat(64);
        for ok in ["amd64", "hwe-22.04", "ga_22", longest.as_str()] {
            assert!(valid_word(ok), "{ok:?}");
        }
        let too_long = "a".repeat(65);
        for bad in ["", "a b", "a/b", "a\u{202e}", too_long.as_str()] {
            assert!(!valid_word(bad), "{bad:?}");
        }
    }

    fn os(name: &str, release: &str, key: bool) -> OsystemInfo {
        OsystemInfo {
            name: name.into(),
            title: name.into(),
            releases: vec![ReleaseInfo {
                name: release.into(),
                title: release.into(),
                requires_license_key: key,
                can_commission: false,
                end_of_life: false,
            }],
            default_release: None,
            default_commissioning_release: None,
        }
    }

    fn image(os: &str, arch: &str, release: &str, purpose: Purpose) -> BootImage {
        BootImage {
            osystem: os.into(),
            arch: arch.into(),
            subarch: "generic".into(),
            release: release.into(),
            label: "stable".into(),
            purposes: [purpose].into(),
        }
    }

    /// `a` holds ubuntu/jammy amd64 for install, `b` for xinstall, `c` only for
    /// commissioning; `w` holds windows/win2019 amd64 (which needs a key).
    fn view() -> MeshView {
        let report = |osystems: Vec<_>, images: Vec<_>| {
            ClusterAnswer::Answered(ClusterReport {
                osystems: osystems.into(),
                images: images.into(),
            })
        };
        let jammy = |p| vec![image("ubuntu", "amd64", "jammy", p)];
        let answers = BTreeMap::from([
            (
                ClusterId::new("a"),
                report(vec![os("ubuntu", "jammy", false)], jammy(Purpose::Install)),
            ),
            (
                ClusterId::new("b"),
                report(vec![os("ubuntu", "jammy", false)], jammy(Purpose::Xinstall)),
            ),
            (
                ClusterId::new("c"),
                report(
                    vec![os("ubuntu", "jammy", false)],
                    jammy(Purpose::Commissioning),
                ),
            ),
            (
                ClusterId::new("w"),
                report(
                    vec![os("windows", "win2019", true)],
                    vec![image("windows", "amd64", "win2019", Purpose::Install)],
                ),
            ),
        ]);
        MeshView::from_answers(&answers)
    }

    fn check(os: &str, release: &str, arch: &str, expected: Result<(&[&str], bool), &str>) {
        let got = plan_allocation(&view(), os, release, arch, &BTreeMap::new())
            .map(|p| {
                (
                    p.clusters
                        .iter()
                        .map(|c| c.as_str().to_owned())
                        .collect::<Vec<_>>(),
                    p.requires_license_key,
                )
            })
            .map_err(|e| e.code);
        let expected = expected.map(|(cs, key)| (cs.iter().map(|c| c.to_string()).collect(), key));
        assert_eq!(got, expected, "{os}/{release}/{arch}");
    }

    #[test]
    fn allocation_plans_use_install_and_xinstall_images_only() {
        check("ubuntu", "jammy", "amd64", Ok((&["a", "b"], false)));
        check("windows", "win2019", "amd64", Ok((&["w"], true)));
        check("ubuntu", "jammy", "arm64", Err("no_cluster_with_image"));
        check("ubuntu", "noble", "amd64", Err("no_such_release"));
        check("plan9", "4", "amd64", Err("no_such_osystem"));
    }

    #[test]
    fn a_disconnected_holder_is_never_planned_and_the_refusal_says_why_per_cluster() {
        let report = |osystems: Vec<_>, images: Vec<_>| ClusterReport {
            osystems: osystems.into(),
            images: images.into(),
        };
        let jammy = |p| vec![image("ubuntu", "amd64", "jammy", p)];
        let answers = BTreeMap::from([
            (
                ClusterId::new("a"),
                ClusterAnswer::LastKnown {
                    reason: NoAnswerReason::NotConnected,
                    report: report(vec![os("ubuntu", "jammy", false)], jammy(Purpose::Install)),
                },
            ),
            (
                ClusterId::new("b"),
                ClusterAnswer::Answered(report(
                    vec![os("ubuntu", "jammy", false)],
                    vec![image("ubuntu", "arm64", "jammy", Purpose::Install)],
                )),
            ),
            (
                ClusterId::new("c"),
                ClusterAnswer::Answered(report(vec![os("centos", "centos7", false)], vec![])),
            ),
            (
                ClusterId::new("d"),
                ClusterAnswer::NoAnswer(NoAnswerReason::Timeout),
            ),
        ]);
        let view = MeshView::from_answers(&answers);
        let since = BTreeMap::from([(ClusterId::new("a"), 1234)]);
        let refusal = plan_allocation(&view, "ubuntu", "jammy", "amd64", &since)
            .map(|p| p.clusters)
            .unwrap_err();
        assert_eq!(refusal.code, "no_cluster_with_image");
        for part in [
            "a: not connected since 1234 ms (last known to hold an image",
            "b: holds no amd64 image of ubuntu/jammy (has: arm64)",
            "c: does not know ubuntu/jammy",
            "d: timed out",
        ] {
            assert!(
                refusal.message.contains(part),
                "{part}: {}",
                refusal.message
            );
        }
    }

    #[test]
    fn reasons_are_grouped_and_long_groups_capped() {
        let mut reasons: BTreeMap<ClusterId, String> = (0..25)
            .map(|i| {
                (
                    ClusterId::new(format!("c{i:02}")),
                    "not connected".to_owned(),
                )
            })
            .collect();
        reasons.insert(ClusterId::new("z"), "does not know it".into());
        let text = group_reasons(&reasons);
        assert!(text.starts_with("c00, c01"), "{text}");
        assert!(text.contains("c19 and 5 more: not connected"), "{text}");
        assert!(text.ends_with("; z: does not know it"), "{text}");
        assert_eq!(group_reasons(&BTreeMap::new()), "none");
    }
}

#[cfg(test)]
#[path = "nodes_rules_tests.rs"]
mod rules_tests;
