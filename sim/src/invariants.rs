//! The invariants the simulator checks at every step, as plain functions over what the region
//! answered and what the simulated clusters really hold, plus the durability checks that
//! compare the store with what it acknowledged before (a list the domain work extends).

use osmesh_actors::region::OsystemsAnswer;
use osmesh_actors::store::Store;
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

/// A check that nothing the store acknowledged is lost, across region restarts. Each
/// `check` compares the store with what earlier checks saw, then remembers the new state.
/// License keys and preseed versions get their own implementations as those land.
pub trait DurabilityCheck {
    fn name(&self) -> &'static str;
    fn check(&mut self, store: &Store) -> Result<(), String>;
}

/// Every durability check the simulator runs.
pub fn durability_checks() -> Vec<Box<dyn DurabilityCheck>> {
    vec![Box::new(ClustersKept::default())]
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

    fn check(&mut self, store: &Store) -> Result<(), String> {
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
