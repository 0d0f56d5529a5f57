//! The simulated world: one actix `System` on a paused current-thread runtime hosting the real
//! region (over a real SQLite store; or several regions sharing it, `world/regions.rs`) and
//! clusters, joined by the simulated network, driven by a scenario's faults and operations,
//! with the invariants checked at every step.

use actix::prelude::*;
use osmesh_actors::cluster::{ClusterActor, ClusterSettings, ImageSource};
use osmesh_actors::Shutdown;
use osmesh_core::os::RegistryConfig;
use osmesh_core::{BootImage, ClusterId};
use osmesh_net::{HandshakeConfig, PeerConfig, Secret};
use osmesh_store::{Store, StoreOptions};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

use crate::invariants::{self, Acked, Enlisted};
use crate::net::SimNetwork;
use crate::oracle::Oracle;
use crate::scenario::{parse_images, Fault, Scenario, Settings, TemplateSpec};
use crate::trace::{SharedTrace, Source, Trace};
use osmesh_net::messages::PreseedTemplate;

mod checks;
mod faults;
mod identity;
pub mod regions;
mod report;

pub(crate) use checks::region_died;
use checks::{check, Checker};
use regions::RegionSlot;
use report::{connected_clusters, final_state};

/// The wall-clock value the region's clock reads at virtual time zero.
pub const SIM_EPOCH_MS: i64 = 1_700_000_000_000;

/// What kind of failure ended a run; each has its own exit code in the binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// An invariant broke.
    Safety,
    /// The system did not converge within the bound after the faults stopped.
    Liveness,
    /// A scenario's expectation was not met.
    Expectation,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub at_ms: u64,
    /// The step (fault, operation or check, counted from 1) at which it was seen.
    pub step: u64,
    pub message: String,
}

/// When the cached view converged after the last fault, against the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Convergence {
    pub healed_at_ms: u64,
    pub converged_at_ms: Option<u64>,
    pub bound_ms: u64,
}

/// Everything a run produced.
pub struct Outcome {
    pub trace: Trace,
    pub final_state: String,
    pub failure: Option<Failure>,
    pub convergence: Option<Convergence>,
    pub virtual_ms: u64,
    pub steps: u64,
}

/// Runs `scenario` with `seed`. `keep_frames` keeps one trace line per frame (counts are
/// always kept).
pub fn run(scenario: &Scenario, seed: u64, keep_frames: bool) -> anyhow::Result<Outcome> {
    let dir = scratch_dir()?;
    let db = dir.path().join("region.sqlite3");
    let db_url = db
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("temporary path is not UTF-8"))?
        .to_owned();
    if let Some(template) = migrated_database() {
        std::fs::write(&db, template)?;
    }
    let scenario = scenario.clone();
    let runner = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime builds")
    });
    runner.block_on(async move {
        let world = World::new(scenario, seed, keep_frames, db_url)?;
        world.drive().await
    })
}

/// The bytes of an empty region database with every migration applied, made once per
/// process: each run starts from a copy instead of migrating a database of its own (most of
/// a short run's start-up). `None` if it cannot be made; each run then migrates its own.
fn migrated_database() -> Option<&'static [u8]> {
    static TEMPLATE: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let dir = scratch_dir().ok()?;
            let db = dir.path().join("template.sqlite3");
            drop(open_store(db.to_str()?).ok()?);
            // With its last connection closed, SQLite has moved the write-ahead log into the
            // file; a log left behind would hold part of the schema.
            let wal = dir.path().join("template.sqlite3-wal");
            if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                return None;
            }
            std::fs::read(&db).ok()
        })
        .as_deref()
}

/// SQLite syncs to tmpfs cost nothing; use it where the machine has one.
fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("osmesh-sim")
            .tempdir_in(shm)
        {
            return Ok(dir);
        }
    }
    tempfile::Builder::new().prefix("osmesh-sim").tempdir()
}

