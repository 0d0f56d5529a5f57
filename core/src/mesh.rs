//! The region's mesh view: every cluster's answer merged per OS and release, with who
//! supports what, who holds images for it, who did not answer, and where clusters disagree.
//!
//! The merge is a pure function of the *set* of answers: the order in which they arrive
//! never changes the view. Rules:
//!
//! - An OS or release is **supported** by the clusters whose registry lists it. Each OS
//!   name and each release appears once, however many clusters list it.
//! - A release is **available** on a cluster for an arch when that cluster both lists the
//!   release and reported an image of it for that arch; the purposes are the union of its
//!   images' purposes. Images of releases the cluster does not list are ignored, so
//!   "available" never runs ahead of "supported".
//! - **Conflicts**: when clusters give different values for an OS's title, default release
//!   or default commissioning release, or a release's title, `requires_license_key` or
//!   `can_commission`, the value given by the most clusters wins and ties go to the
//!   smallest value (`None` < `Some`, `false` < `true`, strings lexicographically). Each
//!   conflict lists every value with the clusters that gave it.
//! - A cluster id may appear only once in the input; `merge` refuses duplicates rather than
//!   pick one by arrival order.
//! - **Staleness is explicit**: a cluster that is not answering but whose last report is held
//!   (`ClusterAnswer::LastKnown`) is named in `not_answered` with its reason, and what it last
//!   reported is shown apart, as `last_known_by` and `last_known`: it never counts as
//!   supporting, answering or holding an available image. Its listing decides a field only
//!   where no answering cluster lists the OS or release, and raises no conflict.
//! - **`requires_license_key` is a safety merge**, not a vote: a release requires a key when
//!   any answering cluster that lists it says so (the conflict is still recorded), so one
//!   cluster's driver cannot switch off another's key check.

use crate::cluster::ClusterId;
use crate::image::{BootImage, Purpose};
use crate::osinfo::{OsystemInfo, ReleaseInfo};
use serde::{Deserialize, Serialize};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use thiserror::Error;

/// What one cluster said, or why it said nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterAnswer {
    Answered(ClusterReport),
    NoAnswer(NoAnswerReason),
    /// Not answering now (`reason`), but its last report is held: shown as last known, never
    /// as supported or available.
    LastKnown {
        reason: NoAnswerReason,
        report: ClusterReport,
    },
}

/// A cluster's registry listing and the images it reported.
///
/// Shared, not copied: the region's memo of a link's last reply, the snapshot it holds and
/// every answer built from them point at one decoded list (`Arc`), so a live read of 1,000
/// unchanged clusters allocates no list and a cluster's lists are in memory once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterReport {
    pub osystems: Arc<Vec<OsystemInfo>>,
    pub images: Arc<Vec<BootImage>>,
}

/// Why a cluster is missing from a merge.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum NoAnswerReason {
    NotConnected,
    Timeout,
    Error(String),
}

impl fmt::Display for NoAnswerReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoAnswerReason::NotConnected => f.write_str("not connected"),
            NoAnswerReason::Timeout => f.write_str("timed out"),
            NoAnswerReason::Error(message) => write!(f, "error: {message}"),
        }
    }
}

/// Per arch, the clusters holding images and the purposes those images serve.
pub type Availability = BTreeMap<String, BTreeMap<ClusterId, BTreeSet<Purpose>>>;

/// The merged answer of every cluster asked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeshView {
    /// Sorted by name; one entry per OS name.
    pub osystems: Vec<MeshOsystem>,
    pub answered: BTreeSet<ClusterId>,
    pub not_answered: BTreeMap<ClusterId, NoAnswerReason>,
    /// Ordered by OS, then OS-level fields before releases, releases by name.
    pub conflicts: Vec<Conflict>,
}

/// One OS across the mesh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeshOsystem {
    pub name: String,
    pub title: String,
    pub default_release: Option<String>,
    pub default_commissioning_release: Option<String>,
    pub supported_by: BTreeSet<ClusterId>,
    /// Clusters not answering whose last report listed this OS (never in `supported_by`).
    pub last_known_by: BTreeSet<ClusterId>,
    /// Sorted by name.
    pub releases: Vec<MeshRelease>,
}

/// One release across the mesh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeshRelease {
    pub name: String,
    pub title: String,
    pub requires_license_key: bool,
    pub can_commission: bool,
    /// Past its end of support, if any cluster listing it says so (a safety merge).
    pub end_of_life: bool,
    pub supported_by: BTreeSet<ClusterId>,
    /// Invariant: every cluster here is also in `supported_by`.
    pub available: Availability,
    /// Clusters not answering whose last report listed this release.
    pub last_known_by: BTreeSet<ClusterId>,
    /// What those clusters last reported holding: "last known", never available. Invariant:
    /// every cluster here is in `last_known_by`, none in `supported_by`.
    pub last_known: Availability,
}

