//! The invariants the simulator checks at every step, as plain functions over what the region
//! answered and what the simulated clusters really hold, plus the durability checks that
//! compare the store with what it acknowledged before (a list the domain work extends).

use osmesh_actors::region::OsystemsAnswer;
use osmesh_actors::store::{NodeStatus, Store};
use osmesh_core::os::{Registry, RegistryConfig};
use osmesh_core::{BootImage, ClusterAnswer, ClusterId, ClusterReport, MeshView};
use std::collections::{BTreeMap, BTreeSet};

/// `(osystem, release, arch)` of an image: what "available" is claimed about.
pub type ImageKey = (String, String, String);

pub fn image_key(image: &BootImage) -> ImageKey {
    (
        image.osystem.clone(),
        image.release.clone(),
        image.arch.clone(),
    )
}

/// The region never calls an OS/release/arch available on a cluster that has never held an
/// image of it (the cached view may lag, so any set the cluster held counts).
pub fn available_only_where_held(
    answer: &OsystemsAnswer,
    held: &BTreeMap<String, BTreeSet<ImageKey>>,
) -> Result<(), String> {
    for os in &answer.view.osystems {
        for release in &os.releases {
            for (arch, clusters) in &release.available {
                for cluster in clusters.keys() {
                    let key = (os.name.clone(), release.name.clone(), arch.clone());
                    let ever = held.get(cluster.as_str()).is_some_and(|h| h.contains(&key));
                    if !ever {
                        return Err(format!(
                            "{} answer calls {}/{}/{arch} available on {cluster}, which never held such an image",
                            answer.source_label(),
                            os.name,
                            release.name
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Every cluster that ever registered is named by every answer: as answering or not.
pub fn names_every_cluster(
    answer: &OsystemsAnswer,
    registered: &BTreeSet<String>,
) -> Result<(), String> {
    let view = &answer.view;
    let parts: BTreeSet<&str> = answer.clusters.iter().map(|p| p.cluster.as_str()).collect();
    for id in registered {
        let cluster = ClusterId::new(id.clone());
        let in_view = view.answered.contains(&cluster) || view.not_answered.contains_key(&cluster);
        if !in_view || !parts.contains(id.as_str()) {
            return Err(format!(
                "{} answer does not name registered cluster {id} (view: answered {:?}, not answered {:?})",
                answer.source_label(),
                view.answered.iter().map(ClusterId::as_str).collect::<Vec<_>>(),
                view.not_answered.keys().map(ClusterId::as_str).collect::<Vec<_>>(),
            ));
        }
    }
    Ok(())
}

/// A live answer arrives by its deadline, in virtual time.
pub fn live_answer_in_time(waited_ms: u64, deadline_ms: u64) -> Result<(), String> {
    if waited_ms > deadline_ms {
        return Err(format!(
            "live answer arrived after {waited_ms} ms, past its deadline of {deadline_ms} ms"
        ));
    }
    Ok(())
}

/// What a cluster with `images` and `config` would report: its registry's listing.
pub fn true_report(config: &RegistryConfig, images: &[BootImage]) -> ClusterReport {
    let registry = Registry::new(config, images);
    ClusterReport {
        osystems: registry.list(),
        images: registry.boot_images().to_vec(),
    }
}

/// The cached answer equals the clusters' true state: every cluster connected, and the view
/// the merge of their true reports. `Err` says what still differs.
pub fn converged(
    answer: &OsystemsAnswer,
    truth: &BTreeMap<ClusterId, ClusterReport>,
) -> Result<(), String> {
    if let Some(part) = answer.clusters.iter().find(|p| !p.connected) {
        return Err(format!("{} is not connected", part.cluster));
    }
    let answers: BTreeMap<ClusterId, ClusterAnswer> = truth
        .iter()
        .map(|(id, report)| (id.clone(), ClusterAnswer::Answered(report.clone())))
        .collect();
    let expected = MeshView::from_answers(&answers);
    if answer.view.answered != expected.answered {
        return Err("the set of answering clusters differs".into());
    }
    if answer.view.osystems != expected.osystems {
        return Err("the merged OS view differs from the clusters' images".into());
    }
    Ok(())
}

trait SourceLabel {
    fn source_label(&self) -> &'static str;
}

impl SourceLabel for OsystemsAnswer {
    fn source_label(&self) -> &'static str {
        match self.source {
            osmesh_actors::region::ReadPath::Cached => "cached",
            osmesh_actors::region::ReadPath::Live => "live",
        }
    }
}

/// What the region's service acknowledged to an operator during the run: the writes the
/// durability checks hold the store to, across every region restart.
#[derive(Clone, Debug, Default)]
pub struct Acked {
    /// `(osystem, release)` → `(key, validated_by)` of every key whose add was answered with
    /// success.
    pub license_keys: BTreeMap<(String, String), (String, String)>,
    /// `(preseed, version)` → content hash of every version an answer showed.
    pub preseed_versions: BTreeMap<(String, i32), String>,
    /// Node id → the allocation answered, until a release of that node is answered.
    pub allocations: BTreeMap<i64, AckedAllocation>,
}

/// One allocation the service answered with success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckedAllocation {
    pub hostname: String,
    pub cluster: String,
    pub osystem: String,
    pub distro_series: String,
}

/// A check that nothing the store acknowledged is lost, across region restarts. Each
/// `check` compares the store with what the service acknowledged and with what earlier
/// checks saw, then remembers the new state.
pub trait DurabilityCheck {
    fn name(&self) -> &'static str;
    fn check(&mut self, store: &Store, acked: &Acked) -> Result<(), String>;
}

/// Every durability check the simulator runs.
pub fn durability_checks() -> Vec<Box<dyn DurabilityCheck>> {
    vec![
        Box::new(ClustersKept::default()),
        Box::new(LicenseKeysKept),
        Box::new(PreseedVersionsKept::default()),
        Box::new(AllocationsKept),
    ]
}

/// Every acknowledged license key is stored, unchanged, with the cluster that said yes.
pub struct LicenseKeysKept;

impl DurabilityCheck for LicenseKeysKept {
    fn name(&self) -> &'static str {
        "license keys kept"
    }

    fn check(&mut self, store: &Store, acked: &Acked) -> Result<(), String> {
        for ((os, release), (key, validated_by)) in &acked.license_keys {
            let stored = store
                .get_license_key(os, release)
                .map_err(|e| format!("cannot read license keys: {e}"))?;
            let Some(stored) = stored else {
                return Err(format!("the acknowledged key of {os}/{release} is gone"));
            };
            if &stored.license_key != key || stored.validated_by.as_str() != validated_by {
                return Err(format!(
                    "the acknowledged key of {os}/{release} (validated by {validated_by}) is now {} validated by {}",
                    stored.masked(),
                    stored.validated_by
                ));
            }
        }
        Ok(())
    }
}

/// Every preseed version acknowledged or ever seen stays in its history with the same
/// content; versions are never rewritten.
#[derive(Default)]
pub struct PreseedVersionsKept {
    seen: BTreeMap<(String, i32), String>,
}

impl DurabilityCheck for PreseedVersionsKept {
    fn name(&self) -> &'static str {
        "preseed versions kept"
    }

    fn check(&mut self, store: &Store, acked: &Acked) -> Result<(), String> {
        let read = |e| format!("cannot read preseeds: {e}");
        let mut now: BTreeMap<(String, i32), String> = BTreeMap::new();
        for record in store.list_preseeds().map_err(read)? {
            let name = record.current.name;
            for version in store.history(&name).map_err(read)? {
                now.insert((name.clone(), version.version), version.content_hash);
            }
        }
        for ((name, version), hash) in self.seen.iter().chain(&acked.preseed_versions) {
            match now.get(&(name.clone(), *version)) {
                None => return Err(format!("version {version} of preseed {name:?} is gone")),
                Some(current) if current != hash => {
                    return Err(format!(
                    "version {version} of preseed {name:?} was rewritten ({hash} is now {current})"
                ))
                }
                Some(_) => {}
            }
        }
        self.seen = now;
        Ok(())
    }
}

/// Every acknowledged allocation holds until its release is acknowledged.
pub struct AllocationsKept;

impl DurabilityCheck for AllocationsKept {
    fn name(&self) -> &'static str {
        "allocations kept"
    }

    fn check(&mut self, store: &Store, acked: &Acked) -> Result<(), String> {
        for (id, allocation) in &acked.allocations {
            let node = store
                .get_node(*id)
                .map_err(|e| format!("cannot read nodes: {e}"))?;
            let Some(node) = node else {
                return Err(format!(
                    "allocated node {} (id {id}) is gone",
                    allocation.hostname
                ));
            };
            let holds = node.status == NodeStatus::Allocated
                && node.osystem.as_deref() == Some(allocation.osystem.as_str())
                && node.distro_series.as_deref() == Some(allocation.distro_series.as_str());
            if !holds {
                return Err(format!(
                    "node {} was allocated for {}/{} and is now {} ({:?}/{:?})",
                    allocation.hostname,
                    allocation.osystem,
                    allocation.distro_series,
                    node.status.as_str(),
                    node.osystem,
                    node.distro_series
                ));
            }
        }
        Ok(())
    }
}

/// A license key is never stored without a cluster's yes: every stored key's `validated_by`
/// is a cluster that registered with the region and whose registry knew the release.
/// `knew` holds, per cluster, every `(osystem, release)` its registry ever listed.
pub fn keys_validated_by_knowers(
    store: &Store,
    registered: &BTreeSet<String>,
    knew: &BTreeMap<String, BTreeSet<(String, String)>>,
) -> Result<(), String> {
    let keys = store
        .list_license_keys()
        .map_err(|e| format!("cannot read license keys: {e}"))?;
    for key in keys {
        let by = key.validated_by.as_str();
        let release = (key.osystem.clone(), key.distro_series.clone());
        if !registered.contains(by) {
            return Err(format!(
                "the key of {}/{} names {by} as validator, which never registered",
                key.osystem, key.distro_series
            ));
        }
        if !knew.get(by).is_some_and(|k| k.contains(&release)) {
            return Err(format!(
                "the key of {}/{} names {by} as validator, whose registry never knew that release",
                key.osystem, key.distro_series
            ));
        }
    }
    Ok(())
}

/// Every `(osystem, release)` a registry lists.
pub fn known_releases(report: &ClusterReport) -> BTreeSet<(String, String)> {
    report
        .osystems
        .iter()
        .flat_map(|os| {
            os.releases
                .iter()
                .map(|r| (os.name.clone(), r.name.clone()))
        })
        .collect()
}

/// A node handed out by an acknowledged allocation: it was not already allocated (by an
/// acknowledged, unreleased allocation), and its cluster has held an image of the release for
/// the node's arch.
pub fn allocation_is_sound(
    id: i64,
    arch: &str,
    allocation: &AckedAllocation,
    acked: &Acked,
    held: &BTreeMap<String, BTreeSet<ImageKey>>,
) -> Result<(), String> {
    if let Some(earlier) = acked.allocations.get(&id) {
        return Err(format!(
            "node {} was handed out twice: already allocated for {}/{}",
            allocation.hostname, earlier.osystem, earlier.distro_series
        ));
    }
    let key = (
        allocation.osystem.clone(),
        allocation.distro_series.clone(),
        arch.to_owned(),
    );
    if !held
        .get(&allocation.cluster)
        .is_some_and(|h| h.contains(&key))
    {
        return Err(format!(
            "node {} was allocated for {}/{}/{arch} on {}, which never held such an image",
            allocation.hostname, allocation.osystem, allocation.distro_series, allocation.cluster
        ));
    }
    Ok(())
}

/// Registered clusters never disappear, and a saved snapshot never goes back in time.
#[derive(Default)]
pub struct ClustersKept {
    seen: BTreeMap<ClusterId, Option<i64>>,
}

impl DurabilityCheck for ClustersKept {
    fn name(&self) -> &'static str {
        "clusters kept"
    }

    fn check(&mut self, store: &Store, _acked: &Acked) -> Result<(), String> {
        let records = store
            .list_clusters()
            .map_err(|e| format!("cannot read clusters: {e}"))?;
        let now: BTreeMap<ClusterId, Option<i64>> = records
            .into_iter()
            .map(|r| (r.id, r.snapshot.map(|(_, at)| at)))
            .collect();
        for (id, saved_at) in &self.seen {
            let Some(current) = now.get(id) else {
                return Err(format!("cluster {id} was stored and is now gone"));
            };
            if current < saved_at {
                return Err(format!(
                    "cluster {id}'s snapshot went back from {saved_at:?} to {current:?}"
                ));
            }
        }
        self.seen = now;
        Ok(())
    }
}

/// Staleness is explicit (issue #16): in a cached answer, a cluster whose part says it is
/// disconnected is never counted as answered, never supports an OS or release and never
/// holds an available image; what it last reported is only "last known". (A live answer may
/// hold an answer a cluster gave just before its link closed, so only cached answers count.)
pub fn disconnected_never_answered(answer: &OsystemsAnswer) -> Result<(), String> {
    if answer.source != osmesh_actors::region::ReadPath::Cached {
        return Ok(());
    }
    let view = &answer.view;
    for part in answer.clusters.iter().filter(|p| !p.connected) {
        let cluster = &part.cluster;
        if view.answered.contains(cluster) {
            return Err(format!(
                "the cached answer counts disconnected cluster {cluster} as answered"
            ));
        }
        if part.disconnected_since_ms.is_none() {
            return Err(format!(
                "the cached answer calls {cluster} disconnected without saying since when"
            ));
        }
        for os in &view.osystems {
            let supports = os.supported_by.contains(cluster)
                || os.releases.iter().any(|r| r.supported_by.contains(cluster));
            let holds = os.releases.iter().find(|r| {
                r.available
                    .values()
                    .any(|clusters| clusters.contains_key(cluster))
            });
            if supports {
                return Err(format!(
                    "the cached answer counts disconnected cluster {cluster} as supporting {}",
                    os.name
                ));
            }
            if let Some(release) = holds {
                return Err(format!(
                    "the cached answer calls {}/{} available on disconnected cluster {cluster}",
                    os.name, release.name
                ));
            }
        }
    }
    Ok(())
}

/// No allocation lands on a disconnected cluster (issue #16): after an allocation answered
/// at `allocated_at_ms`, the node's cluster is connected in the region's answer, or lost its
/// link no earlier than the allocation (the service reads its clock before its view).
pub fn allocation_on_connected_cluster(
    cluster: &ClusterId,
    allocated_at_ms: i64,
    answer: &OsystemsAnswer,
) -> Result<(), String> {
    let Some(part) = answer.clusters.iter().find(|p| &p.cluster == cluster) else {
        return Err(format!("a node was allocated on unknown cluster {cluster}"));
    };
    match part.disconnected_since_ms {
        Some(since) if !part.connected && since < allocated_at_ms => Err(format!(
            "a node was allocated at {allocated_at_ms} ms on {cluster}, disconnected since {since} ms"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_actors::store::{AllocationRequest, NewLicenseKey, NewNode};

    fn store(dir: &tempfile::TempDir) -> Store {
        let path = dir.path().join("region.sqlite3");
        Store::open(path.to_str().expect("a UTF-8 path")).expect("the store opens")
    }

    #[test]
    fn a_lost_acknowledged_key_is_caught() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = store(&dir);
        let c1 = ClusterId::new("c1");
        let key = NewLicenseKey {
            osystem: "windows",
            distro_series: "win2019",
            license_key: "ABCDE-12345-FGHIJ-67890-KLMNO",
            validated_by: &c1,
            validated_at_ms: 1,
        };
        store.upsert_cluster_seen(&c1, "c1", 1).expect("registered");
        store.insert_license_key(&key, 1).expect("stored");
        let mut acked = Acked::default();
        acked.license_keys.insert(
            ("windows".into(), "win2019".into()),
            (key.license_key.into(), "c1".into()),
        );
        assert_eq!(LicenseKeysKept.check(&store, &acked), Ok(()));
        store
            .delete_license_key("windows", "win2019")
            .expect("deleted");
        let lost = LicenseKeysKept.check(&store, &acked).unwrap_err();
        assert_eq!(lost, "the acknowledged key of windows/win2019 is gone");
    }

    #[test]
    fn an_allocation_undone_without_an_acknowledged_release_is_caught() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = store(&dir);
        let c1 = ClusterId::new("c1");
        store.upsert_cluster_seen(&c1, "c1", 1).expect("registered");
        let node = NewNode {
            system_id: None,
            hostname: "n1".into(),
            arch: "amd64".into(),
            subarch: "generic".into(),
            cluster_id: c1.clone(),
            power_type: None,
            power_parameters: None,
        };
        store.create_node(&node, 1).expect("enlisted");
        let claim = AllocationRequest {
            arch: "amd64",
            subarch: None,
            cluster_ids: &[c1],
            hostname: None,
            osystem: "ubuntu",
            distro_series: "jammy",
        };
        let node = store
            .allocate(&claim, 2)
            .expect("allocates")
            .expect("a node");
        let mut acked = Acked::default();
        acked.allocations.insert(
            node.id,
            AckedAllocation {
                hostname: "n1".into(),
                cluster: "c1".into(),
                osystem: "ubuntu".into(),
                distro_series: "jammy".into(),
            },
        );
        assert_eq!(AllocationsKept.check(&store, &acked), Ok(()));
        store.release_node(node.id).expect("released");
        assert!(AllocationsKept.check(&store, &acked).is_err());
    }
}