/// A cluster's image set, shared by the world (which changes it) and the actor (which scans it).
#[derive(Clone, Default)]
struct ScriptedImages(Arc<Mutex<Vec<BootImage>>>);

impl ScriptedImages {
    fn set(&self, images: Vec<BootImage>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = images;
    }

    fn get(&self) -> Vec<BootImage> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ImageSource for ScriptedImages {
    fn scan(&mut self) -> Vec<BootImage> {
        self.get()
    }
}

struct SimCluster {
    config: RegistryConfig,
    images: ScriptedImages,
    /// Every (os, release) this cluster's registry ever listed: what it may validate.
    knew: BTreeSet<(String, String)>,
    /// The templates it ships when it connects (changes take effect at its next start).
    templates: Vec<PreseedTemplate>,
    /// When it last crashed: a cluster may say yes to the region and crash before the
    /// region's answer arrives.
    crashed_at_ms: Option<u64>,
    actor: Option<Addr<ClusterActor>>,
}

pub(crate) struct State {
    settings: Settings,
    trace: SharedTrace,
    net: SimNetwork,
    rng: StdRng,
    start: Instant,
    db_url: String,
    /// What the invariant checks keep between steps.
    checker: Checker,
    clusters: BTreeMap<String, SimCluster>,
    /// The regions, in order (`r1`, `r2`, …; one region alone is `region`).
    regions: Vec<RegionSlot>,
    /// Actors the world crashed (told to shut down), and when: each must be gone by the next
    /// check, or the crash never happened.
    crashed: Vec<(u64, String, Recipient<Shutdown>)>,
    /// Regions crashed since the last check (with several): the others must serve every
    /// acknowledged write at the next one.
    served_after_crash: Vec<String>,
    /// The reference model: what each cluster held and when, what the network carried.
    pub(crate) oracle: Oracle,
    /// Nodes the service enlisted, by id, as the world asked for them.
    pub(crate) enlisted: BTreeMap<i64, Enlisted>,
    /// Counts changes to the releases the clusters know (`SimCluster::knew`).
    knowledge: u64,
    /// What the region's service acknowledged: the durability checks hold the store to it.
    pub(crate) acked: Acked,
    /// Each cluster's credential, and the attackers (see `world/identity.rs`).
    identity: identity::Identities,
    failure: Option<Failure>,
    step: u64,
    convergence: Option<Convergence>,
}

struct World {
    scenario: Scenario,
    state: Rc<RefCell<State>>,
}

/// One thing the driver does at a virtual time; the order breaks ties at the same time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Fault(usize),
    Op(usize),
    Check,
}

impl World {
    fn new(
        scenario: Scenario,
        seed: u64,
        keep_frames: bool,
        db_url: String,
    ) -> anyhow::Result<Self> {
        let settings = scenario.settings.clone();
        let mut rng = StdRng::seed_from_u64(seed);
        let trace = SharedTrace::new(keep_frames);
        let net = SimNetwork::new(
            StdRng::seed_from_u64(rng.next_u64()),
            trace.clone(),
            (settings.latency_min_ms, settings.latency_max_ms),
            Duration::from_millis(settings.connect_timeout_ms),
        );
        let checker = Checker::open(&db_url)?;
        let mut clusters = BTreeMap::new();
        let mut oracle = Oracle::default();
        for spec in &scenario.clusters {
            let images = parse_images(&spec.images).map_err(anyhow::Error::msg)?;
            let declared = match &spec.declared {
                Some(text) => osmesh_core::parse_declared(&spec.id, text)?,
                None => Vec::new(),
            };
            let config = RegistryConfig {
                declared,
                ..RegistryConfig::default()
            };
            let source = ScriptedImages::default();
            oracle.hold(&spec.id, 0, &config, &images);
            let knew = invariants::known_releases(&invariants::true_report(&config, &images));
            source.set(images);
            clusters.insert(
                spec.id.clone(),
                SimCluster {
                    config,
                    images: source,
                    knew,
                    templates: shipped_templates(&spec.templates),
                    crashed_at_ms: None,
                    actor: None,
                },
            );
        }
        let convergence = settings.liveness.then(|| Convergence {
            healed_at_ms: scenario.faults.iter().map(Fault::at_ms).max().unwrap_or(0),
            converged_at_ms: None,
            bound_ms: settings.convergence_bound_ms(),
        });
        let state = State {
            settings,
            trace,
            net,
            rng,
            start: Instant::now(),
            db_url,
            checker,
            clusters,
            regions: regions::slots(scenario.settings.regions),
            crashed: Vec::new(),
            served_after_crash: Vec::new(),
            oracle,
            enlisted: BTreeMap::new(),
            knowledge: 0,
            acked: Acked::default(),
            identity: identity::Identities::default(),
            failure: None,
            step: 0,
            convergence,
        };
        Ok(World {
            scenario,
            state: Rc::new(RefCell::new(state)),
        })
    }