/// Clusters disagreeing on one field; `chosen` is what the view shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conflict {
    pub osystem: String,
    /// `None` for an OS-level field.
    pub release: Option<String>,
    pub field: ConflictField,
    pub chosen: Option<String>,
    /// Every value given, sorted by value, with the clusters that gave it.
    pub values: Vec<ConflictValue>,
}

/// One value in a conflict; booleans are written `"true"`/`"false"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConflictValue {
    pub value: Option<String>,
    pub clusters: BTreeSet<ClusterId>,
}

/// The fields on which clusters can disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ConflictField {
    Title,
    DefaultRelease,
    DefaultCommissioningRelease,
    RequiresLicenseKey,
    CanCommission,
    EndOfLife,
}

/// Why answers could not be merged.
#[derive(Error, Clone, Debug, PartialEq, Eq)]
pub enum MergeError {
    #[error("more than one answer from cluster(s): {}", names(.0))]
    DuplicateClusters(BTreeSet<ClusterId>),
}

impl MeshView {
    /// Merges answers arriving in any order; refuses a cluster id that appears twice.
    pub fn merge(
        answers: impl IntoIterator<Item = (ClusterId, ClusterAnswer)>,
    ) -> Result<MeshView, MergeError> {
        let mut by_cluster = BTreeMap::new();
        let mut duplicates = BTreeSet::new();
        for (cluster, answer) in answers {
            match by_cluster.entry(cluster) {
                Entry::Occupied(taken) => {
                    duplicates.insert(taken.key().clone());
                }
                Entry::Vacant(free) => {
                    free.insert(answer);
                }
            }
        }
        if !duplicates.is_empty() {
            return Err(MergeError::DuplicateClusters(duplicates));
        }
        Ok(MeshView::from_answers(&by_cluster))
    }

    /// Merges answers already keyed by cluster.
    pub fn from_answers(answers: &BTreeMap<ClusterId, ClusterAnswer>) -> MeshView {
        let mut view = MeshView::default();
        let mut live = Vec::new();
        let mut stale = Vec::new();
        for (cluster, answer) in answers {
            match answer {
                ClusterAnswer::Answered(report) => {
                    view.answered.insert(cluster.clone());
                    live.push((cluster, report));
                }
                ClusterAnswer::NoAnswer(_) | ClusterAnswer::LastKnown { .. }
                    if crate::hooks::forget_not_answering() => {}
                ClusterAnswer::NoAnswer(reason) => {
                    view.not_answered.insert(cluster.clone(), reason.clone());
                }
                ClusterAnswer::LastKnown { reason, report } => {
                    view.not_answered.insert(cluster.clone(), reason.clone());
                    stale.push((cluster, report));
                }
            }
        }
        for (name, os) in tally_reports(&live) {
            view.osystems.push(os.decide(&name, &mut view.conflicts));
        }
        // Stale listings only fill what no answering cluster lists; their conflicts are moot.
        let mut ignored = Vec::new();
        for (name, os) in tally_reports(&stale) {
            let last = os.decide(&name, &mut ignored).into_last_known();
            match view.osystems.binary_search_by(|o| o.name.cmp(&name)) {
                Ok(index) => view.osystems[index].add_last_known(last),
                Err(index) => view.osystems.insert(index, last),
            }
        }
        view
    }

    pub fn osystem(&self, name: &str) -> Option<&MeshOsystem> {
        self.osystems
            .binary_search_by(|os| os.name.as_str().cmp(name))
            .ok()
            .map(|index| &self.osystems[index])
    }

    pub fn release(&self, os: &str, release: &str) -> Option<&MeshRelease> {
        let os = self.osystem(os)?;
        os.releases
            .binary_search_by(|entry| entry.name.as_str().cmp(release))
            .ok()
            .map(|index| &os.releases[index])
    }

    /// The clusters (sorted) holding an image of `os`/`release` for `arch` that serves
    /// `purpose`.
    pub fn is_available(
        &self,
        os: &str,
        release: &str,
        arch: &str,
        purpose: Purpose,
    ) -> Vec<ClusterId> {
        let Some(clusters) = self
            .release(os, release)
            .and_then(|r| r.available.get(arch))
        else {
            return Vec::new();
        };
        clusters
            .iter()
            .filter(|(_, purposes)| purposes.contains(&purpose))
            .map(|(cluster, _)| cluster.clone())
            .collect()
    }
}

/// The tally of `reports`: listings first, then images (which count only for listed releases).
fn tally_reports(reports: &[(&ClusterId, &ClusterReport)]) -> BTreeMap<String, OsTally> {
    let mut tally = BTreeMap::new();
    for (cluster, report) in reports {
        tally_listing(&mut tally, cluster, &report.osystems);
    }
    for (cluster, report) in reports {
        tally_images(&mut tally, cluster, &report.images);
    }
    tally
}

