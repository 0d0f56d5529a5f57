//! The periodic step of the world: every invariant, each simulated second (or as the
//! scenario sets), checking only what changed since the last step.
//!
//! "What changed" is decided from inputs, never guessed: the region is asked for its answers
//! every step, as before, and an invariant is skipped only when every input it reads is the
//! same as at the last pass, so a skipped check would have passed again:
//!
//! - the durability checks read the store, what the service acknowledged, which clusters
//!   registered and which releases each cluster knew; the store's part is SQLite's
//!   `PRAGMA data_version` on the checker's own connection, which moves with every commit
//!   of another connection;
//! - a cached answer's per-cluster verdicts are kept while the region keeps the same view
//!   (see [`invariants::HeldCache`]);
//! - what the network carried reaches the oracle as it happened, once (no copy per step);
//! - a cached answer's invariants, and the check that each region lists every cluster it
//!   must, are skipped when the answer (or listing) is the one that last passed, with every
//!   part received at the same time, the oracle unchanged since (its
//!   [`Oracle::generation`](crate::oracle::Oracle::generation)), and every registration and
//!   identity event old enough that no rule's time window still moves (see [`settle_ms`]).

use libsqlite3_sys as ffi;
use osmesh_actors::region::service::ServiceError;
use osmesh_actors::region::{ClusterPart, OsystemsAnswer, ReadPath};
use osmesh_core::mesh::NoAnswerReason;
use osmesh_core::{ClusterId, MeshView};
use osmesh_store::Store;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::rc::Rc;
use std::sync::Arc;

use super::{FailureKind, State};
use crate::invariants::{self, Acked, DurabilityCheck, HeldCache};
use crate::trace::Source;

/// What the checker keeps between steps.
pub(super) struct Checker {
    /// The checker's own handle on the region's database (the region's dies with it).
    store: Store,
    /// Tells whether the database changed since the last step.
    watch: StoreWatch,
    durability: Vec<Box<dyn DurabilityCheck>>,
    /// The inputs of the durability checks at their last pass.
    passed: Option<DurabilityInputs>,
    /// Per region, the cached answers' per-cluster verdicts, kept while its view is the same.
    held: BTreeMap<String, HeldCache>,
    /// Per region, the cached answer whose invariants last passed.
    passed_answers: BTreeMap<String, PassedAnswer>,
    /// Per region, the cluster listing that last named every cluster it must.
    passed_listings: BTreeMap<String, PassedListing>,
}

/// How long after a registration or an identity event the rules that read its time can
/// still change their verdict as time passes: one region compares those times with the
/// answer's time directly; with several, a cluster must be named [`ADOPTION_BOUND_MS`] after
/// any region saw it register, and a revocation (removal) counts [`MESH_LAG_MS`] (twice that)
/// after it was done.
///
/// [`ADOPTION_BOUND_MS`]: crate::oracle::ADOPTION_BOUND_MS
/// [`MESH_LAG_MS`]: super::regions::MESH_LAG_MS
fn settle_ms(several_regions: bool) -> u64 {
    if several_regions {
        crate::oracle::ADOPTION_BOUND_MS.max(2 * super::regions::MESH_LAG_MS)
    } else {
        0
    }
}

/// A cached answer whose invariants passed when it was asked for at `issued_ms`, with the
/// oracle at `generation`. The same answer later (the same view, each part received at the
/// same time) passes again while the oracle is unchanged and settled (see [`settle_ms`]):
/// each invariant reads only the view, the parts with their reception times (`now − age`),
/// the oracle, and the answer's time through rules that no longer move once settled.
struct PassedAnswer {
    /// Compared by address; held, so the address is not reused by another view.
    view: Arc<MeshView>,
    parts: Vec<PassedPart>,
    generation: u64,
    issued_ms: u64,
}

/// A part of a cached answer, with its reception time in place of its age.
struct PassedPart {
    cluster: ClusterId,
    name: String,
    connected: bool,
    disconnected_since_ms: Option<i64>,
    received_ms: Option<i128>,
    no_answer: Option<NoAnswerReason>,
}

impl PassedPart {
    fn of(part: &ClusterPart, now_ms: u64) -> PassedPart {
        PassedPart {
            cluster: part.cluster.clone(),
            name: part.name.clone(),
            connected: part.connected,
            disconnected_since_ms: part.disconnected_since_ms,
            received_ms: received(part, now_ms),
            no_answer: part.no_answer.clone(),
        }
    }