    fn schedule(&self) -> Vec<(u64, Action)> {
        let s = &self.scenario.settings;
        let mut plan: Vec<(u64, Action)> = Vec::new();
        plan.extend(
            self.scenario
                .faults
                .iter()
                .enumerate()
                .map(|(i, f)| (f.at_ms(), Action::Fault(i))),
        );
        plan.extend(
            self.scenario
                .ops
                .iter()
                .enumerate()
                .map(|(i, o)| (o.at_ms(), Action::Op(i))),
        );
        plan.extend(
            (1..=s.duration_ms / s.check_interval_ms)
                .map(|n| (n * s.check_interval_ms, Action::Check)),
        );
        plan.sort();
        plan
    }

    async fn drive(self) -> anyhow::Result<Outcome> {
        {
            let mut state = self.state.borrow_mut();
            if state.settings.enrolled {
                state.enroll_all()?;
            }
            for index in 0..state.regions.len() {
                state.start_region(index)?;
            }
            let ids: Vec<String> = state.clusters.keys().cloned().collect();
            for id in ids {
                state.start_cluster(&id);
            }
        }
        let start = self.state.borrow().start;
        for (at_ms, action) in self.schedule() {
            tokio::time::sleep_until(start + Duration::from_millis(at_ms)).await;
            if self.state.borrow().failure.is_some() {
                break;
            }
            self.state.borrow_mut().step += 1;
            match action {
                Action::Fault(i) => self
                    .state
                    .borrow_mut()
                    .apply_fault(&self.scenario.faults[i])?,
                Action::Op(i) => {
                    let state = self.state.clone();
                    let op = self.scenario.ops[i].clone();
                    actix_rt::spawn(async move { op.run(state, i + 1).await });
                }
                Action::Check => check(&self.state).await,
            }
        }
        let end = start + Duration::from_millis(self.scenario.settings.duration_ms);
        if self.state.borrow().failure.is_none() {
            tokio::time::sleep_until(end).await;
            check(&self.state).await;
            self.final_expectations().await;
        }
        let final_state = final_state(&self.state).await;
        let mut state = self.state.borrow_mut();
        if let Some(c) = state.convergence {
            if c.converged_at_ms.is_none() && state.failure.is_none() {
                let now = state.now_ms();
                state.fail(FailureKind::Liveness, format!(
                    "the cached view did not converge after the last fault at {} ms (bound {} ms, run ended at {now} ms)",
                    c.healed_at_ms, c.bound_ms
                ));
            }
        }
        let virtual_ms = state.now_ms();
        state.net.flush_counts();
        let trace = std::mem::take(&mut *state.trace.lock());
        Ok(Outcome {
            trace,
            final_state,
            failure: state.failure.clone(),
            convergence: state.convergence,
            virtual_ms,
            steps: state.step,
        })
    }