impl MeshOsystem {
    /// This OS as last known: its supporters and availability moved to the last-known fields.
    fn into_last_known(self) -> MeshOsystem {
        MeshOsystem {
            last_known_by: self.supported_by,
            supported_by: BTreeSet::new(),
            releases: self
                .releases
                .into_iter()
                .map(MeshRelease::into_last_known)
                .collect(),
            ..self
        }
    }

    /// Adds what not-answering clusters last reported to an OS answering clusters list.
    fn add_last_known(&mut self, last: MeshOsystem) {
        self.last_known_by.extend(last.last_known_by);
        for release in last.releases {
            match self
                .releases
                .binary_search_by(|r| r.name.cmp(&release.name))
            {
                Ok(index) => {
                    let mine = &mut self.releases[index];
                    mine.last_known_by.extend(release.last_known_by);
                    for (arch, clusters) in release.last_known {
                        mine.last_known.entry(arch).or_default().extend(clusters);
                    }
                }
                Err(index) => self.releases.insert(index, release),
            }
        }
    }
}

impl MeshRelease {
    fn into_last_known(self) -> MeshRelease {
        MeshRelease {
            last_known_by: self.supported_by,
            last_known: self.available,
            supported_by: BTreeSet::new(),
            available: Availability::new(),
            ..self
        }
    }
}

/// Values of one field, each with the clusters that gave it.
struct Votes<T>(BTreeMap<T, BTreeSet<ClusterId>>);

impl<T: Ord + Clone + Rendered> Votes<T> {
    fn add(&mut self, value: &T, cluster: &ClusterId) {
        // Most clusters agree: look the value up before cloning it as a new key.
        match self.0.get_mut(value) {
            Some(clusters) => clusters.insert(cluster.clone()),
            None => self
                .0
                .entry(value.clone())
                .or_default()
                .insert(cluster.clone()),
        };
    }

    /// Most clusters wins; ties go to the smallest value.
    fn winner(&self) -> Option<&T> {
        self.0
            .iter()
            .max_by(|(a, a_by), (b, b_by)| a_by.len().cmp(&b_by.len()).then(b.cmp(a)))
            .map(|(value, _)| value)
    }

    /// The winner, recording a conflict when clusters disagree.
    fn decide(&self, at: ConflictSite<'_>, conflicts: &mut Vec<Conflict>) -> Option<T> {
        let winner = self.winner().cloned();
        if self.0.len() > 1 {
            conflicts.push(Conflict {
                osystem: at.osystem.to_owned(),
                release: at.release.map(str::to_owned),
                field: at.field,
                chosen: winner.as_ref().and_then(Rendered::rendered),
                values: self.conflict_values(),
            });
        }
        winner
    }

    fn conflict_values(&self) -> Vec<ConflictValue> {
        self.0
            .iter()
            .map(|(value, clusters)| ConflictValue {
                value: value.rendered(),
                clusters: clusters.clone(),
            })
            .collect()
    }
}

impl Votes<bool> {
    /// `true` if any cluster said `true`, recording a conflict when clusters disagree.
    fn decide_any(&self, at: ConflictSite<'_>, conflicts: &mut Vec<Conflict>) -> Option<bool> {
        let any = self.0.keys().next_back().copied();
        if self.0.len() > 1 {
            conflicts.push(Conflict {
                osystem: at.osystem.to_owned(),
                release: at.release.map(str::to_owned),
                field: at.field,
                chosen: any.and_then(|v| v.rendered()),
                values: self.conflict_values(),
            });
        }
        any
    }
}

impl<T> Default for Votes<T> {
    fn default() -> Self {
        Votes(BTreeMap::new())
    }
}

/// Where a conflict is: an OS field, or a release field when `release` is set.
#[derive(Clone, Copy)]
struct ConflictSite<'a> {
    osystem: &'a str,
    release: Option<&'a str>,
    field: ConflictField,
}

#[derive(Default)]
struct OsTally {
    title: Votes<String>,
    default_release: Votes<Option<String>>,
    default_commissioning_release: Votes<Option<String>>,
    supported_by: BTreeSet<ClusterId>,
    releases: BTreeMap<String, ReleaseTally>,
}

#[derive(Default)]
struct ReleaseTally {
    title: Votes<String>,
    requires_license_key: Votes<bool>,
    can_commission: Votes<bool>,
    end_of_life: Votes<bool>,
    supported_by: BTreeSet<ClusterId>,
    available: Availability,
}

fn tally_listing(
    tally: &mut BTreeMap<String, OsTally>,
    cluster: &ClusterId,
    listing: &[OsystemInfo],
) {
    for info in listing {
        let os = entry_for(tally, &info.name);
        os.supported_by.insert(cluster.clone());
        os.title.add(&info.title, cluster);
        os.default_release.add(&info.default_release, cluster);
        os.default_commissioning_release
            .add(&info.default_commissioning_release, cluster);
        for release in &info.releases {
            tally_release(entry_for(&mut os.releases, &release.name), cluster, release);
        }
    }
}

