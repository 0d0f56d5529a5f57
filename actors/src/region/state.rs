//! The region as a pure state machine: every cluster the region knows (its current link, its
//! last report, when it was last heard from, since when it is disconnected), every open link,
//! and the domain rules over them. The region actor (`super::RegionActor`) is its driver.
//!
//! Shape, after quinn-proto's `Connection`:
//!
//! - **inputs** are `handle_*` methods (a link authenticated, registered, closed, timed out
//!   before registering; a frame or a report arrived; answers of a fan-out came back). Each
//!   that dates something takes `now_ms`; nothing here reads a clock.
//! - **answers** are returned as values: `cached_answer`, `live_answer`, `cluster_statuses`,
//!   `held_images`, and what the driver needs to move bytes (`link`, `fanout_targets`,
//!   `connected_links`, `snapshot`).
//! - **events** the driver reports (metrics) are polled with `poll_event`.
//!
//! No actix, no tokio, no store, no network handle: a link is a `LinkId`, and the driver keeps
//! each link's `Peer`, closes the links these methods name, and persists what they say
//! changed. So every rule here is unit-tested with plain `#[test]`s (below).
//!
//! Why in `osmesh-actors` and not in `osmesh-core`: the rules speak the region's link layer,
//! which `core` must not know (`core` depends on no crate of ours). A wire error
//! (`osmesh_net::RpcError`) decides a no-answer reason; links are the connection actors'
//! `LinkId`s, capped by `net`'s `MAX_LINKS`; a `Register` is `net`'s message. These are plain
//! data; of `net` this module uses no I/O. The cluster never runs these rules, so no second
//! crate needs them. Kept pure by review and by `state_machine_imports_no_runtime`.
//!
//! The rules, each at the method that holds it:
//!
//! - A link is a cluster only after its `Register` names the identity it proved
//!   (`check_register`); an identity has one live link, and a second is refused until the
//!   first has closed. At most `MAX_LINKS` links, but a cluster holding one may replace it.
//! - **Answered** (cached view): connected with a snapshot. Disconnected is `NotConnected`
//!   (its snapshot only "last known"); connected without a report is an `Error`
//!   (`cached_no_answer`). Live: the call's outcome (`no_answer_reason`).
//! - **Staleness**: a part's age is `now - received_at` of the snapshot; a disconnected
//!   cluster's part carries `disconnected_since_ms` (`part`).
//! - **The kept merge** (`cached_view`) equals a fresh merge of the snapshots: it is dropped
//!   when a snapshot's content or a link changes (`hold`, `same_content`). A live answer reuses
//!   it only when every cluster answered and is still linked (`may_reuse_merge`).
//! - **The cached epoch** (`cached_epoch`) moves at every change a cached answer shows apart
//!   from ages: a cluster added, forgotten or renamed, a link made or lost, a snapshot's
//!   content (`changed`). Equal epochs of one state mean equal cached answers, ages aside;
//!   the API's `ETag` is built on it, so a poller's 304 costs no answer.

use osmesh_core::mesh::{ClusterAnswer, ClusterReport, MeshView, NoAnswerReason};
use osmesh_core::{BootImage, ClusterId, OsystemInfo};
use osmesh_net::limits::MAX_LINKS;
use osmesh_net::messages::Register;
use osmesh_net::{ErrorKind, RpcError};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::answer::{ClusterPart, ClusterStatus, OsystemsAnswer, ReadPath};
use super::images::HeldImages;
use crate::connection::LinkId;

/// A cluster's last report as the region holds it, and when it arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSnapshot {
    /// Shared with the reply memo and the answers built from it (see `ClusterReport`).
    pub osystems: Arc<Vec<OsystemInfo>>,
    pub images: Arc<Vec<BootImage>>,
    pub received_at_ms: i64,
}

impl HeldSnapshot {
    /// Whether `report` says what this snapshot says. The one test of "the snapshot changed":
    /// the kept merge is dropped exactly when this is false.
    fn same_content(&self, report: &ClusterReport) -> bool {
        // The memo hands back the same lists for an unchanged reply: no element compare then.
        (Arc::ptr_eq(&self.osystems, &report.osystems) || self.osystems == report.osystems)
            && (Arc::ptr_eq(&self.images, &report.images) || self.images == report.images)
    }

    fn report(&self) -> ClusterReport {
        ClusterReport {
            osystems: self.osystems.clone(),
            images: self.images.clone(),
        }
    }
}

/// A cluster the store remembers, as the region restores it after a restart.
#[derive(Clone, Debug)]
pub struct KnownCluster {
    pub id: ClusterId,
    pub name: String,
    pub last_seen_ms: i64,
    pub snapshot: Option<HeldSnapshot>,
}

/// What an open link is to the region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkRole {
    /// Authenticated as this identity, but no `Register` yet: in no answer and no listing.
    Unregistered(ClusterId),
    /// The current link of this cluster.
    Registered(ClusterId),
}

/// Why a link's `Register` was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum RegisterRefusal {
    /// The link is not waiting to register (registered already, or gone).
    NotUnregistered,
    /// The claim does not match the proved identity, or its name breaks the field rule.
    BadClaim(RpcError),
    /// The identity's current link is alive; a second one waits until it is declared dead.
    Duplicate {
        cluster: ClusterId,
        live_link: LinkId,
    },
}

impl From<RegisterRefusal> for RpcError {
    fn from(refusal: RegisterRefusal) -> RpcError {
        match refusal {
            RegisterRefusal::NotUnregistered => RpcError::internal("not an unregistered link"),
            RegisterRefusal::BadClaim(err) => err,
            RegisterRefusal::Duplicate { cluster, .. } => RpcError::new(
                ErrorKind::Unavailable,
                format!(
                    "cluster {:?} is already connected on a live link; a second link is \
                     refused until that one is declared dead",
                    cluster.as_str()
                ),
            ),
        }
    }
}

