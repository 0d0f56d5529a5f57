//! The invariants the simulator checks at every step, as plain functions over what the region
//! answered and what the reference model (`oracle`, fed by the world, never by the region)
//! allows, plus the durability checks that
//! compare the store with what it acknowledged before (a list the domain work extends).

use osmesh_actors::region::license::LicenseKeyView;
use osmesh_actors::region::nodes::NodeView;
use osmesh_actors::region::{OsystemsAnswer, ReadPath};
use osmesh_core::os::{Registry, RegistryConfig};
use osmesh_core::{BootImage, ClusterId, ClusterReport, MeshView, Purpose};
use osmesh_net::messages::method;
use osmesh_store::{NodeStatus, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::oracle::{Held, IdentityEvent, Oracle, Projection};

/// Every answer: answered and not answered are disjoint; every cluster the region
/// acknowledged as registered is named (in the view and among the parts); nothing else is.
pub fn names_every_cluster(
    answer: &OsystemsAnswer,
    oracle: &Oracle,
    issued_ms: u64,
) -> Result<(), String> {
    names_clusters(answer, oracle, oracle.registered_before(issued_ms), "")
}

/// [`names_every_cluster`] for an answer of the region at `region`, asked for at
/// `issued_ms`, in a world of several regions: it names every cluster *any* region
/// acknowledged as registered ([`Oracle::must_name`]: at once those registered with it, the
/// others once the regions' heartbeat had time to hand them over through the store).
pub fn names_every_cluster_from(
    answer: &OsystemsAnswer,
    oracle: &Oracle,
    region: &str,
    issued_ms: u64,
) -> Result<(), String> {
    let from = format!(" from {region}");
    names_clusters(answer, oracle, oracle.must_name(region, issued_ms), &from)
}

fn names_clusters<'a>(
    answer: &OsystemsAnswer,
    oracle: &Oracle,
    registered: impl Iterator<Item = &'a str>,
    from: &str,
) -> Result<(), String> {
    let view = &answer.view;
    let label = answer.source_label();
    if let Some(both) = view
        .answered
        .iter()
        .find(|c| view.not_answered.contains_key(*c))
    {
        return Err(format!(
            "{label} answer names {both} both as answering and as not answering"
        ));
    }
    let parts: BTreeSet<&str> = answer.clusters.iter().map(|p| p.cluster.as_str()).collect();
    // One id reused for every lookup, so that naming a cluster allocates nothing.
    let mut cluster = ClusterId::new(String::new());
    for id in registered {
        cluster.0.clear();
        cluster.0.push_str(id);
        let in_view = view.answered.contains(&cluster) || view.not_answered.contains_key(&cluster);
        if !in_view || !parts.contains(id) {
            return Err(format!(
                "{label} answer{from} does not name registered cluster {id} (view: answered {:?}, not answered {:?})",
                view.answered.iter().map(ClusterId::as_str).collect::<Vec<_>>(),
                view.not_answered.keys().map(ClusterId::as_str).collect::<Vec<_>>(),
            ));
        }
    }
    let named = view
        .answered
        .iter()
        .chain(view.not_answered.keys())
        .map(ClusterId::as_str)
        .chain(parts.iter().copied());
    for id in named {
        if !oracle.history.contains_key(id) {
            return Err(format!("{label} answer names {id}, which does not exist"));
        }
    }
    Ok(())
}

/// Every answer: each cluster's part agrees with the view. A part without a reason is in
/// `answered` and has an age (0 in a live answer); a part with one is in `not_answered` with
/// the same reason; there is one part per cluster the view names, and no other.
pub fn parts_agree_with_view(answer: &OsystemsAnswer) -> Result<(), String> {
    let view = &answer.view;
    let label = answer.source_label();
    let live = answer.source == ReadPath::Live;
    let mut seen = BTreeSet::new();
    for part in &answer.clusters {
        let c = &part.cluster;
        if !seen.insert(c) {
            return Err(format!("{label} answer has two parts for {c}"));
        }
        match &part.no_answer {
            None => {
                if !view.answered.contains(c) {
                    return Err(format!(
                        "{label} answer: {c}'s part says it answered, the view does not"
                    ));
                }
                match part.age_ms {
                    None => return Err(format!("{label} answer: {c} answered without an age")),
                    Some(age) if age < 0 || (live && age != 0) => {
                        return Err(format!(
                            "{label} answer: {c}'s part is {age} ms old{}",
                            if live { " in a live answer" } else { "" }
                        ))
                    }
                    Some(_) => {}
                }
            }
            Some(reason) => {
                if view.not_answered.get(c) != Some(reason) {
                    return Err(format!(
                        "{label} answer: {c}'s part says it did not answer ({reason}), the view says {}",
                        view.not_answered
                            .get(c)
                            .map_or("it answered".to_owned(), |r| format!("{r}"))
                    ));
                }
            }
        }
    }
    for c in view.answered.iter().chain(view.not_answered.keys()) {
        if !seen.contains(c) {
            let parts: Vec<&str> = answer.clusters.iter().map(|p| p.cluster.as_str()).collect();
            return Err(format!(
                "{label} answer's view names {c}, which has no part (parts: {parts:?})"
            ));
        }
    }
    Ok(())
}

/// A live answer's "answered" means answered in this fan-out: the cluster's replies to
/// `ListOperatingSystems` and `ListBootImages` reached the region between `issued_ms` and
/// `now_ms`, as the network saw them (a cached snapshot is not an answer).
pub fn live_answers_are_live(
    answer: &OsystemsAnswer,
    oracle: &Oracle,
    issued_ms: u64,
    now_ms: u64,
) -> Result<(), String> {
    live_answers_are_live_at(answer, oracle, crate::net::REGION_ADDR, issued_ms, now_ms)
}

/// [`live_answers_are_live`] for an answer of the region at `region`: the replies must have
/// reached *that* region (a reply to another region's fan-out is not an answer to this one).
pub fn live_answers_are_live_at(
    answer: &OsystemsAnswer,
    oracle: &Oracle,
    region: &str,
    issued_ms: u64,
    now_ms: u64,
) -> Result<(), String> {
    if answer.source != ReadPath::Live {
        return Ok(());
    }
    for c in &answer.view.answered {
        for m in [method::LIST_OPERATING_SYSTEMS, method::LIST_BOOT_IMAGES] {
            if !oracle
                .seen
                .replied_within(c.as_str(), region, m, issued_ms, now_ms)
            {
                let to = if region == crate::net::REGION_ADDR {
                    "the region"
                } else {
                    region
                };
                return Err(format!(
                    "live answer counts {c} as answering, but no {m} reply of {c} reached {to} between {issued_ms} and {now_ms} ms"
                ));
            }
        }
    }
    Ok(())
}