/// The tally under `name`, created on first sight; the name is cloned only then.
fn entry_for<'a, T: Default>(tallies: &'a mut BTreeMap<String, T>, name: &str) -> &'a mut T {
    if !tallies.contains_key(name) {
        tallies.insert(name.to_owned(), T::default());
    }
    tallies
        .get_mut(name)
        .expect("the tally was inserted just above")
}

fn tally_release(tally: &mut ReleaseTally, cluster: &ClusterId, release: &ReleaseInfo) {
    tally.supported_by.insert(cluster.clone());
    tally.title.add(&release.title, cluster);
    tally
        .requires_license_key
        .add(&release.requires_license_key, cluster);
    tally.can_commission.add(&release.can_commission, cluster);
    tally.end_of_life.add(&release.end_of_life, cluster);
}

fn tally_images(tally: &mut BTreeMap<String, OsTally>, cluster: &ClusterId, images: &[BootImage]) {
    for image in images.iter().filter(|image| !image.purposes.is_empty()) {
        let release = tally
            .get_mut(&image.osystem)
            .and_then(|os| os.releases.get_mut(&image.release))
            .filter(|release| release.supported_by.contains(cluster));
        if let Some(release) = release {
            let by_cluster = release.available.entry(image.arch.clone()).or_default();
            let purposes = by_cluster.entry(cluster.clone()).or_default();
            purposes.extend(image.purposes.iter().copied());
        }
    }
}

impl OsTally {
    fn decide(self, name: &str, conflicts: &mut Vec<Conflict>) -> MeshOsystem {
        let site = |field| ConflictSite {
            osystem: name,
            release: None,
            field,
        };
        let title = self.title.decide(site(ConflictField::Title), conflicts);
        let default_release = self
            .default_release
            .decide(site(ConflictField::DefaultRelease), conflicts);
        let default_commissioning_release = self
            .default_commissioning_release
            .decide(site(ConflictField::DefaultCommissioningRelease), conflicts);
        let releases = self
            .releases
            .into_iter()
            .map(|(release, tally)| tally.decide(name, release, conflicts))
            .collect();
        MeshOsystem {
            name: name.to_owned(),
            title: title.unwrap_or_default(),
            default_release: default_release.flatten(),
            default_commissioning_release: default_commissioning_release.flatten(),
            supported_by: self.supported_by,
            last_known_by: BTreeSet::new(),
            releases,
        }
    }
}

impl ReleaseTally {
    fn decide(self, osystem: &str, name: String, conflicts: &mut Vec<Conflict>) -> MeshRelease {
        let site = |field| ConflictSite {
            osystem,
            release: Some(&name),
            field,
        };
        let title = self.title.decide(site(ConflictField::Title), conflicts);
        // A safety merge, not a vote: any cluster that says a key is needed wins.
        let requires_license_key = self
            .requires_license_key
            .decide_any(site(ConflictField::RequiresLicenseKey), conflicts);
        let can_commission = self
            .can_commission
            .decide(site(ConflictField::CanCommission), conflicts);
        let end_of_life = self
            .end_of_life
            .decide_any(site(ConflictField::EndOfLife), conflicts);
        MeshRelease {
            title: title.unwrap_or_default(),
            requires_license_key: requires_license_key.unwrap_or_default(),
            can_commission: can_commission.unwrap_or_default(),
            end_of_life: end_of_life.unwrap_or_default(),
            supported_by: self.supported_by,
            available: self.available,
            last_known_by: BTreeSet::new(),
            last_known: Availability::new(),
            name,
        }
    }
}

/// How a field's value is written in a `Conflict`.
trait Rendered {
    fn rendered(&self) -> Option<String>;
}