/// A link that became its cluster's link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub cluster: ClusterId,
    /// The cluster's previous link, closed already (its close is on its way): the driver
    /// closes and forgets it.
    pub replaced: Option<LinkId>,
}

/// Every link slot is taken (`MAX_LINKS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinksFull;

/// What a closed link meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkClosedOutcome {
    /// Not a cluster's current link (unregistered, replaced, or unknown): nothing changes.
    Ignored,
    /// The cluster lost its link now; persist when it was last heard from.
    Disconnected {
        cluster: ClusterId,
        name: String,
        last_seen_ms: i64,
    },
}

/// How a report compared with the held snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotChange {
    /// The region does not know the cluster: nothing held.
    UnknownCluster,
    /// Same content; only its time moved.
    Unchanged,
    /// New content: held, and the kept merge dropped.
    Changed,
}

/// Something the driver reports; polled with `RegionState::poll_event`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionEvent {
    /// The cached view was merged again.
    ViewRebuilt,
    /// A live answer merged its answers from scratch (it could not reuse the kept merge).
    LiveMerged,
}

/// A live fan-out's deadline and duration, for its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FanoutTiming {
    pub deadline_ms: u64,
    pub elapsed_ms: u64,
}

#[derive(Clone, Debug)]
struct ClusterEntry {
    name: String,
    /// Its current link; `None` while disconnected. Invariant: `Some(l)` exactly when
    /// `links[l]` is `Registered` with this cluster.
    link: Option<LinkId>,
    snapshot: Option<HeldSnapshot>,
    last_seen_ms: i64,
    /// When the region last lost (or, after a restart, last heard from) this cluster; `None`
    /// while connected.
    disconnected_since_ms: Option<i64>,
}

/// The region's clusters and links; see the module doc.
#[derive(Debug, Default)]
pub struct RegionState {
    /// Every cluster the region has ever seen, by id.
    clusters: BTreeMap<ClusterId, ClusterEntry>,
    /// Every open link that counts: unregistered ones and each cluster's current one.
    links: BTreeMap<LinkId, LinkRole>,
    /// The last link id handed out (ids start at 1 and are never reused).
    last_link: LinkId,
    /// The merged view of the clusters' snapshots, kept until a snapshot or a link changes, so
    /// a cached read costs no merge. Invariant: `None` or equal to a fresh merge.
    cached_view: Option<Arc<MeshView>>,
    /// Moves at every change of a cached answer but its ages (`changed`).
    epoch: u64,
    events: VecDeque<RegionEvent>,
}

/// Why a call did not produce an answer, as the mesh view reports it: a call cut because the
/// link is gone (`Unavailable`) means the cluster is not connected.
pub fn no_answer_reason(err: RpcError) -> NoAnswerReason {
    match err.kind {
        ErrorKind::Timeout => NoAnswerReason::Timeout,
        ErrorKind::Unavailable => NoAnswerReason::NotConnected,
        _ => NoAnswerReason::Error(err.to_string()),
    }
}

/// Why a cluster does not count as answering in the cached view: it is not connected (what
/// it last reported, if anything, is only "last known"), or it has sent no report yet.
fn cached_no_answer(entry: &ClusterEntry) -> Option<NoAnswerReason> {
    match (&entry.snapshot, entry.link.is_some()) {
        (Some(_), true) => None,
        (_, false) => Some(NoAnswerReason::NotConnected),
        (None, true) => Some(NoAnswerReason::Error(
            "connected, but no report received yet".into(),
        )),
    }
}

/// A cluster known from the store, as the region holds it: disconnected since, at the latest,
/// the last time it was heard from (its last frame or its last snapshot).
fn remembered(cluster: KnownCluster) -> (ClusterId, ClusterEntry) {
    let heard = cluster.snapshot.as_ref().map_or(cluster.last_seen_ms, |s| {
        s.received_at_ms.max(cluster.last_seen_ms)
    });
    let entry = ClusterEntry {
        name: cluster.name,
        link: None,
        snapshot: cluster.snapshot,
        last_seen_ms: heard,
        disconnected_since_ms: Some(heard),
    };
    (cluster.id, entry)
}

/// A cluster's answer in the cached view: its snapshot if it counts as answering, else the
/// snapshot as last known (or nothing) with the reason.
fn cached_cluster_answer(entry: &ClusterEntry) -> ClusterAnswer {
    match (&entry.snapshot, cached_no_answer(entry)) {
        (Some(s), None) => ClusterAnswer::Answered(s.report()),
        (Some(s), Some(reason)) => ClusterAnswer::LastKnown {
            reason,
            report: s.report(),
        },
        (None, reason) => ClusterAnswer::NoAnswer(reason.unwrap_or(NoAnswerReason::NotConnected)),
    }
}

/// A cluster's part of an answer, before the read path says whether it answered.
fn part(id: &ClusterId, entry: &ClusterEntry, now_ms: i64) -> ClusterPart {
    ClusterPart {
        cluster: id.clone(),
        name: entry.name.clone(),
        connected: entry.link.is_some(),
        disconnected_since_ms: entry.disconnected_since_ms,
        age_ms: entry.snapshot.as_ref().map(|s| now_ms - s.received_at_ms),
        no_answer: None,
    }
}

/// A cluster's part of a live answer: age 0 if it answered now, else why not.
fn live_part(
    id: &ClusterId,
    entry: &ClusterEntry,
    answer: &ClusterAnswer,
    now_ms: i64,
) -> ClusterPart {
    let mut part = part(id, entry, now_ms);
    match answer {
        ClusterAnswer::Answered(_) => part.age_ms = Some(0),
        ClusterAnswer::NoAnswer(reason) | ClusterAnswer::LastKnown { reason, .. } => {
            part.no_answer = Some(reason.clone())
        }
    }
    part
}

