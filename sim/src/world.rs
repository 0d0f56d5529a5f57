//! The simulated world: one actix `System` on a paused current-thread runtime hosting the real
//! region (over a real SQLite store) and clusters, joined by the simulated network, driven by
//! a scenario's faults and operations, with the invariants checked at every step.

use actix::prelude::*;
use osmesh_actors::clock::Clock;
use osmesh_actors::cluster::{ClusterActor, ClusterSettings, ImageSource, IsConnected, Rescan};
use osmesh_actors::region::service::RegionService;
use osmesh_actors::region::{OsystemsAnswer, RegionActor, RegionSettings};
use osmesh_actors::Shutdown;
use osmesh_core::os::RegistryConfig;
use osmesh_core::{BootImage, ClusterId, NoAnswerReason};
use osmesh_net::{HandshakeConfig, PeerConfig, Secret};
use osmesh_store::{Store, StoreOptions};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use crate::invariants::{self, Acked, DurabilityCheck, Enlisted};
use crate::net::{SimNetwork, REGION_ADDR};
use crate::oracle::Oracle;
use crate::scenario::{
    parse_images, ClustersExpect, Fault, ListExpect, Op, Read, Scenario, Settings, REGION,
};
use crate::trace::{SharedTrace, Source, Trace};
use osmesh_net::messages::PreseedTemplate;

mod domain;

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

struct SimRegion {
    actor: Addr<RegionActor>,
    service: RegionService,
    /// Counts region starts: an operation refused by the region it was issued to while that
    /// region is still up means the actor died under it.
    generation: u64,
}