    /// Whether `part`, in an answer at `now_ms`, is this part.
    fn is(&self, part: &ClusterPart, now_ms: u64) -> bool {
        self.cluster == part.cluster
            && self.connected == part.connected
            && self.disconnected_since_ms == part.disconnected_since_ms
            && self.received_ms == received(part, now_ms)
            && self.no_answer == part.no_answer
            && self.name == part.name
    }
}

/// When the region received `part`'s report, in virtual ms.
fn received(part: &ClusterPart, now_ms: u64) -> Option<i128> {
    part.age_ms.map(|age| i128::from(now_ms) - i128::from(age))
}

impl PassedAnswer {
    fn new(answer: &OsystemsAnswer, now_ms: u64, issued_ms: u64, generation: u64) -> Self {
        PassedAnswer {
            view: answer.view.clone(),
            parts: answer
                .clusters
                .iter()
                .map(|p| PassedPart::of(p, now_ms))
                .collect(),
            generation,
            issued_ms,
        }
    }

    /// Whether `answer`, at `now_ms` with the oracle at `generation`, is this answer again.
    fn is(&self, answer: &OsystemsAnswer, now_ms: u64, generation: u64) -> bool {
        self.generation == generation
            && answer.source == ReadPath::Cached
            && Arc::ptr_eq(&self.view, &answer.view)
            && self.parts.len() == answer.clusters.len()
            && self
                .parts
                .iter()
                .zip(&answer.clusters)
                .all(|(passed, part)| passed.is(part, now_ms))
    }
}

/// A region's cluster listing that named every cluster it had to at `at_ms`, with the
/// oracle at `generation`: the same ids name them again while the oracle is unchanged and
/// settled.
struct PassedListing {
    ids: Vec<ClusterId>,
    generation: u64,
    at_ms: u64,
}

/// Everything the durability checks read, at their last pass.
struct DurabilityInputs {
    store_version: i64,
    acked: Acked,
    registered: usize,
    /// Counts changes to the releases the clusters know.
    knowledge: u64,
}

impl Checker {
    /// The checker's own handle on the region's database.
    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    pub(super) fn open(db_url: &str) -> anyhow::Result<Checker> {
        Ok(Checker {
            store: super::open_store(db_url)?,
            watch: StoreWatch::open(db_url)?,
            durability: invariants::durability_checks(),
            passed: None,
            held: BTreeMap::new(),
            passed_answers: BTreeMap::new(),
            passed_listings: BTreeMap::new(),
        })
    }
}

/// `PRAGMA data_version` on a connection of its own (it only reads): a number that changes
/// whenever another connection commits to the database. The statement is prepared once and
/// stepped each time (through SQLite's C interface: Diesel prepares a pragma anew on every
/// call, which cost more than the rest of a step's checks).
struct StoreWatch {
    db: *mut ffi::sqlite3,
    statement: *mut ffi::sqlite3_stmt,
}

impl StoreWatch {
    fn open(path: &str) -> anyhow::Result<StoreWatch> {
        let path = CString::new(path)?;
        let sql = c"PRAGMA data_version";
        let mut watch = StoreWatch {
            db: std::ptr::null_mut(),
            statement: std::ptr::null_mut(),
        };
        // SAFETY: `path` and `sql` are NUL-terminated and outlive the calls; the handles are
        // written by SQLite and owned by `watch`, whose `Drop` releases them (also when a
        // call here fails half-way).
        let opened = unsafe {
            ffi::sqlite3_open_v2(
                path.as_ptr(),
                &mut watch.db,
                ffi::SQLITE_OPEN_READWRITE,
                std::ptr::null(),
            )
        };
        anyhow::ensure!(opened == ffi::SQLITE_OK, "cannot open {path:?} ({opened})");
        // SAFETY: `watch.db` is an open connection (checked above).
        let prepared = unsafe {
            ffi::sqlite3_prepare_v2(
                watch.db,
                sql.as_ptr(),
                -1,
                &mut watch.statement,
                std::ptr::null_mut(),
            )
        };
        anyhow::ensure!(
            prepared == ffi::SQLITE_OK,
            "cannot prepare {sql:?} ({prepared})"
        );
        Ok(watch)
    }