    async fn final_expectations(&self) {
        let expect = &self.scenario.expect;
        if let Some(want) = &expect.connected {
            let connected = connected_clusters(&self.state).await;
            if &connected != want {
                self.state.borrow_mut().fail(
                    FailureKind::Expectation,
                    format!("final: connected {connected:?}, expected {want:?}"),
                );
            }
        }
        if let Some(want) = expect.converged {
            let is = regions::all_converged(&self.state).await;
            if is != want {
                self.state.borrow_mut().fail(
                    FailureKind::Expectation,
                    format!("final: converged is {is}, expected {want}"),
                );
            }
        }
    }
}

fn open_store(url: &str) -> anyhow::Result<Store> {
    let options = StoreOptions {
        pool_size: 1,
        ..StoreOptions::default()
    };
    Ok(Store::open_with(url, &options)?)
}

impl State {
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(Instant::now().duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn log(&self, source: Source, text: impl Into<String>) {
        self.trace.push(self.now_ms(), source, text);
    }

    pub(crate) fn fail(&mut self, kind: FailureKind, message: String) {
        if self.failure.is_some() {
            return;
        }
        let at_ms = self.now_ms();
        self.log(Source::Check, format!("FAILED ({kind:?}): {message}"));
        self.failure = Some(Failure {
            kind,
            at_ms,
            step: self.step,
            message,
        });
    }

    /// Whether cluster `by` may have said yes to a key of `release` asked for at
    /// `issued_ms`: it was up at some point since (running, or crashed no earlier) and its
    /// registry knew the release.
    pub(crate) fn could_validate(
        &self,
        by: &str,
        release: &(String, String),
        issued_ms: u64,
    ) -> bool {
        self.clusters.get(by).is_some_and(|c| {
            let up = c.actor.is_some() || c.crashed_at_ms.is_some_and(|t| t >= issued_ms);
            up && c.knew.contains(release)
        })
    }

    fn secret() -> Secret {
        Secret::new(b"osmesh-sim shared secret".to_vec())
    }

    fn peer_config(&self) -> PeerConfig {
        PeerConfig {
            heartbeat_interval: ms(self.settings.heartbeat_interval_ms),
            heartbeat_timeout: ms(self.settings.heartbeat_timeout_ms),
            ..PeerConfig::default()
        }
    }

    fn handshake(&self, identity: &str) -> HandshakeConfig {
        let mut config = HandshakeConfig::new(identity, Self::secret());
        config.timeout = ms(self.settings.handshake_timeout_ms);
        config
    }

    fn start_cluster(&mut self, id: &str) {
        let settings = ClusterSettings {
            id: ClusterId::new(id),
            name: id.to_owned(),
            region_addrs: self.region_addrs_for(id),
            handshake: self.cluster_handshake(id),
            peer: self.peer_config(),
            rescan_interval: ms(self.settings.rescan_interval_ms),
            backoff_base: ms(self.settings.backoff_base_ms),
            backoff_cap: ms(self.settings.backoff_cap_ms),
        };
        let rng = StdRng::seed_from_u64(self.rng.next_u64());
        let slot = self.identity.slot(id);
        let dialer = Arc::new(self.net.secured_dialer(id, slot));
        let Some(cluster) = self.clusters.get_mut(id) else {
            return;
        };
        let source = Box::new(cluster.images.clone());
        let actor = ClusterActor::new(
            settings,
            dialer,
            source,
            cluster.config.clone(),
            cluster.templates.clone(),
            rng,
        );
        cluster.actor = Some(actor.start());
    }
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

/// The templates a cluster ships, from the scenario's specs.
fn shipped_templates(specs: &[TemplateSpec]) -> Vec<PreseedTemplate> {
    specs
        .iter()
        .map(|t| PreseedTemplate {
            name: t.name.clone(),
            osystem: t.osystem.clone(),
            content: t.content.clone(),
        })
        .collect()
}