struct State {
    settings: Settings,
    trace: SharedTrace,
    net: SimNetwork,
    rng: StdRng,
    start: Instant,
    db_url: String,
    /// The checker's own handle on the region's database (the region's dies with it).
    checker_store: Store,
    clusters: BTreeMap<String, SimCluster>,
    region: Option<SimRegion>,
    region_starts: u64,
    /// Actors the world crashed (told to shut down), and when: each must be gone by the next
    /// check, or the crash never happened.
    crashed: Vec<(u64, String, Recipient<Shutdown>)>,
    /// The reference model: what each cluster held and when, what the network carried.
    oracle: Oracle,
    /// Nodes the service enlisted, by id, as the world asked for them.
    enlisted: BTreeMap<i64, Enlisted>,
    durability: Vec<Box<dyn DurabilityCheck>>,
    /// What the region's service acknowledged: the durability checks hold the store to it.
    acked: Acked,
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
        let checker_store = open_store(&db_url)?;
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
                    templates: domain::templates(&spec.templates),
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
            checker_store,
            clusters,
            region: None,
            region_starts: 0,
            crashed: Vec::new(),
            oracle,
            enlisted: BTreeMap::new(),
            durability: invariants::durability_checks(),
            acked: Acked::default(),
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
            state.start_region()?;
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
                    actix_rt::spawn(async move { run_op(state, i + 1, op).await });
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
            let service = self.state.borrow().service();
            let is = match service {
                Some(service) => match service.osystems_cached().await {
                    Ok(answer) => self.state.borrow_mut().converged(&answer).is_ok(),
                    Err(_) => false,
                },
                None => false,
            };
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
    fn now_ms(&self) -> u64 {
        u64::try_from(Instant::now().duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    fn log(&self, source: Source, text: impl Into<String>) {
        self.trace.push(self.now_ms(), source, text);
    }

    fn fail(&mut self, kind: FailureKind, message: String) {
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

    fn service(&self) -> Option<RegionService> {
        self.region.as_ref().map(|r| r.service.clone())
    }

    /// Which start of the region is up, if one is.
    fn region_generation(&self) -> Option<u64> {
        self.region.as_ref().map(|r| r.generation)
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

    fn start_region(&mut self) -> anyhow::Result<()> {
        let store = open_store(&self.db_url)?;
        let settings = RegionSettings {
            name: "region".into(),
            handshake: self.handshake(REGION_ADDR),
            peer: self.peer_config(),
            refresh_interval: ms(self.settings.refresh_interval_ms),
        };
        let clock = Clock::anchored_at(SIM_EPOCH_MS + self.now_ms() as i64);
        let rng = StdRng::seed_from_u64(self.rng.next_u64());
        let listener = Box::new(self.net.listen());
        let actor = RegionActor::new(settings, store.inline(), clock, rng, listener).start();
        let service = RegionService::new(actor.clone(), store.inline());
        self.region_starts += 1;
        self.region = Some(SimRegion {
            actor,
            service,
            generation: self.region_starts,
        });
        Ok(())
    }

    fn start_cluster(&mut self, id: &str) {
        let settings = ClusterSettings {
            id: ClusterId::new(id),
            name: id.to_owned(),
            region_addrs: vec![REGION_ADDR.to_owned()],
            handshake: self.handshake(id),
            peer: self.peer_config(),
            rescan_interval: ms(self.settings.rescan_interval_ms),
            backoff_base: ms(self.settings.backoff_base_ms),
            backoff_cap: ms(self.settings.backoff_cap_ms),
        };
        let rng = StdRng::seed_from_u64(self.rng.next_u64());
        let dialer = Arc::new(self.net.dialer(id));
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

    fn apply_fault(&mut self, fault: &Fault) -> anyhow::Result<()> {
        self.log(Source::Fault, describe_fault(fault));
        let net = self.net.clone();
        match fault {
            Fault::Partition {
                cluster, direction, ..
            } => net.partition(cluster, *direction),
            Fault::Heal { cluster, .. } => net.heal(cluster.as_deref()),
            Fault::Delay {
                cluster,
                min_ms,
                max_ms,
                ..
            } => net.set_latency(cluster.as_deref(), *min_ms, *max_ms),
            Fault::DropRate { cluster, rate, .. } => net.set_drop_rate(cluster.as_deref(), *rate),
            Fault::DuplicateRate { cluster, rate, .. } => {
                net.set_duplicate_rate(cluster.as_deref(), *rate)
            }
            Fault::ReorderRate { cluster, rate, .. } => {
                net.set_reorder_rate(cluster.as_deref(), *rate)
            }
            Fault::Slow {
                cluster, extra_ms, ..
            } => net.set_slow(cluster, *extra_ms),
            Fault::HealAll { .. } => net.heal_all(),
            Fault::Crash { node, .. } => self.crash(node),
            Fault::Restart { node, .. } => self.restart(node)?,
            Fault::ImagesChange {
                cluster, images, ..
            } => {
                let images = parse_images(images).map_err(anyhow::Error::msg)?;
                let now = self.now_ms();
                if let Some(c) = self.clusters.get_mut(cluster) {
                    self.oracle.hold(cluster, now, &c.config, &images);
                    let report = invariants::true_report(&c.config, &images);
                    c.knew.extend(invariants::known_releases(&report));
                    c.images.set(images);
                    if let Some(actor) = &c.actor {
                        actor.do_send(Rescan);
                    }
                }
            }
            Fault::TemplatesChange {
                cluster, templates, ..
            } => {
                if let Some(c) = self.clusters.get_mut(cluster) {
                    c.templates = domain::templates(templates);
                }
            }
        }
        Ok(())
    }

    fn crash(&mut self, node: &str) {
        if node == REGION {
            if let Some(region) = self.region.take() {
                self.net.unlisten();
                self.net.cut(None);
                region.actor.do_send(Shutdown);
                let now = self.now_ms();
                self.crashed
                    .push((now, REGION.to_owned(), region.actor.recipient()));
            }
            return;
        }
        let now = self.now_ms();
        if let Some(cluster) = self.clusters.get_mut(node) {
            if cluster.actor.is_some() {
                cluster.crashed_at_ms = Some(now);
            }
        }
        if let Some(actor) = self.clusters.get_mut(node).and_then(|c| c.actor.take()) {
            self.net.cut(Some(node));
            actor.do_send(Shutdown);
            self.crashed.push((now, node.to_owned(), actor.recipient()));
        }
    }

    fn restart(&mut self, node: &str) -> anyhow::Result<()> {
        if node == REGION {
            if self.region.is_none() {
                self.start_region()?;
                self.check_durability();
                if self.failure.is_none() {
                    self.log(Source::Check, domain::durability_summary(&self.acked));
                }
            }
            return Ok(());
        }
        if self.clusters.get(node).is_some_and(|c| c.actor.is_none()) {
            self.start_cluster(node);
        }
        Ok(())
    }

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
    fn observe(&mut self) {
        let seen = self.net.observed();
        self.oracle.observe(seen);
    }

    fn converged(&mut self, answer: &OsystemsAnswer) -> Result<(), String> {
        if self.clusters.values().any(|c| c.actor.is_none()) {
            return Err("a cluster is down".into());
        }
        self.observe();
        invariants::converged(answer, &self.oracle)
    }

    /// The invariants every answer must satisfy; `issued_ms` is when it was asked for.
    fn check_answer(&mut self, answer: &OsystemsAnswer, issued_ms: u64) {
        self.observe();
        let now = self.now_ms();
        let oracle = &self.oracle;
        let result = invariants::names_every_cluster(answer, oracle)
            .and_then(|()| invariants::parts_agree_with_view(answer))
            .and_then(|()| invariants::live_answers_are_live(answer, oracle, issued_ms, now))
            .and_then(|()| invariants::available_as_held(answer, oracle, issued_ms, now))
            .and_then(|()| invariants::disconnected_never_answered(answer));
        if let Err(message) = result {
            self.fail(FailureKind::Safety, message);
        }
    }

    fn check_durability(&mut self) {
        let store = self.checker_store.clone();
        let mut failed = None;
        for check in &mut self.durability {
            if let Err(message) = check.check(&store, &self.acked) {
                failed = Some(format!("{}: {message}", check.name()));
                break;
            }
        }
        if let Some(message) = failed {
            self.fail(FailureKind::Safety, message);
            return;
        }
        let knew: BTreeMap<String, BTreeSet<(String, String)>> = self
            .clusters
            .iter()
            .map(|(id, c)| (id.clone(), c.knew.clone()))
            .collect();
        self.observe();
        let registered = self.oracle.registered();
        if let Err(message) = invariants::keys_validated_by_knowers(&store, &registered, &knew) {
            self.fail(FailureKind::Safety, message);
        }
    }

    fn track_convergence(&mut self, answer: &OsystemsAnswer) {
        let Some(mut c) = self.convergence else {
            return;
        };
        let now = self.now_ms();
        if c.converged_at_ms.is_some() || now < c.healed_at_ms {
            return;
        }
        match self.converged(answer) {
            Ok(()) => {
                c.converged_at_ms = Some(now);
                self.convergence = Some(c);
                self.log(
                    Source::Check,
                    format!(
                        "converged {} ms after the last fault (bound {} ms)",
                        now - c.healed_at_ms,
                        c.bound_ms
                    ),
                );
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

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

/// A periodic step: the region is alive and lists every cluster it acknowledged as
/// registered; the cached answer's invariants; durability; liveness.
async fn check(state: &Rc<RefCell<State>>) {
    state.borrow_mut().check_crashed_are_gone();
    let Some(service) = state.borrow().service() else {
        state.borrow_mut().check_durability();
        return;
    };
    let now = state.borrow().now_ms();
    match service.clusters().await {
        Ok(statuses) => {
            let mut s = state.borrow_mut();
            s.observe();
            let known: BTreeSet<String> = statuses.iter().map(|c| c.id.to_string()).collect();
            if let Some(lost) = s.oracle.registered().difference(&known).next().cloned() {
                s.fail(
                    FailureKind::Safety,
                    format!("the region does not list registered cluster {lost}"),
                );
            }
        }
        Err(err) => region_died(state, &err),
    }
    // After the oracle is current: a key's validator must have registered.
    state.borrow_mut().check_durability();
    match service.osystems_cached().await {
        Ok(answer) => {
            let mut s = state.borrow_mut();
            s.check_answer(&answer, now);
            s.track_convergence(&answer);
        }
        Err(err) => region_died(state, &err),
    }
}

/// The region the world believes up refused with `err`: its actor is gone, a failure.
fn region_died(state: &Rc<RefCell<State>>, err: &osmesh_actors::region::service::ServiceError) {
    state.borrow_mut().fail(
        FailureKind::Safety,
        format!(
            "the region actor is gone while the region is up: {} ({})",
            err.code, err.message
        ),
    );
}

async fn run_op(state: Rc<RefCell<State>>, number: usize, op: Op) {
    let Some(service) = state.borrow().service() else {
        state.borrow().log(
            Source::Op,
            format!("op#{number} {}: region down", describe_op(&op)),
        );
        if let Op::ListOsystems {
            expect: Some(expect),
            ..
        } = &op
        {
            let got = Err("region_unavailable".to_owned());
            check_list_expect(&state, number, expect, &got);
        }
        domain::expect_region_down(&state, number, &op);
        return;
    };
    let generation = state.borrow().region_generation();
    state
        .borrow()
        .log(Source::Op, format!("op#{number} {}", describe_op(&op)));
    match op {
        Op::ListOsystems {
            read,
            timeout_ms,
            expect,
            ..
        } => {
            let issued = Instant::now();
            let issued_ms = state.borrow().now_ms();
            let result = match read {
                Read::Cached => service.osystems_cached().await,
                Read::Live => {
                    let timeout = timeout_ms.map_or(
                        osmesh_actors::region::service::DEFAULT_LIVE_TIMEOUT,
                        Duration::from_millis,
                    );
                    service.osystems_live(timeout).await
                }
            };
            let waited = u64::try_from(issued.elapsed().as_millis()).unwrap_or(u64::MAX);
            let got = match result {
                Ok(answer) => {
                    {
                        let s = state.borrow();
                        for line in render_answer(number, &answer, waited) {
                            s.log(Source::Answer, line);
                        }
                    }
                    let mut s = state.borrow_mut();
                    s.check_answer(&answer, issued_ms);
                    if let Some(deadline) = answer.deadline_ms {
                        let in_time =
                            invariants::live_answer_in_time(waited, deadline).and_then(|()| {
                                invariants::live_answer_in_time(
                                    answer.elapsed_ms.unwrap_or(0),
                                    deadline,
                                )
                            });
                        if let Err(message) = in_time {
                            s.fail(FailureKind::Safety, message);
                        }
                    }
                    Ok(answer)
                }
                Err(err) => {
                    state.borrow().log(
                        Source::Answer,
                        format!("op#{number} refused: {} ({})", err.code, err.message),
                    );
                    let same_region = state.borrow().region_generation() == generation;
                    if err.code == "region_unavailable" && same_region {
                        region_died(&state, &err);
                    }
                    Err(err.code.to_owned())
                }
            };
            if let Some(expect) = expect {
                check_list_expect(&state, number, &expect, &got);
            }
        }
        Op::ListClusters { expect, .. } => {
            let result = service.clusters().await;
            let statuses = match result {
                Ok(statuses) => statuses,
                Err(err) => {
                    state
                        .borrow()
                        .log(Source::Answer, format!("op#{number} refused: {}", err.code));
                    return;
                }
            };
            let line = statuses
                .iter()
                .map(|c| {
                    let link = if c.connected {
                        "connected"
                    } else {
                        "disconnected"
                    };
                    format!("{}({link}, {} images)", c.id, c.image_count)
                })
                .collect::<Vec<_>>()
                .join(" ");
            state
                .borrow()
                .log(Source::Answer, format!("op#{number} clusters: {line}"));
            if let Some(expect) = expect {
                check_clusters_expect(&state, number, &expect, &statuses);
            }
        }
        other => domain::run(&state, number, &service, other).await,
    }
}

fn check_list_expect(
    state: &Rc<RefCell<State>>,
    number: usize,
    expect: &ListExpect,
    got: &Result<OsystemsAnswer, String>,
) {
    let mut problems = Vec::new();
    match got {
        Err(code) => {
            if expect.error.as_deref() != Some(code.as_str()) {
                problems.push(format!("refused with {code}, expected {:?}", expect.error));
            }
        }
        Ok(answer) => {
            if let Some(code) = &expect.error {
                problems.push(format!("answered, expected refusal {code}"));
            }
            let view = &answer.view;
            if let Some(want) = &expect.answered {
                let is: Vec<String> = view.answered.iter().map(|c| c.to_string()).collect();
                if &is != want {
                    problems.push(format!("answered {is:?}, expected {want:?}"));
                }
            }
            if let Some(want) = &expect.not_answered {
                let is: BTreeMap<String, String> = view
                    .not_answered
                    .iter()
                    .map(|(c, r)| (c.to_string(), reason_label(r)))
                    .collect();
                if &is != want {
                    problems.push(format!("not answered {is:?}, expected {want:?}"));
                }
            }
            if let Some(want) = &expect.available {
                for (key, clusters) in want {
                    let is = available_on(answer, key);
                    if &is != clusters {
                        problems.push(format!("{key} available on {is:?}, expected {clusters:?}"));
                    }
                }
            }
            if let Some(want) = &expect.supported {
                for (key, clusters) in want {
                    let (os, release) = key.split_once('/').unwrap_or((key, ""));
                    let is: Vec<String> = view
                        .release(os, release)
                        .map(|r| r.supported_by.iter().map(|c| c.to_string()).collect())
                        .unwrap_or_default();
                    if &is != clusters {
                        problems.push(format!("{key} supported by {is:?}, expected {clusters:?}"));
                    }
                }
            }
        }
    }
    if !problems.is_empty() {
        state.borrow_mut().fail(
            FailureKind::Expectation,
            format!("op#{number}: {}", problems.join("; ")),
        );
    }
}

fn check_clusters_expect(
    state: &Rc<RefCell<State>>,
    number: usize,
    expect: &ClustersExpect,
    statuses: &[osmesh_actors::region::ClusterStatus],
) {
    let mut problems = Vec::new();
    let known: Vec<String> = statuses.iter().map(|c| c.id.to_string()).collect();
    let connected: Vec<String> = statuses
        .iter()
        .filter(|c| c.connected)
        .map(|c| c.id.to_string())
        .collect();
    if expect.known.as_ref().is_some_and(|want| want != &known) {
        problems.push(format!("known {known:?}, expected {:?}", expect.known));
    }
    if expect
        .connected
        .as_ref()
        .is_some_and(|want| want != &connected)
    {
        problems.push(format!(
            "connected {connected:?}, expected {:?}",
            expect.connected
        ));
    }
    if !problems.is_empty() {
        state.borrow_mut().fail(
            FailureKind::Expectation,
            format!("op#{number}: {}", problems.join("; ")),
        );
    }
}

/// The clusters the view calls `os/release/arch` available on, sorted.
fn available_on(answer: &OsystemsAnswer, key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let [os, release, arch] = parts[..] else {
        return vec![format!("bad key {key:?}: want os/release/arch")];
    };
    answer
        .view
        .release(os, release)
        .and_then(|r| r.available.get(arch))
        .map(|clusters| clusters.keys().map(|c| c.to_string()).collect())
        .unwrap_or_default()
}

fn reason_label(reason: &NoAnswerReason) -> String {
    match reason {
        NoAnswerReason::Error(_) => "error".into(),
        other => other.to_string(),
    }
}

/// Lines of an answer: a header, then one line per release.
pub fn render_answer(number: usize, answer: &OsystemsAnswer, waited_ms: u64) -> Vec<String> {
    let view = &answer.view;
    let answered: Vec<&str> = view.answered.iter().map(ClusterId::as_str).collect();
    let not: Vec<String> = view
        .not_answered
        .iter()
        .map(|(c, r)| format!("{c}: {r}"))
        .collect();
    let source = answer.source.label();
    let mut header = format!(
        "op#{number} {source} answered [{}] not answered [{}] waited {waited_ms}ms",
        answered.join(","),
        not.join(", ")
    );
    if let Some(deadline) = answer.deadline_ms {
        let _ = write!(header, " (deadline {deadline}ms)");
    }
    let mut lines = vec![header];
    lines.extend(render_view(view).into_iter().map(|l| format!("  {l}")));
    lines
}

/// One line per release: who supports it and, per arch, who has it available.
fn render_view(view: &osmesh_core::MeshView) -> Vec<String> {
    let mut lines = Vec::new();
    let mut imageless = 0;
    for os in &view.osystems {
        for release in &os.releases {
            if release.available.is_empty() {
                imageless += 1;
                continue;
            }
            let supported: Vec<&str> = release.supported_by.iter().map(ClusterId::as_str).collect();
            let mut line = format!(
                "{}/{} supported [{}]",
                os.name,
                release.name,
                supported.join(",")
            );
            for (arch, clusters) in &release.available {
                let on: Vec<&str> = clusters.keys().map(ClusterId::as_str).collect();
                let _ = write!(line, " {arch}=[{}]", on.join(","));
            }
            lines.push(line);
        }
    }
    lines.push(format!(
        "{imageless} more supported releases with no image anywhere"
    ));
    lines
}

fn describe_fault(fault: &Fault) -> String {
    let on = |c: &Option<String>| c.clone().unwrap_or_else(|| "all links".into());
    match fault {
        Fault::Partition {
            cluster, direction, ..
        } => format!("partition {cluster} ({direction:?})"),
        Fault::Heal { cluster, .. } => format!("heal {}", on(cluster)),
        Fault::Delay {
            cluster,
            min_ms,
            max_ms,
            ..
        } => format!("delay {} {min_ms}..{max_ms}ms", on(cluster)),
        Fault::DropRate { cluster, rate, .. } => format!("drop_rate {} {rate}", on(cluster)),
        Fault::DuplicateRate { cluster, rate, .. } => {
            format!("duplicate_rate {} {rate}", on(cluster))
        }
        Fault::ReorderRate { cluster, rate, .. } => format!("reorder_rate {} {rate}", on(cluster)),
        Fault::Slow {
            cluster, extra_ms, ..
        } => format!("slow {cluster} +{extra_ms}ms"),
        Fault::Crash { node, .. } => format!("crash {node}"),
        Fault::Restart { node, .. } => format!("restart {node}"),
        Fault::ImagesChange {
            cluster, images, ..
        } => format!("images_change {cluster} [{}]", images.join(", ")),
        Fault::TemplatesChange {
            cluster, templates, ..
        } => format!(
            "templates_change {cluster} [{}] (shipped at its next start)",
            templates
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Fault::HealAll { .. } => "heal_all".into(),
    }
}

fn describe_op(op: &Op) -> String {
    match op {
        Op::ListOsystems {
            read, timeout_ms, ..
        } => match timeout_ms {
            Some(t) => format!("list_osystems {read} timeout {t}ms"),
            None => format!("list_osystems {read}"),
        },
        Op::ListClusters { .. } => "list_clusters".into(),
        other => domain::describe(other),
    }
}

async fn connected_clusters(state: &Rc<RefCell<State>>) -> Vec<String> {
    let actors: Vec<(String, Option<Addr<ClusterActor>>)> = state
        .borrow()
        .clusters
        .iter()
        .map(|(id, c)| (id.clone(), c.actor.clone()))
        .collect();
    let mut connected = Vec::new();
    for (id, actor) in actors {
        if let Some(actor) = actor {
            if actor.send(IsConnected).await.unwrap_or(false) {
                connected.push(id);
            }
        }
    }
    connected
}

/// The end of the run as people read it: nodes, links, the region's snapshots and view.
async fn final_state(state: &Rc<RefCell<State>>) -> String {
    let connected = connected_clusters(state).await;
    let mut out = String::new();
    let (service, now) = {
        let s = state.borrow();
        let _ = writeln!(out, "virtual time: {} ms", s.now_ms());
        let _ = writeln!(
            out,
            "region: {}",
            if s.region.is_some() { "up" } else { "down" }
        );
        for (id, c) in &s.clusters {
            let up = if c.actor.is_some() { "up" } else { "down" };
            let link = if connected.contains(id) {
                "connected"
            } else {
                "not connected"
            };
            let images: Vec<String> = c
                .images
                .get()
                .iter()
                .map(|i| format!("{}/{}/{}/{}", i.osystem, i.arch, i.subarch, i.release))
                .collect();
            let _ = writeln!(
                out,
                "cluster {id}: {up}, {link}, images [{}]",
                images.join(", ")
            );
        }
        (s.service(), s.now_ms())
    };
    let Some(service) = service else {
        return out;
    };
    if let Ok(statuses) = service.clusters().await {
        for c in statuses {
            let age = c
                .snapshot_age_ms
                .map_or("none".into(), |a| format!("{a} ms old"));
            let link = if c.connected {
                "connected"
            } else {
                "disconnected"
            };
            let _ = writeln!(
                out,
                "region sees {}: {link}, {} images, snapshot {age}",
                c.id, c.image_count
            );
        }
    }
    if let Ok(answer) = service.osystems_cached().await {
        let mut s = state.borrow_mut();
        let converged = match s.converged(&answer) {
            Ok(()) => "yes".to_owned(),
            Err(why) => format!("no ({why})"),
        };
        let _ = writeln!(out, "cached view digest: {:016x}", digest(&answer.view));
        let _ = writeln!(
            out,
            "cached view converged to the clusters' images: {converged}"
        );
        for line in render_view(&answer.view) {
            let _ = writeln!(out, "  {line}");
        }
        let _ = now;
    }
    for line in domain::final_lines(&service).await {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// FNV-1a over the view's JSON: a stable fingerprint for the final state.
fn digest(view: &osmesh_core::MeshView) -> u64 {
    let json = serde_json::to_string(view).unwrap_or_default();
    json.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