    /// The database's version as this connection sees it; `None` if it cannot be read
    /// (the checks then run).
    fn version(&mut self) -> Option<i64> {
        // SAFETY: `statement` was prepared on `db` in `open` and is finalized only in `drop`;
        // the connection is used by this thread alone.
        unsafe {
            let row = ffi::sqlite3_step(self.statement) == ffi::SQLITE_ROW;
            let version = row.then(|| ffi::sqlite3_column_int64(self.statement, 0));
            ffi::sqlite3_reset(self.statement);
            version
        }
    }
}

impl Drop for StoreWatch {
    fn drop(&mut self) {
        // SAFETY: both handles come from `open` (or are null, which SQLite accepts) and are
        // released once, here.
        unsafe {
            ffi::sqlite3_finalize(self.statement);
            ffi::sqlite3_close(self.db);
        }
    }
}

/// A periodic step: each region up is alive and lists every cluster it must name (any
/// region acknowledged as registered); each one's cached answer's invariants; durability
/// (and, after a region crashed, that the others serve every acknowledged write); liveness.
pub(super) async fn check(state: &Rc<RefCell<State>>) {
    state.borrow_mut().check_crashed_are_gone();
    let regions = state.borrow().up_regions();
    if regions.is_empty() {
        state.borrow_mut().check_durability();
        return;
    }
    let now = state.borrow().now_ms();
    for (name, service) in &regions {
        match service.clusters().await {
            Ok(statuses) => {
                let mut s = state.borrow_mut();
                s.observe();
                let ids = statuses.iter().map(|c| &c.id);
                if s.listing_passed(name, ids.clone(), now) {
                    continue;
                }
                let known: BTreeSet<&str> = statuses.iter().map(|c| c.id.as_str()).collect();
                let lost = s
                    .must_name(name, now)
                    .find(|id| !known.contains(id.as_str()));
                if let Some(message) = lost.map(|c| {
                    format!(
                        "the {} does not list registered cluster {c}",
                        s.region_label(name)
                    )
                }) {
                    s.fail(FailureKind::Safety, message);
                } else {
                    let passed = PassedListing {
                        ids: ids.cloned().collect(),
                        generation: s.oracle.generation(),
                        at_ms: now,
                    };
                    s.checker.passed_listings.insert(name.clone(), passed);
                }
            }
            Err(err) => region_died(state, &err),
        }
    }
    // After the oracle is current: a key's validator must have registered.
    state.borrow_mut().check_durability();
    super::regions::check_served_after_crash(state).await;
    let mut verdict = Ok(());
    for (name, answer) in super::regions::cached_answers(&regions).await {
        match answer {
            Ok(answer) => {
                let mut s = state.borrow_mut();
                s.check_answer(&answer, Some(&name), now);
                if verdict.is_ok() && s.awaits_convergence() {
                    verdict = s.converged(&answer);
                }
            }
            Err(err) => region_died(state, &err),
        }
    }
    let mut s = state.borrow_mut();
    if s.regions.len() > regions.len() && verdict.is_ok() {
        verdict = Err("a region is down".into());
    }
    s.track_convergence(verdict);
}

/// The region the world believes up refused with `err`: its actor is gone, a failure.
pub(crate) fn region_died(state: &Rc<RefCell<State>>, err: &ServiceError) {
    state.borrow_mut().fail(
        FailureKind::Safety,
        format!(
            "the region actor is gone while the region is up: {} ({})",
            err.code, err.message
        ),
    );
}

/// The trace line after a region restart's durability check passed.
pub(super) fn durability_summary(acked: &Acked) -> String {
    format!(
        "durability after region restart: {} license key(s), {} preseed version(s), {} allocation(s) acknowledged, all kept",
        acked.license_keys.len(),
        acked.preseed_versions.len(),
        acked.allocations.len()
    )
}

impl State {
    /// Every actor crashed before now has stopped (`Shutdown` was obeyed).
    fn check_crashed_are_gone(&mut self) {
        let now = self.now_ms();
        let still = self
            .crashed
            .iter()
            .find(|(at, _, actor)| *at < now && actor.connected())
            .map(|(at, name, _)| (*at, name.clone()));
        if let Some((at, name)) = still {
            self.fail(
                FailureKind::Safety,
                format!(
                    "{name} was crashed at {at} ms, yet its actor still runs (Shutdown ignored)"
                ),
            );
        }
        self.crashed.retain(|(_, _, actor)| actor.connected());
    }