impl Rendered for String {
    fn rendered(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl Rendered for Option<String> {
    fn rendered(&self) -> Option<String> {
        self.clone()
    }
}

impl Rendered for bool {
    fn rendered(&self) -> Option<String> {
        Some(self.to_string())
    }
}

fn names(clusters: &BTreeSet<ClusterId>) -> String {
    let names: Vec<&str> = clusters.iter().map(ClusterId::as_str).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Purpose::*;

    fn id(name: &str) -> ClusterId {
        ClusterId::new(name)
    }

    fn ids(names: &[&str]) -> BTreeSet<ClusterId> {
        names.iter().map(|name| id(name)).collect()
    }

    fn release(name: &str, title: &str, key: bool, commission: bool) -> ReleaseInfo {
        ReleaseInfo {
            name: name.into(),
            title: title.into(),
            requires_license_key: key,
            can_commission: commission,
            end_of_life: false,
        }
    }

    fn os(
        name: &str,
        title: &str,
        default: Option<&str>,
        releases: Vec<ReleaseInfo>,
    ) -> OsystemInfo {
        OsystemInfo {
            name: name.into(),
            title: title.into(),
            default_release: default.map(str::to_owned),
            default_commissioning_release: default.map(str::to_owned),
            releases,
        }
    }

    fn ubuntu(releases: &[&str], default: &str) -> OsystemInfo {
        let releases = releases
            .iter()
            .map(|name| release(name, &format!("Ubuntu {name}"), false, true))
            .collect();
        os("ubuntu", "Ubuntu", Some(default), releases)
    }

    fn image(os: &str, arch: &str, release: &str, purposes: &[Purpose]) -> BootImage {
        BootImage {
            osystem: os.into(),
            arch: arch.into(),
            subarch: "generic".into(),
            release: release.into(),
            label: "stable".into(),
            purposes: purposes.iter().copied().collect(),
        }
    }

    fn answered(osystems: Vec<OsystemInfo>, images: Vec<BootImage>) -> ClusterAnswer {
        ClusterAnswer::Answered(ClusterReport {
            osystems: osystems.into(),
            images: images.into(),
        })
    }

    fn merge(answers: Vec<(&str, ClusterAnswer)>) -> MeshView {
        let answers = answers.into_iter().map(|(name, answer)| (id(name), answer));
        match MeshView::merge(answers) {
            Ok(view) => view,
            Err(error) => panic!("merge failed: {error}"),
        }
    }

    #[test]
    fn divergent_image_sets_merge_into_one_entry_per_os() {
        let view = merge(vec![
            (
                "alpha",
                answered(
                    vec![ubuntu(&["jammy"], "jammy")],
                    vec![image("ubuntu", "amd64", "jammy", &[Commissioning, Install])],
                ),
            ),
            (
                "beta",
                answered(
                    vec![ubuntu(&["jammy", "noble"], "noble")],
                    vec![
                        image("ubuntu", "arm64", "jammy", &[Install]),
                        image("ubuntu", "amd64", "noble", &[Xinstall]),
                    ],
                ),
            ),
        ]);
        assert_eq!(view.osystems.len(), 1);
        let jammy = view.release("ubuntu", "jammy").cloned();
        let Some(jammy) = jammy else {
            panic!("jammy listed")
        };
        assert_eq!(jammy.supported_by, ids(&["alpha", "beta"]));
        let expected: Availability = [
            (
                "amd64".to_owned(),
                [(id("alpha"), [Commissioning, Install].into())].into(),
            ),
            ("arm64".to_owned(), [(id("beta"), [Install].into())].into()),
        ]
        .into();
        assert_eq!(jammy.available, expected);
        let noble = view
            .release("ubuntu", "noble")
            .map(|r| r.supported_by.clone());
        assert_eq!(noble, Some(ids(&["beta"])));
        assert_eq!(
            view.is_available("ubuntu", "jammy", "amd64", Install),
            vec![id("alpha")]
        );
        assert_eq!(
            view.is_available("ubuntu", "jammy", "arm64", Commissioning),
            vec![]
        );
        assert_eq!(
            view.is_available("ubuntu", "noble", "amd64", Xinstall),
            vec![id("beta")]
        );
        assert_eq!(
            view.is_available("ubuntu", "focal", "amd64", Xinstall),
            vec![]
        );
    }

    #[test]
    fn divergent_defaults_are_a_conflict_with_a_tie_going_to_the_smallest() {
        let view = merge(vec![
            ("alpha", answered(vec![ubuntu(&["jammy"], "jammy")], vec![])),
            (
                "beta",
                answered(vec![ubuntu(&["jammy", "noble"], "noble")], vec![]),
            ),
        ]);
        let default = view
            .osystem("ubuntu")
            .and_then(|os| os.default_release.clone());
        assert_eq!(default.as_deref(), Some("jammy"));
        let fields: Vec<ConflictField> = view.conflicts.iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                ConflictField::DefaultRelease,
                ConflictField::DefaultCommissioningRelease
            ]
        );
        let values: Vec<(Option<String>, BTreeSet<ClusterId>)> = view.conflicts[0]
            .values
            .iter()
            .map(|v| (v.value.clone(), v.clusters.clone()))
            .collect();
        assert_eq!(
            values,
            [
                (Some("jammy".into()), ids(&["alpha"])),
                (Some("noble".into()), ids(&["beta"]))
            ]
        );
    }