fn answered((_, answer): &(ClusterId, ClusterAnswer)) -> bool {
    matches!(answer, ClusterAnswer::Answered(_))
}

impl RegionState {
    /// A region that remembers `known` clusters, each disconnected since, at the latest, the
    /// last time it was heard from (its last frame or its last snapshot).
    pub fn restore(known: impl IntoIterator<Item = KnownCluster>) -> Self {
        let mut state = RegionState::default();
        for cluster in known {
            let (id, entry) = remembered(cluster);
            state.clusters.insert(id, entry);
        }
        state
    }

    /// A cluster another region recorded (several regions share one database): added as
    /// disconnected, as `restore` adds one, unless the region knows it already. Whether it
    /// was added; the kept merge is dropped if so.
    pub fn adopt(&mut self, cluster: KnownCluster) -> bool {
        if self.clusters.contains_key(&cluster.id) {
            return false;
        }
        let (id, entry) = remembered(cluster);
        self.clusters.insert(id, entry);
        self.changed();
        true
    }

    /// Forgets a disconnected cluster (an operator removed it). `Err(())` while it has a
    /// link; `Ok(false)` if the region did not know it.
    #[allow(clippy::result_unit_err)]
    pub fn forget(&mut self, cluster: &ClusterId) -> Result<bool, ()> {
        match self.clusters.get(cluster) {
            Some(entry) if entry.link.is_some() => Err(()),
            Some(_) => {
                self.clusters.remove(cluster);
                self.changed();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Every open link of `identity`: its cluster's current link and any still waiting to
    /// register (for revocation, which closes them all).
    pub fn links_of(&self, identity: &ClusterId) -> Vec<LinkId> {
        self.links_of_any(|id| id == identity)
    }

    /// Every open link whose identity `excluded` says, in one pass over the links (a
    /// heartbeat hands the region every revoked and removed cluster at once).
    pub fn links_of_any(&self, excluded: impl Fn(&ClusterId) -> bool) -> Vec<LinkId> {
        self.links
            .iter()
            .filter(|(_, role)| match role {
                LinkRole::Unregistered(id) | LinkRole::Registered(id) => excluded(id),
            })
            .map(|(link, _)| *link)
            .collect()
    }

    // ---- Links: authenticated, registered, timed out, closed.

    /// A link finished its handshake as `identity`: it gets an id and waits for its
    /// `Register`. Refused when `MAX_LINKS` links are open, unless `identity` holds one (so a
    /// cluster can replace a dead link while the region is full).
    pub fn handle_authenticated(&mut self, identity: ClusterId) -> Result<LinkId, LinksFull> {
        let has_link = self
            .clusters
            .get(&identity)
            .is_some_and(|e| e.link.is_some());
        if self.links.len() >= MAX_LINKS && !has_link {
            return Err(LinksFull);
        }
        self.last_link += 1;
        let link = self.last_link;
        self.links.insert(link, LinkRole::Unregistered(identity));
        Ok(link)
    }

    /// The register deadline of `link` passed. If it is still unregistered it is dropped, and
    /// its identity returned: the driver closes it.
    pub fn handle_register_timeout(&mut self, link: LinkId) -> Option<ClusterId> {
        self.drop_unregistered(link)
    }

    /// An unregistered link is dropped (its `Register` was refused); the driver closes it.
    pub fn handle_register_refused(&mut self, link: LinkId) {
        self.drop_unregistered(link);
    }

    fn drop_unregistered(&mut self, link: LinkId) -> Option<ClusterId> {
        let Some(LinkRole::Unregistered(_)) = self.links.get(&link) else {
            return None;
        };
        match self.links.remove(&link) {
            Some(LinkRole::Unregistered(identity)) => Some(identity),
            _ => None,
        }
    }

    /// Whether `link` may register with `req`: it is unregistered, `req` names the identity it
    /// proved with a valid name, and that identity's current link, if any, is not alive
    /// (`link_alive` asks the driver, which holds the links). Nothing changes; on `Ok` the
    /// driver stores the cluster and calls `handle_register`.
    pub fn check_register(
        &self,
        link: LinkId,
        req: &Register,
        link_alive: impl FnOnce(LinkId) -> bool,
    ) -> Result<(), RegisterRefusal> {
        let Some(LinkRole::Unregistered(proved)) = self.links.get(&link) else {
            return Err(RegisterRefusal::NotUnregistered);
        };
        super::reports::check_register(proved, req).map_err(RegisterRefusal::BadClaim)?;
        let current = self.clusters.get(proved).and_then(|e| e.link);
        match current {
            Some(live_link) if link_alive(live_link) => Err(RegisterRefusal::Duplicate {
                cluster: proved.clone(),
                live_link,
            }),
            _ => Ok(()),
        }
    }

    /// `link`'s `Register` (checked by `check_register`, and stored) took effect now: the link
    /// becomes its cluster's link. `None` if `link` was not waiting to register.
    pub fn handle_register(
        &mut self,
        link: LinkId,
        name: String,
        now_ms: i64,
    ) -> Option<Registration> {
        let Some(LinkRole::Unregistered(cluster)) = self.links.remove(&link) else {
            return None;
        };
        let entry = self
            .clusters
            .entry(cluster.clone())
            .or_insert_with(|| ClusterEntry {
                name: name.clone(),
                link: None,
                snapshot: None,
                last_seen_ms: now_ms,
                disconnected_since_ms: None,
            });
        let replaced = entry.link.replace(link);
        if let Some(old) = replaced {
            self.links.remove(&old);
        }
        entry.name = name;
        entry.last_seen_ms = now_ms;
        entry.disconnected_since_ms = None;
        self.links
            .insert(link, LinkRole::Registered(cluster.clone()));
        self.changed();
        Some(Registration { cluster, replaced })
    }

    /// `link` closed now. If it was its cluster's current link, the cluster is disconnected
    /// from now on, and the kept merge is dropped (its part becomes "last known").
    pub fn handle_link_closed(&mut self, link: LinkId, now_ms: i64) -> LinkClosedOutcome {
        let Some(LinkRole::Registered(cluster)) = self.links.remove(&link) else {
            return LinkClosedOutcome::Ignored;
        };
        let Some(entry) = self.clusters.get_mut(&cluster) else {
            return LinkClosedOutcome::Ignored;
        };
        if entry.link != Some(link) {
            return LinkClosedOutcome::Ignored;
        }
        entry.link = None;
        entry.disconnected_since_ms = Some(now_ms);
        let outcome = LinkClosedOutcome::Disconnected {
            cluster: cluster.clone(),
            name: entry.name.clone(),
            last_seen_ms: entry.last_seen_ms,
        };
        self.changed();
        if osmesh_core::hooks::forget_disconnected_cluster() {
            self.clusters.remove(&cluster);
        }
        outcome
    }

    // ---- What registered clusters send, and what fan-outs bring back.

    /// A frame from `cluster` arrived now. `false` if the region does not know it.
    pub fn handle_heard(&mut self, cluster: &ClusterId, now_ms: i64) -> bool {
        match self.clusters.get_mut(cluster) {
            Some(entry) => {
                entry.last_seen_ms = now_ms;
                true
            }
            None => false,
        }
    }

    /// A registered cluster registered again (checked by `reports::check_register`): only its
    /// name may change.
    pub fn handle_rename(&mut self, cluster: &ClusterId, name: String) {
        let Some(entry) = self.clusters.get_mut(cluster) else {
            return;
        };
        if entry.name != name {
            entry.name = name;
            self.changed();
        }
    }

    /// `cluster` pushed `report` (`ReportBootImages`), received now: held as its snapshot.
    pub fn handle_report(
        &mut self,
        cluster: &ClusterId,
        report: ClusterReport,
        now_ms: i64,
    ) -> SnapshotChange {
        self.hold(cluster, Cow::Owned(report), now_ms)
    }

    /// A fan-out (live or refresh) brought `answers` back now. Each cluster that answered was
    /// heard from, and its answer is held as its snapshot. Returns the clusters whose snapshot
    /// content changed: the driver persists those (`snapshot`).
    pub fn handle_answers(
        &mut self,
        answers: &[(ClusterId, ClusterAnswer)],
        now_ms: i64,
    ) -> Vec<ClusterId> {
        let mut changed = Vec::new();
        for (id, answer) in answers {
            let ClusterAnswer::Answered(report) = answer else {
                continue;
            };
            // Its replies are frames received from it.
            if let Some(entry) = self.clusters.get_mut(id) {
                entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
            }
            if self.hold(id, Cow::Borrowed(report), now_ms) == SnapshotChange::Changed {
                changed.push(id.clone());
            }
        }
        changed
    }

    /// Holds `report` as `cluster`'s snapshot, received now; drops the kept merge if the
    /// content changed.
    fn hold(
        &mut self,
        cluster: &ClusterId,
        report: Cow<'_, ClusterReport>,
        now_ms: i64,
    ) -> SnapshotChange {
        let Some(entry) = self.clusters.get_mut(cluster) else {
            return SnapshotChange::UnknownCluster;
        };
        if let Some(held) = entry.snapshot.as_mut().filter(|s| s.same_content(&report)) {
            held.received_at_ms = now_ms;
            // Equal lists, perhaps two copies (one pushed, one from a reply memo): keep the
            // report's, so one copy stays in memory and the next compare is by pointer.
            held.osystems = report.osystems.clone();
            held.images = report.images.clone();
            return SnapshotChange::Unchanged;
        }
        let report = report.into_owned();
        entry.snapshot = Some(HeldSnapshot {
            osystems: report.osystems,
            images: report.images,
            received_at_ms: now_ms,
        });
        self.changed();
        SnapshotChange::Changed
    }

    // ---- Answers.

    /// The cached OS view: every cluster's last snapshot, at once.
    pub fn cached_answer(&mut self, now_ms: i64) -> OsystemsAnswer {
        let clusters = self
            .clusters
            .iter()
            .map(|(id, entry)| ClusterPart {
                no_answer: cached_no_answer(entry),
                ..part(id, entry, now_ms)
            })
            .collect();
        OsystemsAnswer {
            source: ReadPath::Cached,
            view: self.cached_view(),
            clusters,
            deadline_ms: None,
            elapsed_ms: None,
        }
    }

    /// The live OS view from a fan-out's `answers` (held already by `handle_answers`).
    pub fn live_answer(
        &mut self,
        mut answers: Vec<(ClusterId, ClusterAnswer)>,
        now_ms: i64,
        timing: FanoutTiming,
    ) -> OsystemsAnswer {
        // A cluster forgotten while the fan-out ran (removed, here or through another region)
        // is in neither the parts nor the view: the two must name the same clusters (swarm
        // seed 134 with 3 regions: a removal landed during a live read).
        answers.retain(|(id, _)| self.clusters.contains_key(id));
        if osmesh_core::hooks::serve_cached_as_live() {
            self.inject_cached_as_live(&mut answers);
        }
        let clusters = answers
            .iter()
            .filter_map(|(id, answer)| {
                let entry = self.clusters.get(id)?;
                Some(live_part(id, entry, answer, now_ms))
            })
            .collect();
        let view = if self.may_reuse_merge(&answers) {
            self.cached_view()
        } else {
            let answers: BTreeMap<_, _> = answers.into_iter().collect();
            self.events.push_back(RegionEvent::LiveMerged);
            Arc::new(MeshView::from_answers(&answers))
        };
        OsystemsAnswer {
            source: ReadPath::Live,
            view,
            clusters,
            deadline_ms: Some(timing.deadline_ms),
            elapsed_ms: Some(timing.elapsed_ms),
        }
    }

    /// Whether a live answer may be the kept merge of the snapshots: only when every cluster
    /// answered and is still linked. Then the answers are exactly the held snapshots and the
    /// cached view counts the same clusters as answering. A cluster that answered and then
    /// lost its link is only "last known" in the cached view, so reusing it would contradict
    /// the live answer's parts (found by swarm seed 1031976090). And the answers must cover
    /// every cluster the region knows now: one adopted while the fan-out ran (learned from
    /// another region) is in the cached view but was not asked, so it has no part (3-region
    /// swarm, safety seed 134). The answers are unique and known (see `live_answer`), so
    /// equal counts mean equal sets.
    fn may_reuse_merge(&self, answers: &[(ClusterId, ClusterAnswer)]) -> bool {
        if answers.len() != self.clusters.len() {
            return false;
        }
        let everyone_answered = if osmesh_core::hooks::reuse_merge_if_any_answered() {
            answers.iter().any(answered)
        } else {
            answers.iter().all(answered)
        };
        let still_linked = answers
            .iter()
            .all(|(id, _)| self.clusters.get(id).is_some_and(|e| e.link.is_some()));
        everyone_answered && still_linked
    }

    /// A cached answer changed (not only its ages): the kept merge is dropped and the epoch
    /// moves.
    fn changed(&mut self) {
        self.cached_view = None;
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// The epoch of the cached answer: equal epochs mean equal cached answers, ages aside.
    pub fn cached_epoch(&self) -> u64 {
        self.epoch
    }

    /// What a cached read's validator and summary need, without building every cluster's
    /// part: the epoch, the kept merge and how many clusters there are.
    pub fn cached_head(&mut self) -> (u64, Arc<MeshView>, usize) {
        (self.epoch, self.cached_view(), self.clusters.len())
    }

    /// The merge of every cluster's snapshot, computed again only after something changed.
    fn cached_view(&mut self) -> Arc<MeshView> {
        if let Some(view) = &self.cached_view {
            return view.clone();
        }
        let answers: BTreeMap<_, _> = self
            .clusters
            .iter()
            .map(|(id, entry)| (id.clone(), cached_cluster_answer(entry)))
            .collect();
        let view = Arc::new(MeshView::from_answers(&answers));
        self.events.push_back(RegionEvent::ViewRebuilt);
        self.cached_view = Some(view.clone());
        view
    }

    /// Injected bug (test hooks only): every silent cluster with a snapshot "answers" with it.
    fn inject_cached_as_live(&self, answers: &mut [(ClusterId, ClusterAnswer)]) {
        for (id, answer) in answers.iter_mut() {
            let snapshot = self.clusters.get(id).and_then(|e| e.snapshot.as_ref());
            if let (ClusterAnswer::NoAnswer(_), Some(s)) = (&*answer, snapshot) {
                *answer = ClusterAnswer::Answered(s.report());
            }
        }
    }

    /// Every cluster the region knows, sorted by id.
    pub fn cluster_statuses(&self, now_ms: i64) -> Vec<ClusterStatus> {
        self.clusters
            .iter()
            .map(|(id, entry)| ClusterStatus {
                id: id.clone(),
                name: entry.name.clone(),
                connected: entry.link.is_some(),
                disconnected_since_ms: entry.disconnected_since_ms,
                last_seen_ms: entry.last_seen_ms,
                image_count: entry.snapshot.as_ref().map_or(0, |s| s.images.len()),
                snapshot_age_ms: entry.snapshot.as_ref().map(|s| now_ms - s.received_at_ms),
            })
            .collect()
    }

    /// Every known cluster's held images (its last snapshot), with whether it is connected.
    pub fn held_images(&self, now_ms: i64) -> Vec<HeldImages> {
        self.clusters
            .iter()
            .map(|(id, entry)| HeldImages {
                cluster: id.clone(),
                connected: entry.link.is_some(),
                disconnected_since_ms: entry.disconnected_since_ms,
                age_ms: entry.snapshot.as_ref().map(|s| now_ms - s.received_at_ms),
                images: entry
                    .snapshot
                    .as_ref()
                    .map(|s| s.images.as_ref().clone())
                    .unwrap_or_default(),
            })
            .collect()
    }

    // ---- What the driver needs to move bytes.

    /// What `link` is, if it is open and counts.
    pub fn link(&self, link: LinkId) -> Option<&LinkRole> {
        self.links.get(&link)
    }

    /// Every known cluster with its current link, if any: whom a fan-out asks.
    pub fn fanout_targets(&self) -> Vec<(ClusterId, Option<LinkId>)> {
        self.clusters
            .iter()
            .map(|(id, entry)| (id.clone(), entry.link))
            .collect()
    }

    /// The connected clusters and their links.
    pub fn connected_links(&self) -> impl Iterator<Item = (&ClusterId, LinkId)> {
        self.clusters
            .iter()
            .filter_map(|(id, entry)| entry.link.map(|link| (id, link)))
    }

    /// `cluster`'s held snapshot, for the driver to persist.
    pub fn snapshot(&self, cluster: &ClusterId) -> Option<&HeldSnapshot> {
        self.clusters.get(cluster)?.snapshot.as_ref()
    }

    /// The next event for the driver to report, oldest first.
    pub fn poll_event(&mut self) -> Option<RegionEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    //! The region's rules, driven input by input with plain `#[test]`s: no actix, no runtime,
    //! no network. Time is whatever `now_ms` each input is given.

    use super::*;
    use osmesh_core::osinfo::ReleaseInfo;
    use osmesh_core::Purpose;

    pub(super) fn id(name: &str) -> ClusterId {
        ClusterId::new(name)
    }

    /// Ubuntu with one release, and one amd64 install image of it.
    pub(super) fn report(release: &str) -> ClusterReport {
        let releases = vec![ReleaseInfo {
            name: release.into(),
            title: format!("Ubuntu {release}"),
            requires_license_key: false,
            can_commission: true,
            end_of_life: false,
        }];
        ClusterReport {
            osystems: vec![OsystemInfo {
                name: "ubuntu".into(),
                title: "Ubuntu".into(),
                releases,
                default_release: Some(release.into()),
                default_commissioning_release: Some(release.into()),
            }]
            .into(),
            images: vec![BootImage {
                osystem: "ubuntu".into(),
                arch: "amd64".into(),
                subarch: "generic".into(),
                release: release.into(),
                label: "stable".into(),
                purposes: [Purpose::Install].into_iter().collect(),
            }]
            .into(),
        }
    }

    fn register(name: &str) -> Register {
        Register {
            cluster: id(name),
            name: name.into(),
            capabilities: Vec::new(),
        }
    }

    /// Authenticates and registers `name` now; its link.
    pub(super) fn connect(state: &mut RegionState, name: &str, now_ms: i64) -> LinkId {
        let link = state
            .handle_authenticated(id(name))
            .expect("a free link slot");
        state
            .check_register(link, &register(name), |_| true)
            .expect("the register is valid");
        state.handle_register(link, name.into(), now_ms);
        link
    }

    fn cached_part(state: &mut RegionState, name: &str, now_ms: i64) -> ClusterPart {
        let answer = state.cached_answer(now_ms);
        let part = answer.clusters.iter().find(|p| p.cluster == id(name));
        part.cloned().expect("the cluster has a part")
    }

    pub(super) fn rebuilds(state: &mut RegionState) -> usize {
        std::iter::from_fn(|| state.poll_event()).count()
    }

    const TIMING: FanoutTiming = FanoutTiming {
        deadline_ms: 2000,
        elapsed_ms: 5,
    };

    #[test]
    fn no_answer_reason_names_each_error_kind() {
        let cases = [
            (ErrorKind::Timeout, Some(NoAnswerReason::Timeout)),
            // A call cut because its link closed: the cluster is not connected.
            (ErrorKind::Unavailable, Some(NoAnswerReason::NotConnected)),
            (ErrorKind::Internal, None),
            (ErrorKind::UnknownMethod, None),
        ];
        for (kind, expected) in cases {
            let err = RpcError::new(kind, "boom");
            let expected = expected.unwrap_or(NoAnswerReason::Error(err.to_string()));
            assert_eq!(no_answer_reason(err), expected, "{kind:?}");
        }
    }

    #[test]
    fn a_cluster_answers_in_the_cached_view_only_while_linked_with_a_report() {
        let mut state = RegionState::default();
        let link = connect(&mut state, "c1", 1_000);
        let part = cached_part(&mut state, "c1", 1_000);
        assert!(
            matches!(part.no_answer, Some(NoAnswerReason::Error(_))),
            "no report yet"
        );
        assert_eq!(part.age_ms, None);

        state.handle_report(&id("c1"), report("jammy"), 1_000);
        let answer = state.cached_answer(1_500);
        assert!(answer.view.answered.contains(&id("c1")));
        assert_eq!(answer.clusters[0].no_answer, None);
        assert_eq!(answer.source, ReadPath::Cached);

        assert!(matches!(
            state.handle_link_closed(link, 2_000),
            LinkClosedOutcome::Disconnected { .. }
        ));
        let answer = state.cached_answer(2_500);
        assert!(!answer.view.answered.contains(&id("c1")));
        assert_eq!(
            answer.view.not_answered.get(&id("c1")),
            Some(&NoAnswerReason::NotConnected)
        );
        let release = &answer.view.osystems[0].releases[0];
        assert!(
            release.available.is_empty(),
            "never available once disconnected"
        );
        assert!(release.last_known_by.contains(&id("c1")), "but last known");
        assert!(answer.view.osystems[0].supported_by.is_empty());
    }

    #[test]
    fn a_disconnected_part_says_since_when_and_ages_from_its_last_report() {
        let mut state = RegionState::default();
        let link = connect(&mut state, "c1", 1_000);
        state.handle_report(&id("c1"), report("jammy"), 1_200);
        let part = cached_part(&mut state, "c1", 1_700);
        assert_eq!((part.connected, part.disconnected_since_ms), (true, None));
        assert_eq!(part.age_ms, Some(500), "cached: aged from its report");

        state.handle_link_closed(link, 3_000);
        let part = cached_part(&mut state, "c1", 4_000);
        assert!(!part.connected);
        assert_eq!(part.disconnected_since_ms, Some(3_000));
        assert_eq!(
            part.age_ms,
            Some(2_800),
            "last known: still aged from its report"
        );
        assert_eq!(part.no_answer, Some(NoAnswerReason::NotConnected));
    }

    #[test]
    fn a_restored_cluster_is_disconnected_since_it_was_last_heard_from() {
        let known = |last_seen_ms, received_at_ms| KnownCluster {
            id: id("c1"),
            name: "one".into(),
            last_seen_ms,
            snapshot: Some(HeldSnapshot {
                osystems: report("jammy").osystems,
                images: report("jammy").images,
                received_at_ms,
            }),
        };
        for (last_seen, received, heard) in [(100, 200, 200), (300, 200, 300)] {
            let mut state = RegionState::restore([known(last_seen, received)]);
            let status = &state.cluster_statuses(1_000)[0];
            assert_eq!(status.disconnected_since_ms, Some(heard));
            assert_eq!(status.last_seen_ms, heard);
            assert_eq!(status.snapshot_age_ms, Some(1_000 - received));
            let answer = state.cached_answer(1_000);
            assert_eq!(
                answer.view.not_answered.get(&id("c1")),
                Some(&NoAnswerReason::NotConnected)
            );
        }
    }

    #[test]
    fn the_kept_merge_is_dropped_only_when_a_snapshot_or_a_link_changes() {
        let mut state = RegionState::default();
        let link = connect(&mut state, "c1", 0);
        state.handle_report(&id("c1"), report("jammy"), 10);
        state.cached_answer(10);
        assert_eq!(rebuilds(&mut state), 1);

        let same = state.handle_report(&id("c1"), report("jammy"), 20);
        assert_eq!(same, SnapshotChange::Unchanged);
        state.cached_answer(20);
        assert_eq!(
            rebuilds(&mut state),
            0,
            "same content: the kept merge serves"
        );
        assert_eq!(
            cached_part(&mut state, "c1", 25).age_ms,
            Some(5),
            "its time moved"
        );

        let changed = state.handle_report(&id("c1"), report("noble"), 30);
        assert_eq!(changed, SnapshotChange::Changed);
        let view = state.cached_answer(30).view;
        assert_eq!(rebuilds(&mut state), 1);
        assert_eq!(view.osystems[0].releases[0].name, "noble");

        let mut relabelled = report("noble");
        Arc::make_mut(&mut relabelled.images)[0].label = "candidate".into();
        let images_only = state.handle_report(&id("c1"), relabelled, 35);
        assert_eq!(
            images_only,
            SnapshotChange::Changed,
            "the images alone changed"
        );
        state.cached_answer(35);
        assert_eq!(rebuilds(&mut state), 1);

        let unknown = state.handle_report(&id("nobody"), report("noble"), 30);
        assert_eq!(unknown, SnapshotChange::UnknownCluster);
        state.handle_link_closed(link, 40);
        state.cached_answer(40);
        assert_eq!(rebuilds(&mut state), 1, "a link change drops it too");
    }

    #[test]
    fn fanout_answers_are_held_and_only_changed_ones_persisted() {
        let mut state = RegionState::default();
        connect(&mut state, "c1", 0);
        connect(&mut state, "c2", 0);
        state.handle_report(&id("c1"), report("jammy"), 10);
        let answers = vec![
            (id("c1"), ClusterAnswer::Answered(report("jammy"))),
            (id("c2"), ClusterAnswer::Answered(report("noble"))),
        ];
        assert_eq!(state.handle_answers(&answers, 50), vec![id("c2")]);
        assert_eq!(
            state.snapshot(&id("c1")).map(|s| s.received_at_ms),
            Some(50)
        );
        let c2 = state.snapshot(&id("c2")).expect("held");
        assert_eq!(c2.osystems, report("noble").osystems);
        // c1's answer equals its pushed snapshot but is another copy: the answer's is kept,
        // so the lists are in memory once and the next compare is by pointer.
        let ClusterAnswer::Answered(answered) = &answers[0].1 else {
            unreachable!()
        };
        let c1 = state.snapshot(&id("c1")).expect("held");
        assert!(Arc::ptr_eq(&c1.osystems, &answered.osystems));
        assert!(Arc::ptr_eq(&c1.images, &answered.images));
        let silent = vec![(id("c1"), ClusterAnswer::NoAnswer(NoAnswerReason::Timeout))];
        assert!(state.handle_answers(&silent, 60).is_empty());
        assert_eq!(
            state.snapshot(&id("c1")).map(|s| s.received_at_ms),
            Some(50),
            "a silent cluster's snapshot is not refreshed"
        );
    }

    #[test]
    fn a_live_answer_reuses_the_kept_merge_only_when_all_answered_and_are_linked() {
        let mut state = RegionState::default();
        connect(&mut state, "c1", 0);
        let c2 = connect(&mut state, "c2", 0);
        for name in ["c1", "c2"] {
            state.handle_report(&id(name), report("jammy"), 10);
        }
        let kept = state.cached_answer(10).view;
        let all = || {
            vec![
                (id("c1"), ClusterAnswer::Answered(report("jammy"))),
                (id("c2"), ClusterAnswer::Answered(report("jammy"))),
            ]
        };
        let live = state.live_answer(all(), 20, TIMING);
        assert!(Arc::ptr_eq(&live.view, &kept), "everyone answered: reused");
        assert_eq!(live.source, ReadPath::Live);
        assert_eq!((live.deadline_ms, live.elapsed_ms), (Some(2000), Some(5)));

        let mut one_silent = all();
        one_silent[1].1 = ClusterAnswer::NoAnswer(NoAnswerReason::Timeout);
        let live = state.live_answer(one_silent, 20, TIMING);
        assert!(!Arc::ptr_eq(&live.view, &kept), "one silent: merged afresh");
        assert!(!live.view.answered.contains(&id("c2")));

        // c2 answered, then lost its link before the answer was built.
        state.handle_link_closed(c2, 15);
        let live = state.live_answer(all(), 20, TIMING);
        assert!(
            live.view.answered.contains(&id("c2")),
            "it answered this fan-out"
        );
        let part = live.clusters.iter().find(|p| p.cluster == id("c2"));
        assert_eq!(part.and_then(|p| p.no_answer.clone()), None);
        assert!(state
            .cached_answer(20)
            .view
            .not_answered
            .contains_key(&id("c2")));
    }

    #[test]
    fn a_live_part_is_fresh_when_answered_and_gives_its_reason_when_not() {
        let mut state = RegionState::default();
        connect(&mut state, "c1", 0);
        connect(&mut state, "c2", 0);
        state.handle_report(&id("c2"), report("jammy"), 10);
        let answers = vec![
            (id("c1"), ClusterAnswer::Answered(report("jammy"))),
            (id("c2"), ClusterAnswer::NoAnswer(NoAnswerReason::Timeout)),
            (
                id("gone"),
                ClusterAnswer::NoAnswer(NoAnswerReason::NotConnected),
            ),
        ];
        let live = state.live_answer(answers, 1_000, TIMING);
        let parts: Vec<_> = live
            .clusters
            .iter()
            .map(|p| (p.cluster.as_str(), p.age_ms, p.no_answer.clone()))
            .collect();
        assert_eq!(
            parts,
            vec![
                ("c1", Some(0), None),
                ("c2", Some(990), Some(NoAnswerReason::Timeout)),
            ],
            "an unknown cluster has no part"
        );
        // Nor does the view name it (one forgotten during the fan-out: removed meanwhile).
        assert!(!live.view.not_answered.contains_key(&id("gone")));
        assert!(!live.view.answered.contains(&id("gone")));
    }

    #[test]
    fn a_cluster_adopted_during_a_fan_out_is_not_named_by_its_answer() {
        let mut state = RegionState::default();
        connect(&mut state, "c1", 0);
        state.handle_report(&id("c1"), report("jammy"), 10);
        let _ = state.cached_answer(10);
        // c2 was learned from another region after the fan-out asked c1 alone.
        state.adopt(KnownCluster {
            id: id("c2"),
            name: "c2".into(),
            last_seen_ms: 5,
            snapshot: None,
        });
        let answers = vec![(id("c1"), ClusterAnswer::Answered(report("jammy")))];
        let live = state.live_answer(answers, 20, TIMING);
        let parts: Vec<_> = live.clusters.iter().map(|p| p.cluster.as_str()).collect();
        assert_eq!(parts, ["c1"]);
        assert!(
            !live.view.not_answered.contains_key(&id("c2")),
            "{:?}",
            live.view.not_answered
        );
        assert!(live.view.answered.contains(&id("c1")));
    }

    #[test]
    fn a_second_live_link_for_an_identity_waits_until_the_first_is_dead() {
        let mut state = RegionState::default();
        let first = connect(&mut state, "c1", 0);
        let second = state.handle_authenticated(id("c1")).expect("a slot");
        assert_eq!(
            state.check_register(second, &register("c1"), |link| link == first),
            Err(RegisterRefusal::Duplicate {
                cluster: id("c1"),
                live_link: first
            })
        );
        assert_eq!(
            state.check_register(second, &register("c1"), |_| false),
            Ok(())
        );
        let taken = state.handle_register(second, "c1".into(), 10);
        let replaced = taken.and_then(|r| r.replaced);
        assert_eq!(replaced, Some(first), "the dead link is replaced");
        assert_eq!(
            state.handle_link_closed(first, 20),
            LinkClosedOutcome::Ignored
        );
        assert!(
            cached_part(&mut state, "c1", 20).connected,
            "the new link stands"
        );
    }

    #[test]
    fn a_register_must_name_the_identity_its_link_proved() {
        let mut state = RegionState::default();
        let link = state.handle_authenticated(id("c1")).expect("a slot");
        let refusal = state.check_register(link, &register("c2"), |_| false);
        assert!(
            matches!(refusal, Err(RegisterRefusal::BadClaim(_))),
            "{refusal:?}"
        );
        let anonymous = state.handle_authenticated(id("")).expect("a slot");
        let refusal = state.check_register(anonymous, &register(""), |_| false);
        assert!(
            matches!(refusal, Err(RegisterRefusal::BadClaim(_))),
            "{refusal:?}"
        );
        assert_eq!(
            state.check_register(99, &register("c1"), |_| false),
            Err(RegisterRefusal::NotUnregistered)
        );
    }

    #[test]
    fn an_unregistered_link_is_in_no_answer_and_is_dropped_at_its_deadline() {
        let mut state = RegionState::default();
        let link = state.handle_authenticated(id("c9")).expect("a slot");
        assert_eq!(state.link(link), Some(&LinkRole::Unregistered(id("c9"))));
        assert!(state.cached_answer(0).clusters.is_empty());
        assert!(state.cluster_statuses(0).is_empty());
        assert!(state.fanout_targets().is_empty());
        assert_eq!(state.handle_register_timeout(link), Some(id("c9")));
        assert_eq!(state.handle_register_timeout(link), None);
        assert_eq!(state.link(link), None);

        let registered = connect(&mut state, "c1", 0);
        assert_eq!(
            state.handle_register_timeout(registered),
            None,
            "registered in time"
        );
        assert_eq!(
            state.link(registered),
            Some(&LinkRole::Registered(id("c1")))
        );
    }

    #[test]
    fn links_are_capped_but_a_cluster_may_replace_its_own() {
        let mut state = RegionState::default();
        connect(&mut state, "c1", 0);
        for i in 1..MAX_LINKS {
            state
                .handle_authenticated(id(&format!("x{i}")))
                .expect("under the cap");
        }
        assert_eq!(state.handle_authenticated(id("fresh")), Err(LinksFull));
        assert!(
            state.handle_authenticated(id("c1")).is_ok(),
            "c1 holds a link"
        );
    }

    #[test]
    fn a_closed_unregistered_link_frees_its_slot_and_changes_no_cluster() {
        let mut state = RegionState::default();
        let link = state.handle_authenticated(id("c1")).expect("a slot");
        assert_eq!(
            state.handle_link_closed(link, 5),
            LinkClosedOutcome::Ignored
        );
        assert_eq!(state.link(link), None);
        assert!(state.cluster_statuses(5).is_empty());
    }

    /// The module's promise: no runtime, no store, no network handle, no logging.
    #[test]
    fn state_machine_imports_no_runtime() {
        let source = include_str!("state.rs");
        let forbidden = [
            "actix", "tokio", "Peer", "store", "tracing", "metrics", "Clock",
        ];
        for line in source.lines().filter(|l| l.starts_with("use ")) {
            for word in forbidden {
                assert!(!line.contains(word), "state.rs imports {word}: {line}");
            }
        }
    }
}

#[cfg(test)]
#[path = "state_rules_tests.rs"]
mod rules_tests;