/// What `view` says about `cluster`: the OSes and releases it supports, and per arch the
/// purposes it has available.
pub fn projection_of(view: &MeshView, cluster: &ClusterId) -> Projection {
    let mut p = Projection::default();
    for os in &view.osystems {
        if os.supported_by.contains(cluster) {
            p.osystems.insert(os.name.clone());
        }
        for release in &os.releases {
            if release.supported_by.contains(cluster) {
                p.releases.insert((os.name.clone(), release.name.clone()));
            }
            for (arch, on) in &release.available {
                if let Some(purposes) = on.get(cluster) {
                    p.available.insert(
                        (os.name.clone(), release.name.clone(), arch.clone()),
                        purposes.clone(),
                    );
                }
            }
        }
    }
    p
}

/// Every answer: what the view says each answering cluster supports and has available
/// (purposes included) is what that cluster held at one moment no later than the region
/// received it: for a live answer, during this fan-out (`issued_ms..=now_ms`); for a cached
/// one, within the staleness bound before now minus the part's age, an age that matches a
/// report of that cluster the network delivered. A cluster that did not answer contributes
/// nothing; no OS or release is in the view without a supporter.
pub fn available_as_held(
    answer: &OsystemsAnswer,
    oracle: &Oracle,
    issued_ms: u64,
    now_ms: u64,
) -> Result<(), String> {
    available_as_held_since(answer, oracle, issued_ms, now_ms, &mut HeldCache::default())
}

/// What [`available_as_held`] remembers between the checks of cached answers, so that each
/// step checks only what changed: the projections of the last cached view onto each
/// cluster, and the parts of it the oracle already explained.
///
/// A cached part's verdict depends on the view, the time the region received the part
/// (`now − age`, fixed until the next report) and the oracle's history of that cluster; the
/// reports the network delivered only grow, which can turn a failure into a pass but never
/// a pass into a failure. So a pass is remembered with its reception time and history
/// length, and holds while the view and both are the same.
#[derive(Default)]
pub struct HeldCache {
    view: Option<Arc<MeshView>>,
    projections: BTreeMap<ClusterId, Projection>,
    /// Cluster → `(received ms, history length)` of its part's last pass.
    explained: BTreeMap<ClusterId, (i128, usize)>,
}

impl HeldCache {
    /// Keeps what is remembered if `view` is the view it was remembered for (the region
    /// keeps its cached view until a snapshot or link changes); else starts over with
    /// `view`. Gives whether it was kept.
    fn focus(&mut self, view: &Arc<MeshView>) -> bool {
        let same = self
            .view
            .as_ref()
            .is_some_and(|v| Arc::ptr_eq(v, view) || **v == **view);
        if !same {
            self.view = Some(view.clone());
            self.projections = projections(view);
            self.explained.clear();
        }
        same
    }
}

/// [`available_as_held`], remembering in `cache` what a later cached answer need not
/// check again.
pub fn available_as_held_since(
    answer: &OsystemsAnswer,
    oracle: &Oracle,
    issued_ms: u64,
    now_ms: u64,
    cache: &mut HeldCache,
) -> Result<(), String> {
    let view = &answer.view;
    let label = answer.source_label();
    let live = answer.source == ReadPath::Live;
    if live || !cache.focus(view) {
        no_orphans(view, label)?;
        only_answering_contribute(view, label)?;
    }
    let mut ages: BTreeMap<&ClusterId, i64> = BTreeMap::new();
    for part in &answer.clusters {
        ages.entry(&part.cluster)
            .or_insert(part.age_ms.unwrap_or(0));
    }
    if live {
        // A live answer whose view is the kept merge the cache holds: its projections are
        // the cache's.
        let fresh;
        let live_projections = match &cache.view {
            Some(kept) if Arc::ptr_eq(kept, view) => &cache.projections,
            _ => {
                fresh = projections(view);
                &fresh
            }
        };
        let nothing = Projection::default();
        for c in &view.answered {
            let age = ages.get(c).copied().unwrap_or(0);
            let received = i128::from(now_ms) - i128::from(age);
            let projection = live_projections.get(c).unwrap_or(&nothing);
            let from = i128::from(issued_ms);
            if !oracle.explains_between(c.as_str(), from, received, projection) {
                return Err(not_held(label, c, projection, received, oracle));
            }
        }
        return Ok(());
    }
    let nothing = Projection::default();
    for c in &view.answered {
        let age = ages.get(c).copied().unwrap_or(0);
        let received = i128::from(now_ms) - i128::from(age);
        let verdict = (received, oracle.history_len(c.as_str()));
        if cache.explained.get(c) == Some(&verdict) {
            continue;
        }
        let projection = cache.projections.get(c).unwrap_or(&nothing);
        cached_part_held(c, age, received, projection, oracle)?;
        cache.explained.insert(c.clone(), verdict);
    }
    Ok(())
}

/// Nothing in the view comes from a cluster that did not answer.
fn only_answering_contribute(view: &MeshView, label: &str) -> Result<(), String> {
    let mut mentioned: BTreeSet<&ClusterId> = BTreeSet::new();
    for os in &view.osystems {
        mentioned.extend(&os.supported_by);
        for release in &os.releases {
            mentioned.extend(&release.supported_by);
            mentioned.extend(release.available.values().flat_map(BTreeMap::keys));
        }
    }
    match mentioned.iter().find(|c| !view.answered.contains(**c)) {
        Some(c) => Err(format!(
            "{label} answer shows what {c} supports or holds, but {c} is not among those that answered"
        )),
        None => Ok(()),
    }
}

/// A cached part of `c`, `age` old, received at `received`: dated at a report the network
/// delivered, and showing what `c` held in the staleness bound up to then.
fn cached_part_held(
    c: &ClusterId,
    age: i64,
    received: i128,
    projection: &Projection,
    oracle: &Oracle,
) -> Result<(), String> {
    let reports = oracle.seen.reports.get(c.as_str());
    let slack = i128::from(crate::oracle::RECORD_SLACK_MS);
    let matches_a_report = reports.is_some_and(|r| {
        r.iter()
            .any(|d| (i128::from(*d)..=i128::from(*d) + slack).contains(&received))
    });
    if !matches_a_report {
        return Err(format!(
            "cached answer dates {c}'s part at {received} ms (age {age} ms), when no report of {c} had just reached the region"
        ));
    }
    if !oracle.explains(c.as_str(), received, projection) {
        return Err(not_held("cached", c, projection, received, oracle));
    }
    Ok(())
}