    #[test]
    fn conflicting_titles_go_to_the_majority_and_list_every_value() {
        let centos = |title: &str| {
            os(
                "centos",
                "CentOS",
                None,
                vec![release("centos7", title, false, false)],
            )
        };
        let view = merge(vec![
            ("a", answered(vec![centos("CentOS 7")], vec![])),
            ("b", answered(vec![centos("CentOS Linux 7")], vec![])),
            ("c", answered(vec![centos("CentOS Linux 7")], vec![])),
        ]);
        let title = view.release("centos", "centos7").map(|r| r.title.clone());
        assert_eq!(title.as_deref(), Some("CentOS Linux 7"));
        let expected = Conflict {
            osystem: "centos".into(),
            release: Some("centos7".into()),
            field: ConflictField::Title,
            chosen: Some("CentOS Linux 7".into()),
            values: vec![
                ConflictValue {
                    value: Some("CentOS 7".into()),
                    clusters: ids(&["a"]),
                },
                ConflictValue {
                    value: Some("CentOS Linux 7".into()),
                    clusters: ids(&["b", "c"]),
                },
            ],
        };
        assert_eq!(view.conflicts, vec![expected]);
    }

    #[test]
    fn license_flag_disagreement_is_a_conflict() {
        let win = |key: bool| {
            os(
                "windows",
                "Windows",
                None,
                vec![release("win2019", "W", key, false)],
            )
        };
        let view = merge(vec![
            ("a", answered(vec![win(true)], vec![])),
            ("b", answered(vec![win(false)], vec![])),
        ]);
        let chosen: Vec<(ConflictField, Option<String>)> = view
            .conflicts
            .iter()
            .map(|c| (c.field, c.chosen.clone()))
            .collect();
        assert_eq!(
            chosen,
            [(ConflictField::RequiresLicenseKey, Some("true".into()))]
        );
        let required = view
            .release("windows", "win2019")
            .map(|r| r.requires_license_key);
        assert_eq!(required, Some(true));
    }

    #[test]
    fn one_cluster_requiring_a_key_outweighs_any_majority() {
        let win = |key: bool| {
            os(
                "windows",
                "Windows",
                None,
                vec![release("win2019", "W", key, false)],
            )
        };
        let view = merge(vec![
            ("a", answered(vec![win(false)], vec![])),
            ("b", answered(vec![win(false)], vec![])),
            ("c", answered(vec![win(true)], vec![])),
        ]);
        let required = view
            .release("windows", "win2019")
            .map(|r| r.requires_license_key);
        assert_eq!(required, Some(true));
    }

    #[test]
    fn a_disconnected_cluster_is_last_known_never_answered_or_available() {
        let jammy = || {
            answered(
                vec![ubuntu(&["jammy"], "jammy")],
                vec![image("ubuntu", "amd64", "jammy", &[Install])],
            )
        };
        let ClusterAnswer::Answered(report) = jammy() else {
            unreachable!("built as answered")
        };
        let noble_only = ClusterReport {
            osystems: vec![ubuntu(&["noble"], "noble")].into(),
            images: vec![image("ubuntu", "arm64", "noble", &[Install])].into(),
        };
        let view = merge(vec![
            ("up", jammy()),
            (
                "down",
                ClusterAnswer::LastKnown {
                    reason: NoAnswerReason::NotConnected,
                    report,
                },
            ),
            (
                "gone",
                ClusterAnswer::LastKnown {
                    reason: NoAnswerReason::NotConnected,
                    report: noble_only,
                },
            ),
        ]);
        assert_eq!(view.answered, ids(&["up"]));
        assert_eq!(
            view.not_answered.keys().cloned().collect::<BTreeSet<_>>(),
            ids(&["down", "gone"])
        );
        assert_eq!(
            view.is_available("ubuntu", "jammy", "amd64", Install),
            vec![id("up")]
        );
        let Some(jammy) = view.release("ubuntu", "jammy") else {
            panic!("jammy listed")
        };
        assert_eq!(jammy.supported_by, ids(&["up"]));
        assert_eq!(jammy.last_known_by, ids(&["down"]));
        let last: Availability =
            [("amd64".to_owned(), [(id("down"), [Install].into())].into())].into();
        assert_eq!(jammy.last_known, last);
        // A release only a disconnected cluster knows is shown, but as last known only.
        let Some(noble) = view.release("ubuntu", "noble") else {
            panic!("noble shown as last known")
        };
        assert_eq!(noble.supported_by, BTreeSet::new());
        assert_eq!(noble.available, Availability::new());
        assert_eq!(noble.last_known_by, ids(&["gone"]));
        assert_eq!(
            view.is_available("ubuntu", "noble", "arm64", Install),
            vec![]
        );
        let os = view
            .osystem("ubuntu")
            .map(|o| (o.supported_by.clone(), o.last_known_by.clone()));
        assert_eq!(os, Some((ids(&["up"]), ids(&["down", "gone"]))));
        // The stale default (noble) raises no conflict with the answering one.
        assert_eq!(view.conflicts, vec![]);
    }