    /// Brings the oracle's view of the network up to date.
    pub(crate) fn observe(&mut self) {
        let fresh = self.net.take_observed();
        self.oracle.observe(fresh);
    }

    pub(super) fn converged(&mut self, answer: &OsystemsAnswer) -> Result<(), String> {
        if self.clusters.values().any(|c| c.actor.is_none()) {
            return Err("a cluster is down".into());
        }
        self.observe();
        invariants::converged(answer, &self.oracle)
    }

    /// The clusters an answer of `region` asked for at `issued_ms` must name, owned.
    fn must_name(&self, region: &str, issued_ms: u64) -> std::vec::IntoIter<String> {
        let names: Vec<String> = if self.regions.len() > 1 {
            self.oracle
                .must_name(region, issued_ms)
                .map(str::to_owned)
                .collect()
        } else {
            self.oracle
                .registered_before(issued_ms)
                .map(str::to_owned)
                .collect()
        };
        names.into_iter()
    }

    /// Whether `ids`, listed by `region` at `now_ms`, is the listing that last passed, and
    /// nothing the check reads changed since (see [`PassedListing`]).
    fn listing_passed<'a>(
        &self,
        region: &str,
        ids: impl Iterator<Item = &'a ClusterId>,
        now_ms: u64,
    ) -> bool {
        let Some(passed) = self.checker.passed_listings.get(region) else {
            return false;
        };
        passed.generation == self.oracle.generation()
            && self
                .oracle
                .settled_at(passed.at_ms, settle_ms(self.regions.len() > 1))
            && passed.at_ms <= now_ms
            && ids.eq(passed.ids.iter())
    }

    /// How a failure names a region: `region` alone, else `region r2`.
    fn region_label(&self, name: &str) -> String {
        if self.regions.len() > 1 {
            format!("region {name}")
        } else {
            "region".to_owned()
        }
    }

    /// The invariants every answer must satisfy; `region` answered it (the first when
    /// `None`), `issued_ms` is when it was asked for.
    pub(crate) fn check_answer(
        &mut self,
        answer: &OsystemsAnswer,
        region: Option<&str>,
        issued_ms: u64,
    ) {
        self.observe();
        let now = self.now_ms();
        let addr = self.region_addr(region);
        let several = self.regions.len() > 1;
        let generation = self.oracle.generation();
        let again = self
            .checker
            .passed_answers
            .get(&addr)
            .is_some_and(|passed| {
                passed.is(answer, now, generation)
                    && passed.issued_ms <= issued_ms
                    && self.oracle.settled_at(passed.issued_ms, settle_ms(several))
            });
        if again {
            return;
        }
        let oracle = &self.oracle;
        let held = self.checker.held.entry(addr.clone()).or_default();
        let named = if several {
            invariants::names_every_cluster_from(answer, oracle, &addr, issued_ms)
        } else {
            invariants::names_every_cluster(answer, oracle, issued_ms)
        };
        let result = named
            .and_then(|()| invariants::parts_agree_with_view(answer))
            .and_then(|()| {
                invariants::live_answers_are_live_at(answer, oracle, &addr, issued_ms, now)
            })
            .and_then(|()| {
                let propagation = if several {
                    super::regions::MESH_LAG_MS
                } else {
                    0
                };
                invariants::credentials_respected(answer, oracle, issued_ms, now, propagation)
            })
            .and_then(|()| {
                invariants::available_as_held_since(answer, oracle, issued_ms, now, held)
            })
            .and_then(|()| invariants::disconnected_never_answered(answer));
        match result {
            Err(message) => self.fail(FailureKind::Safety, message),
            Ok(()) if answer.source == ReadPath::Cached => {
                let passed = PassedAnswer::new(answer, now, issued_ms, generation);
                self.checker.passed_answers.insert(addr, passed);
            }
            Ok(()) => {}
        }
    }

    /// Nothing the store acknowledged is lost, and every stored key names a validator that
    /// registered and knew the release. Skipped when none of its inputs changed since it
    /// last passed.
    pub(super) fn check_durability(&mut self) {
        self.observe();
        let version = self.checker.watch.version();
        let registered = self.oracle.seen.registered.len();
        // Compared in place: what was acknowledged is copied only when the checks pass.
        let unchanged = self.checker.passed.as_ref().is_some_and(|passed| {
            Some(passed.store_version) == version
                && passed.registered == registered
                && passed.knowledge == self.knowledge
                && passed.acked == self.acked
        });
        if unchanged {
            return;
        }
        if let Err(message) = self.run_durability_checks() {
            self.fail(FailureKind::Safety, message);
            return;
        }
        self.checker.passed = version.map(|store_version| DurabilityInputs {
            store_version,
            acked: self.acked.clone(),
            registered,
            knowledge: self.knowledge,
        });
    }

    fn run_durability_checks(&mut self) -> Result<(), String> {
        let store = &self.checker.store;
        for check in &mut self.checker.durability {
            check
                .check(store, &self.acked)
                .map_err(|message| format!("{}: {message}", check.name()))?;
        }
        let knew: BTreeMap<String, BTreeSet<(String, String)>> = self
            .clusters
            .iter()
            .map(|(id, c)| (id.clone(), c.knew.clone()))
            .collect();
        invariants::keys_validated_by_knowers(store, &self.oracle.seen.registered, &knew)
    }

    /// Whether liveness mode still waits for the view to converge (after the last fault).
    fn awaits_convergence(&self) -> bool {
        self.convergence
            .is_some_and(|c| c.converged_at_ms.is_none() && self.now_ms() >= c.healed_at_ms)
    }

    /// `verdict`: whether every region's cached view converged at this step.
    pub(super) fn track_convergence(&mut self, verdict: Result<(), String>) {
        let Some(mut c) = self.convergence else {
            return;
        };
        let now = self.now_ms();
        if c.converged_at_ms.is_some() || now < c.healed_at_ms {
            return;
        }
        match verdict {
            Ok(()) => {
                c.converged_at_ms = Some(now);
                self.convergence = Some(c);
                let (after, bound) = (now - c.healed_at_ms, c.bound_ms);
                let line = format!("converged {after} ms after the last fault (bound {bound} ms)");
                self.log(Source::Check, line);
            }
            Err(why) if now > c.healed_at_ms + c.bound_ms => self.fail(
                FailureKind::Liveness,
                format!(
                    "not converged {} ms after the last fault (bound {} ms): {why}",
                    now - c.healed_at_ms,
                    c.bound_ms
                ),
            ),
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_core::ClusterId;

    fn part(age_ms: Option<i64>) -> ClusterPart {
        ClusterPart {
            cluster: ClusterId::new("c1"),
            name: "c1".into(),
            connected: true,
            disconnected_since_ms: None,
            age_ms,
            no_answer: None,
        }
    }

    /// A cached part is the same part later only while it was received at the same time:
    /// a new report (same content, new reception) is checked again.
    #[test]
    fn a_part_is_the_same_only_while_its_reception_time_is() {
        let passed = PassedPart::of(&part(Some(400)), 1_000);
        assert!(
            passed.is(&part(Some(1_400)), 2_000),
            "older by the time passed"
        );
        assert!(!passed.is(&part(Some(400)), 2_000), "received again since");
        assert!(!passed.is(&part(None), 2_000), "its snapshot is gone");
        let mut gone = part(Some(1_400));
        gone.connected = false;
        assert!(!passed.is(&gone, 2_000), "disconnected since");
    }

    /// The skip of the durability checks rests on this: the version moves with another
    /// connection's commit, and only then.
    #[test]
    fn the_store_version_moves_with_each_commit_of_another_connection() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("region.sqlite3");
        let path = path.to_str().expect("a UTF-8 path");
        let store = super::super::open_store(path).expect("the store opens");
        let mut watch = StoreWatch::open(path).expect("the watch opens");
        let first = watch.version().expect("a version");
        assert_eq!(watch.version(), Some(first), "nothing was committed");
        let c1 = ClusterId::new("c1");
        store.upsert_cluster_seen(&c1, "c1", 1).expect("written");
        let second = watch.version().expect("a version");
        assert_ne!(second, first, "a commit moves the version");
        store.list_clusters().expect("read");
        assert_eq!(watch.version(), Some(second), "a read does not");
        store.upsert_cluster_seen(&c1, "c1", 2).expect("written");
        assert_ne!(watch.version(), Some(second));
    }
}