/// Why `projection` of `c` is not explained by what it held up to `received`.
fn not_held(
    label: &str,
    c: &ClusterId,
    projection: &Projection,
    received: i128,
    oracle: &Oracle,
) -> String {
    let held = oracle
        .reportable(c.as_str(), received)
        .iter()
        .map(|h| describe(&h.projection()))
        .collect::<Vec<_>>();
    format!(
        "{label} answer shows {c} with {}, which it did not hold in the {} ms up to {received} ms (held then: {})",
        describe(projection),
        crate::oracle::STALENESS_BOUND_MS,
        if held.is_empty() {
            "nothing yet".to_owned()
        } else {
            held.join(" | ")
        }
    )
}

/// The projection of `view` onto every cluster it mentions, in one pass (each equal to
/// [`projection_of`] for that cluster).
fn projections(view: &MeshView) -> BTreeMap<ClusterId, Projection> {
    let mut all: BTreeMap<ClusterId, Projection> = BTreeMap::new();
    for os in &view.osystems {
        for c in &os.supported_by {
            all.entry(c.clone())
                .or_default()
                .osystems
                .insert(os.name.clone());
        }
        for release in &os.releases {
            let key = (os.name.clone(), release.name.clone());
            for c in &release.supported_by {
                all.entry(c.clone())
                    .or_default()
                    .releases
                    .insert(key.clone());
            }
            for (arch, on) in &release.available {
                for (c, purposes) in on {
                    let key = (os.name.clone(), release.name.clone(), arch.clone());
                    all.entry(c.clone())
                        .or_default()
                        .available
                        .insert(key, purposes.clone());
                }
            }
        }
    }
    all
}