    #[test]
    fn a_cluster_that_did_not_answer_is_named_with_its_reason() {
        let view = merge(vec![
            ("up", answered(vec![ubuntu(&["jammy"], "jammy")], vec![])),
            ("down", ClusterAnswer::NoAnswer(NoAnswerReason::Timeout)),
        ]);
        assert_eq!(view.answered, ids(&["up"]));
        let expected: BTreeMap<ClusterId, NoAnswerReason> =
            [(id("down"), NoAnswerReason::Timeout)].into();
        assert_eq!(view.not_answered, expected);
        let supported = view.osystem("ubuntu").map(|os| os.supported_by.clone());
        assert_eq!(supported, Some(ids(&["up"])));
    }

    #[test]
    fn all_clusters_down_gives_an_empty_view_that_names_them_all() {
        let view = merge(vec![
            ("a", ClusterAnswer::NoAnswer(NoAnswerReason::NotConnected)),
            (
                "b",
                ClusterAnswer::NoAnswer(NoAnswerReason::Error("refused".into())),
            ),
        ]);
        assert_eq!(view.osystems, vec![]);
        assert_eq!(view.answered, BTreeSet::new());
        let expected: BTreeMap<ClusterId, NoAnswerReason> = [
            (id("a"), NoAnswerReason::NotConnected),
            (id("b"), NoAnswerReason::Error("refused".into())),
        ]
        .into();
        assert_eq!(view.not_answered, expected);
    }

    #[test]
    fn an_os_known_to_one_cluster_appears_once_supported_by_it() {
        let acme = os(
            "acme",
            "ACME",
            Some("a1"),
            vec![release("a1", "ACME 1", true, false)],
        );
        let view = merge(vec![
            ("a", answered(vec![ubuntu(&["jammy"], "jammy")], vec![])),
            (
                "b",
                answered(vec![ubuntu(&["jammy"], "jammy"), acme], vec![]),
            ),
        ]);
        let names: Vec<&str> = view.osystems.iter().map(|os| os.name.as_str()).collect();
        assert_eq!(names, ["acme", "ubuntu"]);
        let acme = view
            .osystem("acme")
            .map(|os| (os.supported_by.clone(), os.title.clone()));
        assert_eq!(acme, Some((ids(&["b"]), "ACME".to_owned())));
        assert_eq!(view.conflicts, vec![]);
    }

    #[test]
    fn images_of_releases_a_cluster_does_not_list_are_not_available() {
        let view = merge(vec![
            ("a", answered(vec![ubuntu(&["jammy"], "jammy")], vec![])),
            (
                "b",
                answered(vec![], vec![image("ubuntu", "amd64", "jammy", &[Install])]),
            ),
        ]);
        assert_eq!(
            view.is_available("ubuntu", "jammy", "amd64", Install),
            vec![]
        );
    }