/// No OS or release without a cluster supporting it or last known to (a disconnected
/// cluster's last report is shown apart, as last known); nothing available where not supported.
fn no_orphans(view: &MeshView, label: &str) -> Result<(), String> {
    for os in &view.osystems {
        if os.supported_by.is_empty() && os.last_known_by.is_empty() {
            return Err(format!(
                "{label} answer lists {} with no supporter",
                os.name
            ));
        }
        for release in &os.releases {
            if release.supported_by.is_empty() && release.last_known_by.is_empty() {
                return Err(format!(
                    "{label} answer lists {}/{} with no supporter",
                    os.name, release.name
                ));
            }
            for (arch, on) in &release.available {
                if let Some(c) = on.keys().find(|c| !release.supported_by.contains(*c)) {
                    return Err(format!(
                        "{label} answer calls {}/{}/{arch} available on {c}, which does not support it",
                        os.name, release.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A projection as one line: `os/release/arch(purposes)` for what is available.
fn describe(p: &Projection) -> String {
    let items: Vec<String> = p
        .available
        .iter()
        .map(|((os, release, arch), purposes)| {
            let purposes: Vec<String> = purposes.iter().map(|x| format!("{x:?}")).collect();
            format!("{os}/{release}/{arch}({})", purposes.join("+"))
        })
        .collect();
    format!(
        "{} releases, available [{}]",
        p.releases.len(),
        items.join(", ")
    )
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
        osystems: registry.list().into(),
        images: registry.boot_images().to_vec().into(),
    }
}

/// The cached answer equals the clusters' true state: every cluster of the world connected
/// and answering, none not answering, and what the view says of each exactly what it holds
/// now. `Err` says what still differs.
pub fn converged(answer: &OsystemsAnswer, oracle: &Oracle) -> Result<(), String> {
    if let Some(part) = answer.clusters.iter().find(|p| !p.connected) {
        return Err(format!("{} is not connected", part.cluster));
    }
    let view = &answer.view;
    let answered: BTreeSet<String> = view.answered.iter().map(ToString::to_string).collect();
    let world: BTreeSet<String> = oracle.history.keys().cloned().collect();
    if answered != world || !view.not_answered.is_empty() {
        return Err("the set of answering clusters differs".into());
    }
    no_orphans(view, answer.source_label())?;
    for c in &view.answered {
        let now = oracle.current(c.as_str()).map(Held::projection);
        if now.as_ref() != Some(&projection_of(view, c)) {
            return Err("the merged OS view differs from the clusters' images".into());
        }
    }
    Ok(())
}

trait SourceLabel {
    fn source_label(&self) -> &'static str;
}

impl SourceLabel for OsystemsAnswer {
    fn source_label(&self) -> &'static str {
        self.source.label()
    }
}

/// What the region's service acknowledged to an operator during the run: the writes the
/// durability checks hold the store to, across every region restart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Acked {
    /// `(osystem, release)` → `(key, validated_by)` of every key whose add was answered with
    /// success.
    pub license_keys: BTreeMap<(String, String), (String, String)>,
    /// `(preseed, version)` → content hash of every version an answer showed.
    pub preseed_versions: BTreeMap<(String, i32), String>,
    /// Node id → the allocation answered, until a release of that node is answered.
    pub allocations: BTreeMap<i64, AckedAllocation>,
    /// Clusters whose removal was answered with success: they may be gone from the store.
    pub removed_clusters: BTreeSet<String>,
}

/// One allocation the service answered with success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckedAllocation {
    /// The region that answered it.
    pub region: String,
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
/// `registered` holds every cluster the region acknowledged as registered (with when);
/// `knew`, per cluster, every `(osystem, release)` its registry ever listed.
pub fn keys_validated_by_knowers(
    store: &Store,
    registered: &BTreeMap<String, u64>,
    knew: &BTreeMap<String, BTreeSet<(String, String)>>,
) -> Result<(), String> {
    let keys = store
        .list_license_keys()
        .map_err(|e| format!("cannot read license keys: {e}"))?;
    for key in keys {
        let by = key.validated_by.as_str();
        let release = (key.osystem.clone(), key.distro_series.clone());
        if !registered.contains_key(by) {
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

/// The node an allocation handed out, as the world enlisted it.
#[derive(Clone, Debug)]
pub struct Enlisted {
    pub id: i64,
    pub hostname: String,
    pub arch: String,
    pub cluster: String,
}

/// A node handed out by an acknowledged allocation: it was not already allocated (by an
/// acknowledged, unreleased allocation); it is the node the world enlisted with the request's
/// arch on the cluster the answer names; and that cluster held an install or xinstall image
/// of the release for the *node's* arch, in a release its registry listed, by `now_ms`.
pub fn allocation_is_sound(
    node: &Enlisted,
    request_arch: &str,
    allocation: &AckedAllocation,
    acked: &Acked,
    oracle: &Oracle,
    now_ms: u64,
) -> Result<(), String> {
    if let Some(earlier) = acked.allocations.get(&node.id) {
        let by = if earlier.region == allocation.region {
            String::new()
        } else {
            format!(
                " (by {}, now again by {})",
                earlier.region, allocation.region
            )
        };
        return Err(format!(
            "node {} was handed out twice: already allocated for {}/{}{by}",
            allocation.hostname, earlier.osystem, earlier.distro_series
        ));
    }
    if node.arch != request_arch {
        return Err(format!(
            "node {} ({}) was allocated for a request for {request_arch}",
            node.hostname, node.arch
        ));
    }
    if node.cluster != allocation.cluster {
        return Err(format!(
            "node {} was enlisted on {}, the allocation says {}",
            node.hostname, node.cluster, allocation.cluster
        ));
    }
    let key = (
        allocation.osystem.clone(),
        allocation.distro_series.clone(),
        node.arch.clone(),
    );
    let install = [Purpose::Install, Purpose::Xinstall];
    if !oracle.held_for(&node.cluster, i128::from(now_ms), &key, &install) {
        return Err(format!(
            "node {} was allocated for {}/{}/{} on {}, which never held an install image of it",
            allocation.hostname,
            allocation.osystem,
            allocation.distro_series,
            node.arch,
            node.cluster
        ));
    }
    Ok(())
}

/// What any region answers after another crashed still holds every acknowledged write
/// (issue 15: "kill -9 of one region loses nothing it acknowledged; the others keep
/// serving"): each acknowledged key is listed with its validator and its masked key, and each
/// acknowledged allocation's node is allocated for its OS and release. `keys` and `nodes`
/// are what one region answered.
pub fn acked_writes_served(
    acked: &Acked,
    keys: &[LicenseKeyView],
    nodes: &[NodeView],
) -> Result<(), String> {
    for ((os, release), (key, by)) in &acked.license_keys {
        let listed = keys
            .iter()
            .find(|k| &k.osystem == os && &k.distro_series == release);
        match listed {
            None => return Err(format!("the acknowledged key of {os}/{release} is not listed")),
            Some(k) if k.validated_by.as_str() != by || k.license_key != osmesh_store::mask_key(key) => {
                return Err(format!(
                    "the acknowledged key of {os}/{release} (validated by {by}) is listed as {} validated by {}",
                    k.license_key, k.validated_by
                ))
            }
            Some(_) => {}
        }
    }
    for (id, allocation) in &acked.allocations {
        let Some(node) = nodes.iter().find(|n| n.id == *id) else {
            return Err(format!(
                "allocated node {} (id {id}) is not listed",
                allocation.hostname
            ));
        };
        let holds = node.status == NodeStatus::Allocated.as_str()
            && node.osystem.as_deref() == Some(allocation.osystem.as_str())
            && node.distro_series.as_deref() == Some(allocation.distro_series.as_str());
        if !holds {
            return Err(format!(
                "node {} was allocated for {}/{} by {} and is listed {} ({:?}/{:?})",
                allocation.hostname,
                allocation.osystem,
                allocation.distro_series,
                allocation.region,
                node.status,
                node.osystem,
                node.distro_series
            ));
        }
    }
    Ok(())
}

/// Registered clusters never disappear (unless an operator's removal was acknowledged), and
/// a saved snapshot never goes back in time.
#[derive(Default)]
pub struct ClustersKept {
    seen: BTreeMap<ClusterId, Option<i64>>,
}

impl DurabilityCheck for ClustersKept {
    fn name(&self) -> &'static str {
        "clusters kept"
    }

    fn check(&mut self, store: &Store, acked: &Acked) -> Result<(), String> {
        let records = store
            .list_clusters()
            .map_err(|e| format!("cannot read clusters: {e}"))?;
        self.seen
            .retain(|id, _| !acked.removed_clusters.contains(id.as_str()));
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

/// Identity comes from the credential (issue 13), held to what the world did, never to the
/// region's state: no attacker's `Register` is ever acknowledged; no answer issued after a
/// cluster's revocation was done counts it as connected or answering, nor names it after
/// its removal (until it registers again); and no answer, cached or live, carries as a
/// cluster's a release only an attacker claiming its identity reported (in what it
/// supports, holds, or was last known to).
///
/// A live answer's parts say whether each cluster is connected when the answer completes
/// (`completed_ms`; for a cached answer, when it was issued): a cluster enrolled again while
/// the fan-out ran (swarm seed 7747: revoked at 96 s, a live read issued at 146.6 s, enrolled
/// at 146.9 s and registered before the read completed at 150.5 s) may be connected in it.
///
/// `propagation_ms` is how long another region may take to act on a revocation (a removal:
/// twice that, the links closed at one heartbeat and the cluster forgotten at the next): 0 in
/// a world of one region, where the region that revoked is the only one and acts at once;
/// with several, each region reads revocations and removals at its heartbeat.
pub fn credentials_respected(
    answer: &OsystemsAnswer,
    oracle: &Oracle,
    issued_ms: u64,
    completed_ms: u64,
    propagation_ms: u64,
) -> Result<(), String> {
    let credentials = &oracle.credentials;
    if let Some((c, at)) = oracle.seen.impostors_registered.iter().next() {
        return Err(format!(
            "the region acknowledged the Register of an impostor of {c} at {at} ms ({})",
            credentials.attacks_on(c)
        ));
    }
    let label = answer.source_label();
    for part in &answer.clusters {
        let c = part.cluster.as_str();
        let revoked = credentials.cut_off_before(c, completed_ms.max(issued_ms));
        if let Some((at, IdentityEvent::Revoked)) = revoked {
            if at + propagation_ms < issued_ms
                && (part.connected || answer.view.answered.contains(&part.cluster))
            {
                return Err(format!(
                    "{label} answer issued at {issued_ms} ms counts {c} as connected or answering, but it was revoked at {at} ms"
                ));
            }
        }
        if let Some((at, IdentityEvent::Removed)) = credentials.cut_off_before(c, issued_ms) {
            if at + 2 * propagation_ms < issued_ms && oracle.removed_since_registered(c) {
                return Err(format!(
                    "{label} answer issued at {issued_ms} ms names {c}, removed at {at} ms and not registered since"
                ));
            }
        }
    }
    for (c, poison) in &credentials.poison {
        if let Some((os, release)) = carried_as(&answer.view, c, poison, oracle) {
            return Err(format!(
                "{label} answer carries {os}/{release} as {c}'s, which only an impostor of {c} reported ({})",
                credentials.attacks_on(c)
            ));
        }
    }
    Ok(())
}

/// A release of `poison` that `view` attributes to `cluster` and `cluster` itself never
/// listed.
fn carried_as<'a>(
    view: &MeshView,
    cluster: &str,
    poison: &'a BTreeSet<(String, String)>,
    oracle: &Oracle,
) -> Option<&'a (String, String)> {
    let id = ClusterId::new(cluster);
    let attributed = |os: &str, release: &str| {
        view.osystems.iter().filter(|o| o.name == os).any(|o| {
            o.releases.iter().filter(|r| r.name == release).any(|r| {
                r.supported_by.contains(&id)
                    || r.last_known_by.contains(&id)
                    || r.available.values().any(|on| on.contains_key(&id))
                    || r.last_known.values().any(|on| on.contains_key(&id))
            })
        })
    };
    poison
        .iter()
        .find(|key| attributed(&key.0, &key.1) && !oracle.ever_listed(cluster, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_store::{AllocationRequest, NewLicenseKey, NewNode};

    fn store(dir: &tempfile::TempDir) -> Store {
        let path = dir.path().join("region.sqlite3");
        Store::open(path.to_str().expect("a UTF-8 path")).expect("the store opens")
    }

    mod answers {
        //! Each answer invariant passes a correct answer and fails the bug it is named after.

        use super::super::*;
        use crate::net::Observed;
        use crate::oracle::Oracle;
        use osmesh_actors::region::ClusterPart;
        use osmesh_core::{ClusterAnswer, NoAnswerReason};
        use std::sync::Arc;

        fn images(specs: &[&str]) -> Vec<BootImage> {
            let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
            crate::scenario::parse_images(&specs).expect("valid images")
        }

        const C1: &[&str] = &["ubuntu/amd64/generic/jammy:install"];
        const C2: &[&str] = &["centos/amd64/generic/centos8"];

        /// c1 and c2 hold their images from 100 ms on, both registered, both replied at 1000.
        fn oracle() -> Oracle {
            let config = RegistryConfig::default();
            let mut oracle = Oracle::default();
            oracle.hold("c1", 100, &config, &images(C1));
            oracle.hold("c2", 100, &config, &images(C2));
            let mut seen = Observed::default();
            for c in ["c1", "c2"] {
                seen.registered.insert(c.into(), 50);
                seen.registered_with
                    .entry(c.into())
                    .or_default()
                    .insert(crate::net::REGION_ADDR.into(), 50);
                seen.reports.insert(c.into(), vec![10, 100, 1_000]);
                for m in [method::LIST_OPERATING_SYSTEMS, method::LIST_BOOT_IMAGES] {
                    seen.replies.entry(c.into()).or_default().push((
                        1_000,
                        m.into(),
                        crate::net::REGION_ADDR.into(),
                    ));
                }
            }
            oracle.observe(seen);
            oracle
        }

        /// An answer as the region should give it, from these clusters' answers (`None`:
        /// not connected).
        fn answer(source: ReadPath, given: &[(&str, Option<&[&str]>)], age: i64) -> OsystemsAnswer {
            let config = RegistryConfig::default();
            let mut answers = BTreeMap::new();
            let mut parts = Vec::new();
            for (c, held) in given {
                let id = ClusterId::new(*c);
                let (a, part_age, no_answer) = match held {
                    Some(specs) => (
                        ClusterAnswer::Answered(true_report(&config, &images(specs))),
                        Some(age),
                        None,
                    ),
                    None => (
                        ClusterAnswer::NoAnswer(NoAnswerReason::NotConnected),
                        None,
                        Some(NoAnswerReason::NotConnected),
                    ),
                };
                answers.insert(id.clone(), a);
                parts.push(ClusterPart {
                    cluster: id,
                    name: c.to_string(),
                    connected: held.is_some(),
                    age_ms: part_age,
                    no_answer,
                    disconnected_since_ms: None,
                });
            }
            OsystemsAnswer {
                source,
                view: Arc::new(MeshView::from_answers(&answers)),
                clusters: parts,
                deadline_ms: None,
                elapsed_ms: None,
            }
        }

        fn all_checks(
            a: &OsystemsAnswer,
            oracle: &Oracle,
            issued: u64,
            now: u64,
        ) -> Result<(), String> {
            names_every_cluster(a, oracle, issued)
                .and_then(|()| parts_agree_with_view(a))
                .and_then(|()| live_answers_are_live(a, oracle, issued, now))
                .and_then(|()| available_as_held(a, oracle, issued, now))
        }

        #[test]
        fn a_true_answer_passes_every_check() {
            let oracle = oracle();
            let cached = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", Some(C2))], 300);
            assert_eq!(all_checks(&cached, &oracle, 500, 500), Ok(()));
            let live = answer(ReadPath::Live, &[("c1", Some(C1)), ("c2", None)], 0);
            assert_eq!(all_checks(&live, &oracle, 990, 1_010), Ok(()));
        }

        #[test]
        fn a_cluster_both_answering_and_not_is_caught() {
            let mut a = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            Arc::make_mut(&mut a.view)
                .not_answered
                .insert(ClusterId::new("c1"), NoAnswerReason::Timeout);
            let err = names_every_cluster(&a, &oracle(), u64::MAX).unwrap_err();
            assert!(
                err.contains("both as answering and as not answering"),
                "{err}"
            );
        }

        #[test]
        fn a_forgotten_registered_cluster_is_caught() {
            let a = answer(ReadPath::Cached, &[("c1", Some(C1))], 0);
            let err = names_every_cluster(&a, &oracle(), u64::MAX).unwrap_err();
            assert!(err.contains("does not name registered cluster c2"), "{err}");
        }

        #[test]
        fn a_cluster_that_does_not_exist_is_caught() {
            let a = answer(
                ReadPath::Cached,
                &[("c1", Some(C1)), ("c2", Some(C2)), ("c9", None)],
                0,
            );
            let err = names_every_cluster(&a, &oracle(), u64::MAX).unwrap_err();
            assert!(err.contains("names c9, which does not exist"), "{err}");
        }

        #[test]
        fn a_part_disagreeing_with_the_view_is_caught() {
            let mut a = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            a.clusters[0].no_answer = Some(NoAnswerReason::Timeout);
            let err = parts_agree_with_view(&a).unwrap_err();
            assert!(err.contains("c1's part says it did not answer"), "{err}");
            let mut a = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", None)], 0);
            a.clusters[1].no_answer = None;
            let err = parts_agree_with_view(&a).unwrap_err();
            assert!(err.contains("c2's part says it answered"), "{err}");
            let mut a = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", None)], 0);
            a.clusters.pop();
            let err = parts_agree_with_view(&a).unwrap_err();
            assert!(err.contains("names c2, which has no part"), "{err}");
        }

        #[test]
        fn a_stale_part_in_a_live_answer_is_caught() {
            let a = answer(ReadPath::Live, &[("c1", Some(C1)), ("c2", Some(C2))], 40);
            let err = parts_agree_with_view(&a).unwrap_err();
            assert!(err.contains("40 ms old in a live answer"), "{err}");
            let a = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", Some(C2))], -1);
            assert!(parts_agree_with_view(&a).is_err());
        }

        #[test]
        fn a_cached_snapshot_counted_as_a_live_answer_is_caught() {
            let a = answer(ReadPath::Live, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            let oracle = oracle();
            assert_eq!(live_answers_are_live(&a, &oracle, 900, 1_100), Ok(()));
            // The replies reached the region before this fan-out started.
            let err = live_answers_are_live(&a, &oracle, 1_001, 1_100).unwrap_err();
            assert!(err.contains("no ListOperatingSystems reply of c1"), "{err}");
            // A cached answer is not held to it.
            let cached = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            assert_eq!(
                live_answers_are_live(&cached, &oracle, 1_001, 1_100),
                Ok(())
            );
        }

        #[test]
        fn availability_never_held_is_caught() {
            let oracle = oracle();
            // c1 shown with an arm64 image it never held.
            let a = answer(
                ReadPath::Cached,
                &[
                    ("c1", Some(&["ubuntu/arm64/generic/jammy:install"])),
                    ("c2", Some(C2)),
                ],
                0,
            );
            let err = available_as_held(&a, &oracle, 500, 500).unwrap_err();
            assert!(err.contains("c1") && err.contains("did not hold"), "{err}");
        }

        #[test]
        fn availability_with_other_purposes_is_caught() {
            // c1 holds an install image only; shown with every purpose.
            let a = answer(
                ReadPath::Cached,
                &[
                    ("c1", Some(&["ubuntu/amd64/generic/jammy"])),
                    ("c2", Some(C2)),
                ],
                0,
            );
            let err = available_as_held(&a, &oracle(), 500, 500).unwrap_err();
            assert!(err.contains("Commissioning"), "{err}");
        }

        #[test]
        fn availability_held_only_later_is_caught() {
            // What c1 holds from 100 ms on, in a snapshot received at 50 ms (now 500, age 450).
            let a = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", Some(C2))], 450);
            let err = available_as_held(&a, &oracle(), 500, 500).unwrap_err();
            assert!(err.contains("up to 50 ms"), "{err}");
            // An image set c1 held before, but not what it held: the earlier one is allowed.
            let mut oracle = oracle();
            let config = RegistryConfig::default();
            oracle.hold("c1", 600, &config, &images(&["ubuntu/amd64/generic/noble"]));
            let a = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            assert_eq!(available_as_held(&a, &oracle, 700, 700), Ok(()));
        }

        #[test]
        fn a_cached_part_dated_when_no_report_arrived_is_caught() {
            // Age 0 at 200 s: the last report reached the region at 1 s.
            let a = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            let err = available_as_held(&a, &oracle(), 200_000, 200_000).unwrap_err();
            assert!(
                err.contains("no report of c1 had just reached the region"),
                "{err}"
            );
            // Age 199 s: dated at the report of 1 s, fine.
            let a = answer(
                ReadPath::Cached,
                &[("c1", Some(C1)), ("c2", Some(C2))],
                199_000,
            );
            assert_eq!(available_as_held(&a, &oracle(), 200_000, 200_000), Ok(()));
        }

        #[test]
        fn a_live_answer_showing_a_set_replaced_before_the_fan_out_is_caught() {
            let mut oracle = oracle();
            let config = RegistryConfig::default();
            oracle.hold("c1", 600, &config, &images(&["ubuntu/amd64/generic/noble"]));
            // Asked at 900: c1 held noble then, yet the answer shows jammy.
            let a = answer(ReadPath::Live, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            let err = available_as_held(&a, &oracle, 900, 950).unwrap_err();
            assert!(err.contains("did not hold"), "{err}");
            // Asked at 500, jammy was still held then.
            assert_eq!(available_as_held(&a, &oracle, 500, 950), Ok(()));
        }

        #[test]
        fn a_silent_cluster_contributing_to_the_view_is_caught() {
            let mut a = answer(ReadPath::Live, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            let view = Arc::make_mut(&mut a.view);
            let c2 = ClusterId::new("c2");
            view.answered.remove(&c2);
            view.not_answered.insert(c2, NoAnswerReason::Timeout);
            let err = available_as_held(&a, &oracle(), 1_000, 1_000).unwrap_err();
            assert!(err.contains("c2 is not among those that answered"), "{err}");
        }

        /// c1 attacked: an attacker claimed c1's identity and reported an image of its own.
        fn attacked(oracle: &mut Oracle) {
            let attack = crate::oracle::Attack {
                cluster: "c1".into(),
                credential: "forged".into(),
                from_ms: 150,
            };
            let poison = [("custom".to_owned(), "implant".to_owned())];
            let also_c1s = ("ubuntu".to_owned(), "jammy".to_owned());
            let releases = poison.into_iter().chain([also_c1s]).collect();
            oracle.credentials.attacked(attack, releases);
        }

        #[test]
        fn an_answer_carrying_an_impostors_report_is_caught() {
            let mut oracle = oracle();
            attacked(&mut oracle);
            let poisoned: &[&str] = &[C1[0], "custom/amd64/generic/implant"];
            for source in [ReadPath::Cached, ReadPath::Live] {
                let a = answer(source, &[("c1", Some(poisoned)), ("c2", Some(C2))], 0);
                let err = credentials_respected(&a, &oracle, 500, 500, 0).unwrap_err();
                assert!(
                    err.contains("carries custom/implant as c1's, which only an impostor of c1 reported (forged credential from 150 ms)"),
                    "{err}"
                );
            }
            // What c1 itself holds is c1's, whoever else claimed it too.
            let a = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            assert_eq!(credentials_respected(&a, &oracle, 500, 500, 0), Ok(()));
            // Kept as last known is carried too.
            let mut a = answer(ReadPath::Cached, &[("c1", None), ("c2", Some(C2))], 0);
            let view = Arc::make_mut(&mut a.view);
            let c1 = BTreeSet::from([ClusterId::new("c1")]);
            let implant = osmesh_core::MeshRelease {
                name: "implant".into(),
                title: "implant".into(),
                requires_license_key: false,
                can_commission: false,
                end_of_life: false,
                supported_by: BTreeSet::new(),
                available: BTreeMap::new(),
                last_known_by: c1.clone(),
                last_known: BTreeMap::new(),
            };
            view.osystems.push(osmesh_core::MeshOsystem {
                name: "custom".into(),
                title: "Custom".into(),
                default_release: None,
                default_commissioning_release: None,
                supported_by: BTreeSet::new(),
                last_known_by: c1,
                releases: vec![implant],
            });
            let err = credentials_respected(&a, &oracle, 500, 500, 0).unwrap_err();
            assert!(err.contains("carries custom/implant as c1's"), "{err}");
        }

        #[test]
        fn a_revoked_cluster_still_answering_is_caught() {
            let mut oracle = oracle();
            oracle.credentials.record("c2", 200, IdentityEvent::Revoked);
            let both = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            let err = credentials_respected(&both, &oracle, 500, 500, 0).unwrap_err();
            assert!(
                err.contains("issued at 500 ms counts c2 as connected or answering, but it was revoked at 200 ms"),
                "{err}"
            );
            // Issued before the revocation was done, or with c2 cut off: no objection.
            assert_eq!(credentials_respected(&both, &oracle, 200, 200, 0), Ok(()));
            // With several regions, another region may still count it for one propagation
            // delay (its heartbeat), and not after.
            assert_eq!(credentials_respected(&both, &oracle, 500, 500, 300), Ok(()));
            assert!(credentials_respected(&both, &oracle, 501, 501, 300).is_err());
            let cut = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", None)], 0);
            assert_eq!(credentials_respected(&cut, &oracle, 500, 500, 0), Ok(()));
            // Enrolled again while a live read ran (after it was issued, before it completed:
            // swarm seed 7747): connected in it, rightly; completed before the enrollment, not.
            let mut later = oracle.clone();
            later.credentials.record("c2", 600, IdentityEvent::Enrolled);
            let live = answer(ReadPath::Live, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            assert_eq!(credentials_respected(&live, &later, 500, 700, 0), Ok(()));
            assert!(credentials_respected(&live, &later, 500, 600, 0).is_err());
            // Enrolled again: it may answer.
            oracle
                .credentials
                .record("c2", 300, IdentityEvent::Enrolled);
            assert_eq!(credentials_respected(&both, &oracle, 500, 500, 0), Ok(()));
        }

        #[test]
        fn a_removed_cluster_still_named_is_caught() {
            let mut oracle = oracle();
            oracle.credentials.record("c2", 200, IdentityEvent::Removed);
            let named = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", None)], 0);
            let err = credentials_respected(&named, &oracle, 500, 500, 0).unwrap_err();
            assert!(err.contains("names c2, removed at 200 ms"), "{err}");
            // Gone is right, and no longer owed a name.
            let gone = answer(ReadPath::Cached, &[("c1", Some(C1))], 0);
            assert_eq!(all_checks(&gone, &oracle, 500, 500), Ok(()));
            assert_eq!(credentials_respected(&gone, &oracle, 500, 500, 0), Ok(()));
            // Registered again after its removal: named again.
            oracle.seen.last_registered.insert("c2".into(), 300);
            assert_eq!(credentials_respected(&named, &oracle, 500, 500, 0), Ok(()));
        }

        #[test]
        fn an_impostor_the_region_registered_is_caught() {
            let mut oracle = oracle();
            attacked(&mut oracle);
            let a = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            assert_eq!(credentials_respected(&a, &oracle, 500, 500, 0), Ok(()));
            oracle.seen.impostors_registered.insert("c1".into(), 160);
            let err = credentials_respected(&a, &oracle, 500, 500, 0).unwrap_err();
            assert!(
                err.contains("acknowledged the Register of an impostor of c1 at 160 ms"),
                "{err}"
            );
        }

        #[test]
        fn convergence_needs_every_cluster_as_it_is_now() {
            let oracle = oracle();
            let a = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            assert_eq!(converged(&a, &oracle), Ok(()));
            let stale = answer(
                ReadPath::Cached,
                &[
                    ("c1", Some(&["ubuntu/amd64/generic/focal"])),
                    ("c2", Some(C2)),
                ],
                0,
            );
            assert!(converged(&stale, &oracle).is_err());
            let missing = answer(ReadPath::Cached, &[("c1", Some(C1)), ("c2", None)], 0);
            assert!(converged(&missing, &oracle).is_err());
        }

        /// c1 and c2 registered with `r1` only (at 50 ms), and answered its fan-out at 1 s.
        fn oracle_of_r1() -> Oracle {
            let mut oracle = oracle();
            let r1: std::sync::Arc<str> = "r1".into();
            let mut seen = Observed::default();
            for c in ["c1", "c2"] {
                seen.registered_with
                    .insert(c.into(), [(r1.clone(), 50)].into());
                for m in [method::LIST_OPERATING_SYSTEMS, method::LIST_BOOT_IMAGES] {
                    seen.replies
                        .entry(c.into())
                        .or_default()
                        .push((1_000, m.into(), r1.clone()));
                }
            }
            oracle.seen = seen;
            let mut registered = Observed::default();
            registered.registered.insert("c1".into(), 50);
            registered.registered.insert("c2".into(), 50);
            oracle.observe(registered);
            oracle
        }

        #[test]
        fn a_region_that_never_names_a_cluster_another_region_registered_is_caught() {
            let oracle = oracle_of_r1();
            let a = answer(ReadPath::Cached, &[("c1", Some(C1))], 0);
            // r1 registered c2 itself: it must name it at once.
            let err = names_every_cluster_from(&a, &oracle, "r1", 100).unwrap_err();
            assert!(
                err.contains("from r1 does not name registered cluster c2"),
                "{err}"
            );
            // r2 learns of c2 through the store, within the heartbeat's bound...
            let bound = crate::oracle::ADOPTION_BOUND_MS;
            assert_eq!(
                names_every_cluster_from(&a, &oracle, "r2", 50 + bound - 1),
                Ok(())
            );
            // ...and must name it after.
            let err = names_every_cluster_from(&a, &oracle, "r2", 50 + bound).unwrap_err();
            assert!(
                err.contains("from r2 does not name registered cluster c2"),
                "{err}"
            );
        }

        #[test]
        fn a_live_answer_counting_replies_to_another_region_is_caught() {
            let oracle = oracle_of_r1();
            let a = answer(ReadPath::Live, &[("c1", Some(C1)), ("c2", Some(C2))], 0);
            assert_eq!(
                live_answers_are_live_at(&a, &oracle, "r1", 900, 1_100),
                Ok(())
            );
            let err = live_answers_are_live_at(&a, &oracle, "r2", 900, 1_100).unwrap_err();
            assert!(
                err.contains("no ListOperatingSystems reply of c1 reached r2"),
                "{err}"
            );
        }

        #[test]
        fn a_node_handed_out_by_two_regions_is_caught() {
            let oracle = oracle();
            let mut acked = Acked::default();
            let mut first = allocation("c1", "ubuntu", "jammy");
            first.region = "r1".into();
            acked.allocations.insert(7, first);
            let mut again = allocation("c1", "ubuntu", "jammy");
            again.region = "r2".into();
            let err =
                allocation_is_sound(&node("amd64", "c1"), "amd64", &again, &acked, &oracle, 500)
                    .unwrap_err();
            assert!(
                err.contains("handed out twice") && err.contains("(by r1, now again by r2)"),
                "{err}"
            );
        }

        fn key_view(by: &str, key: &str) -> LicenseKeyView {
            LicenseKeyView {
                osystem: "windows".into(),
                distro_series: "win2019".into(),
                license_key: osmesh_store::mask_key(key),
                validated_by: ClusterId::new(by),
                validated_at_ms: 1,
                created_at_ms: 1,
                updated_at_ms: 1,
                refused_by: BTreeMap::new(),
            }
        }

        fn node_view(status: &str) -> NodeView {
            NodeView {
                id: 7,
                system_id: None,
                hostname: "n7".into(),
                arch: "amd64".into(),
                subarch: "generic".into(),
                cluster: ClusterId::new("c1"),
                power_type: None,
                power_parameters: None,
                status: status.into(),
                osystem: (status == "allocated").then(|| "ubuntu".into()),
                distro_series: (status == "allocated").then(|| "jammy".into()),
                created_at_ms: 1,
                allocated_at_ms: None,
            }
        }

        #[test]
        fn a_region_that_does_not_serve_an_acknowledged_write_is_caught() {
            const KEY: &str = "ABCDE-12345-FGHIJ-67890-KLMNO";
            let mut acked = Acked::default();
            acked.license_keys.insert(
                ("windows".into(), "win2019".into()),
                (KEY.into(), "c1".into()),
            );
            acked
                .allocations
                .insert(7, allocation("c1", "ubuntu", "jammy"));
            let keys = [key_view("c1", KEY)];
            let allocated = [node_view("allocated")];
            assert_eq!(acked_writes_served(&acked, &keys, &allocated), Ok(()));
            let err = acked_writes_served(&acked, &[], &allocated).unwrap_err();
            assert!(err.contains("windows/win2019 is not listed"), "{err}");
            let other = [key_view("c2", KEY)];
            assert!(acked_writes_served(&acked, &other, &allocated).is_err());
            let err = acked_writes_served(&acked, &keys, &[node_view("ready")]).unwrap_err();
            assert!(err.contains("is listed ready"), "{err}");
            let err = acked_writes_served(&acked, &keys, &[]).unwrap_err();
            assert!(err.contains("(id 7) is not listed"), "{err}");
        }

        fn node(arch: &str, cluster: &str) -> Enlisted {
            Enlisted {
                id: 7,
                hostname: "n7".into(),
                arch: arch.into(),
                cluster: cluster.into(),
            }
        }

        fn allocation(cluster: &str, os: &str, release: &str) -> AckedAllocation {
            AckedAllocation {
                region: "region".into(),
                hostname: "n7".into(),
                cluster: cluster.into(),
                osystem: os.into(),
                distro_series: release.into(),
            }
        }

        #[test]
        fn allocation_checks_the_node_and_what_its_cluster_held() {
            let oracle = oracle();
            let acked = Acked::default();
            let good = allocation("c1", "ubuntu", "jammy");
            let sound = |n: &Enlisted, arch: &str, a: &AckedAllocation, now: u64| {
                allocation_is_sound(n, arch, a, &acked, &oracle, now)
            };
            assert_eq!(sound(&node("amd64", "c1"), "amd64", &good, 500), Ok(()));
            // The node's arch, not the request's.
            let err = sound(&node("arm64", "c1"), "amd64", &good, 500).unwrap_err();
            assert!(
                err.contains("(arm64) was allocated for a request for amd64"),
                "{err}"
            );
            // A node of c1 reported on c2.
            assert!(sound(
                &node("amd64", "c1"),
                "amd64",
                &allocation("c2", "ubuntu", "jammy"),
                500
            )
            .is_err());
            // c2 never held a jammy image; c1 did not hold it yet at 50 ms.
            let on_c2 = allocation("c2", "ubuntu", "jammy");
            assert!(sound(&node("amd64", "c2"), "amd64", &on_c2, 500).is_err());
            assert!(sound(&node("amd64", "c1"), "amd64", &good, 50).is_err());
            // Twice.
            let mut twice = Acked::default();
            twice.allocations.insert(7, good.clone());
            let err =
                allocation_is_sound(&node("amd64", "c1"), "amd64", &good, &twice, &oracle, 500)
                    .unwrap_err();
            assert!(err.contains("handed out twice"), "{err}");
        }

        #[test]
        fn allocation_needs_an_install_purpose() {
            let mut oracle = Oracle::default();
            let config = RegistryConfig::default();
            oracle.hold(
                "c1",
                0,
                &config,
                &images(&["ubuntu/amd64/generic/jammy:commissioning"]),
            );
            let err = allocation_is_sound(
                &node("amd64", "c1"),
                "amd64",
                &allocation("c1", "ubuntu", "jammy"),
                &Acked::default(),
                &oracle,
                500,
            )
            .unwrap_err();
            assert!(err.contains("never held an install image"), "{err}");
        }
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
                region: "region".into(),
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