    #[test]
    fn duplicate_cluster_ids_are_refused() {
        let answers = vec![
            (id("a"), ClusterAnswer::NoAnswer(NoAnswerReason::Timeout)),
            (id("a"), answered(vec![], vec![])),
            (id("b"), ClusterAnswer::NoAnswer(NoAnswerReason::Timeout)),
        ];
        let error = MeshView::merge(answers)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            error,
            Err("more than one answer from cluster(s): a".to_owned())
        );
    }

    #[test]
    fn no_answer_reasons_read_as_an_operator_reads_them() {
        assert_eq!(NoAnswerReason::NotConnected.to_string(), "not connected");
        assert_eq!(NoAnswerReason::Timeout.to_string(), "timed out");
        assert_eq!(
            NoAnswerReason::Error("bad frame".into()).to_string(),
            "error: bad frame"
        );
    }

    fn purposes() -> impl Strategy<Value = BTreeSet<Purpose>> {
        prop::collection::btree_set(prop::sample::select(Purpose::ALL.to_vec()), 0..3)
    }

    fn release_info() -> impl Strategy<Value = ReleaseInfo> {
        let name = prop::sample::select(vec!["r1", "r2", "r3"]);
        let title = prop::sample::select(vec!["T1", "T2"]);
        (name, title, any::<bool>(), any::<bool>())
            .prop_map(|(name, title, key, commission)| release(name, title, key, commission))
    }

    fn osystem_info() -> impl Strategy<Value = OsystemInfo> {
        let name = prop::sample::select(vec!["ubuntu", "centos", "acme"]);
        let title = prop::sample::select(vec!["A", "B"]);
        let default = prop::option::of(prop::sample::select(vec!["r1", "r2"]));
        let releases = prop::collection::vec(release_info(), 0..3);
        (name, title, default, releases)
            .prop_map(|(name, title, default, releases)| os(name, title, default, releases))
    }

    fn boot_image() -> impl Strategy<Value = BootImage> {
        let os_name = prop::sample::select(vec!["ubuntu", "centos", "acme"]);
        let arch = prop::sample::select(vec!["amd64", "arm64"]);
        let release = prop::sample::select(vec!["r1", "r2", "r3"]);
        (os_name, arch, release, purposes()).prop_map(|(os_name, arch, release, purposes)| {
            let purposes: Vec<Purpose> = purposes.into_iter().collect();
            image(os_name, arch, release, &purposes)
        })
    }

    fn answer() -> impl Strategy<Value = ClusterAnswer> {
        let reason = prop_oneof![
            Just(NoAnswerReason::NotConnected),
            Just(NoAnswerReason::Timeout),
            "[a-z]{0,3}".prop_map(NoAnswerReason::Error),
        ];
        let report = (
            prop::collection::vec(osystem_info(), 0..3),
            prop::collection::vec(boot_image(), 0..4),
        );
        let stale = (
            prop::collection::vec(osystem_info(), 0..3),
            prop::collection::vec(boot_image(), 0..4),
        );
        prop_oneof![
            reason.prop_map(ClusterAnswer::NoAnswer),
            report.prop_map(|(osystems, images)| answered(osystems, images)),
            stale.prop_map(|(osystems, images)| ClusterAnswer::LastKnown {
                reason: NoAnswerReason::NotConnected,
                report: ClusterReport {
                    osystems: osystems.into(),
                    images: images.into()
                },
            }),
        ]
    }

    type Answers = Vec<(ClusterId, ClusterAnswer)>;

    /// Answers from distinct clusters, and the same answers in a shuffled order.
    fn answers_and_shuffle() -> impl Strategy<Value = (Answers, Answers)> {
        let clusters = prop::collection::btree_map("[a-e]", answer(), 0..6);
        clusters.prop_flat_map(|clusters| {
            let answers: Vec<(ClusterId, ClusterAnswer)> = clusters
                .into_iter()
                .map(|(name, answer)| (id(&name), answer))
                .collect();
            (Just(answers.clone()), Just(answers).prop_shuffle())
        })
    }

    /// Answers where a cluster id may repeat (three ids, up to eight answers, so most cases
    /// have duplicates), and the same answers shuffled.
    fn answers_with_repeats_and_shuffle() -> impl Strategy<Value = (Answers, Answers)> {
        let answers = prop::collection::vec(("[a-c]", answer()), 0..8);
        answers.prop_flat_map(|answers| {
            let answers: Answers = answers
                .into_iter()
                .map(|(name, answer)| (id(&name), answer))
                .collect();
            (Just(answers.clone()), Just(answers).prop_shuffle())
        })
    }

    proptest! {
        #[test]
        fn merge_does_not_depend_on_arrival_order((answers, shuffled) in answers_and_shuffle()) {
            prop_assert_eq!(MeshView::merge(answers), MeshView::merge(shuffled));
        }

        /// With repeated cluster ids too: the same verdict in any order, and a refusal that
        /// names exactly the repeated ids (never a view that picked one answer by arrival).
        #[test]
        fn merge_with_repeated_clusters_does_not_depend_on_arrival_order(
            (answers, shuffled) in answers_with_repeats_and_shuffle()
        ) {
            let mut seen = BTreeSet::new();
            let repeated: BTreeSet<ClusterId> = answers
                .iter()
                .filter(|(c, _)| !seen.insert(c.clone()))
                .map(|(c, _)| c.clone())
                .collect();
            let merged = MeshView::merge(answers);
            prop_assert_eq!(&merged, &MeshView::merge(shuffled));
            if repeated.is_empty() {
                prop_assert!(merged.is_ok());
            } else {
                prop_assert_eq!(merged, Err(MergeError::DuplicateClusters(repeated)));
            }
        }

        #[test]
        fn every_cluster_is_accounted_for_and_availability_implies_support(
            (answers, _) in answers_and_shuffle()
        ) {
            let all: BTreeSet<ClusterId> = answers.iter().map(|(id, _)| id.clone()).collect();
            let view = MeshView::merge(answers).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let not_answered: BTreeSet<ClusterId> = view.not_answered.keys().cloned().collect();
            prop_assert!(view.answered.is_disjoint(&not_answered));
            let union: BTreeSet<ClusterId> = view.answered.union(&not_answered).cloned().collect();
            prop_assert_eq!(union, all);
            for os in &view.osystems {
                prop_assert!(os.supported_by.is_subset(&view.answered));
                prop_assert!(os.last_known_by.is_subset(&not_answered));
                for release in &os.releases {
                    prop_assert!(release.supported_by.is_subset(&os.supported_by));
                    prop_assert!(release.last_known_by.is_subset(&os.last_known_by));
                    for clusters in release.last_known.values() {
                        for cluster in clusters.keys() {
                            prop_assert!(release.last_known_by.contains(cluster));
                        }
                    }
                    for clusters in release.available.values() {
                        for (cluster, purposes) in clusters {
                            prop_assert!(release.supported_by.contains(cluster));
                            prop_assert!(!purposes.is_empty());
                        }
                    }
                }
            }
        }
    }
}
