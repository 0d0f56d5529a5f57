//! Swarm plans: from one seed, the options of a run (which fault kinds are on at all, their
//! rates, how many clusters) and a random scenario built from them. Switching whole fault
//! kinds off per seed (swarm testing) reaches states that always-on faults drown out.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::world::Outcome;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::scenario::{
    AddLicenseKey, Allocate, ClusterSpec, Direction, EnlistNode, Fault, ListOsystems, Op, Read,
    ReleaseNode, Scenario, Settings, REGION,
};

mod identity;
mod regions;

pub use identity::IdentityPlan;

/// Safety: faults at any time, invariants at every step. Liveness: faults stop, then the
/// system must converge within the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Safety,
    Liveness,
}

/// A kind of fault a swarm seed may switch on. The draw of a seed's kinds and of each fault
/// matches on this enum, so a kind cannot be misspelt or silently fall through to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A cluster's link drops frames one way or both, then heals.
    Partition,
    /// Frames are lost at the seed's drop rate.
    Loss,
    Duplicate,
    Reorder,
    /// Latency rises on one link or all.
    Delay,
    /// A cluster's replies are slowed, then not.
    Slow,
    /// A cluster crashes, then restarts.
    CrashCluster,
    /// The region crashes, then restarts.
    CrashRegion,
    /// A cluster's image set changes.
    ImagesChange,
}

impl FaultKind {
    /// Every kind, in the order a seed draws them (the order fixes the random stream).
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Partition,
        FaultKind::Loss,
        FaultKind::Duplicate,
        FaultKind::Reorder,
        FaultKind::Delay,
        FaultKind::Slow,
        FaultKind::CrashCluster,
        FaultKind::CrashRegion,
        FaultKind::ImagesChange,
    ];

    /// The chance that a seed switches this kind on.
    fn odds(self) -> f64 {
        match self {
            FaultKind::Partition | FaultKind::ImagesChange => 0.6,
            FaultKind::Loss | FaultKind::Delay | FaultKind::Slow => 0.4,
            FaultKind::Duplicate | FaultKind::Reorder | FaultKind::CrashRegion => 0.3,
            FaultKind::CrashCluster => 0.5,
        }
    }
}

/// Everything a seed decides; printed at the start of a run.
#[derive(Clone, Debug, Serialize)]
pub struct SwarmOptions {
    pub seed: u64,
    pub mode: Mode,
    pub clusters: usize,
    pub duration_ms: u64,
    /// The fault kinds this seed switched on, in draw order.
    pub kinds: Vec<FaultKind>,
    pub faults: usize,
    pub live_ops: usize,
    pub cached_ops: usize,
    pub drop_rate: f64,
    pub duplicate_rate: f64,
    pub reorder_rate: f64,
    /// Liveness mode: when every fault is healed and every node restarted.
    pub heal_at_ms: Option<u64>,
    /// Domain operations (drawn from their own RNG, so fault plans stay as they were).
    pub domain: DomainOps,
    /// Regions sharing the store (drawn with [`SwarmOptions::with_regions`], from its own
    /// RNG: a seed of one region is the plan it always was).
    #[serde(skip_serializing_if = "is_one")]
    pub regions: usize,
    /// Issue 13's identity operations and attack, if any (their own RNG too); with one,
    /// the world is enrolled.
    pub identity: Option<IdentityPlan>,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl SwarmOptions {
    /// The same seed in a world of 1 to `max` regions, the count drawn from the seed (from a
    /// stream of its own, so the rest of the plan is unchanged). `max` of 1 changes nothing.
    pub fn with_regions(mut self, max: usize) -> SwarmOptions {
        let max = max.clamp(1, crate::scenario::MAX_SIM_REGIONS);
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x4e61_0115_4e61_0115);
        self.regions = rng.gen_range(1..=max);
        self
    }
}

/// How many domain operations of each kind a seed runs; zero switches a kind off.
#[derive(Clone, Debug, Serialize)]
pub struct DomainOps {
    /// Nodes enlisted at the start.
    pub nodes: usize,
    pub allocations: usize,
    pub releases: usize,
    pub license_keys: usize,
}

impl DomainOps {
    fn draw(seed: u64) -> DomainOps {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xd0d0_d0d0_d0d0_d0d0);
        let mut count = |on: f64, max: usize| {
            if rng.gen_bool(on) {
                rng.gen_range(1..=max)
            } else {
                0
            }
        };
        let allocations = count(0.5, 12);
        let releases = if allocations > 0 { count(0.5, 6) } else { 0 };
        let license_keys = count(0.4, 3);
        let nodes = if allocations > 0 {
            2 + allocations / 2
        } else {
            0
        };
        DomainOps {
            nodes,
            allocations,
            releases,
            license_keys,
        }
    }
}

/// What allocations ask for: `(osystem, release, arch)`.
const ALLOCATION_POOL: [(&str, &str, &str); 6] = [
    ("ubuntu", "jammy", "amd64"),
    ("ubuntu", "focal", "amd64"),
    ("ubuntu", "jammy", "arm64"),
    ("centos", "centos8", "amd64"),
    ("windows", "win2019", "amd64"),
    ("custom", "appliance", "amd64"),
];

/// Appends the seed's domain operations (and a Windows image on some clusters).
fn add_domain_ops(options: &SwarmOptions, clusters: &mut [ClusterSpec], ops: &mut Vec<Op>) {
    let domain = &options.domain;
    if domain.nodes + domain.license_keys == 0 {
        return;
    }
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0xa110_ca7e_a110_ca7e);
    for cluster in clusters.iter_mut() {
        if rng.gen_bool(0.5) {
            cluster
                .images
                .push("windows/amd64/generic/win2019:install".into());
        }
    }
    let end = options.duration_ms - 1_000;
    for n in 0..domain.nodes {
        let cluster = &clusters[rng.gen_range(0..clusters.len())];
        ops.push(Op::EnlistNode(EnlistNode {
            at_ms: 1_000 + n as u64,
            region: None,
            hostname: format!("n{n}"),
            arch: ["amd64", "arm64"][rng.gen_range(0..2)].into(),
            subarch: None,
            cluster: cluster.id.clone(),
            expect: None,
        }));
    }
    for _ in 0..domain.allocations {
        let (os, release, arch) = ALLOCATION_POOL[rng.gen_range(0..ALLOCATION_POOL.len())];
        ops.push(Op::Allocate(Allocate {
            at_ms: rng.gen_range(2_000..end),
            region: None,
            osystem: os.into(),
            distro_series: release.into(),
            arch: arch.into(),
            hostname: None,
            expect: None,
        }));
    }
    for _ in 0..domain.releases {
        ops.push(Op::ReleaseNode(ReleaseNode {
            at_ms: rng.gen_range(2_000..end),
            region: None,
            hostname: format!("n{}", rng.gen_range(0..domain.nodes)),
            expect: None,
        }));
    }
    for _ in 0..domain.license_keys {
        ops.push(Op::AddLicenseKey(AddLicenseKey {
            at_ms: rng.gen_range(2_000..end),
            region: None,
            osystem: "windows".into(),
            distro_series: "win2019".into(),
            license_key: "ABCDE-12345-FGHIJ-67890-KLMNO".into(),
            expect: None,
        }));
    }
}

/// A swarm seed that failed: its options and what the run produced.
pub struct FailedSeed {
    pub seed: u64,
    pub options: SwarmOptions,
    pub outcome: Outcome,
}

/// Stack of each swarm worker thread: a world's futures nest deeply (actix inside tokio),
/// and the main thread's 8 MiB is what runs were measured on.
const WORKER_STACK: usize = 8 << 20;

/// Runs the swarm seeds in `seeds` on `jobs` threads, each seed in a world of its own (so
/// each replays alone, whatever ran beside it), calling `done` after each. Gives the lowest
/// failing seed, as running the seeds in order and stopping at the first failure would.
pub fn run_seeds(
    seeds: Range<u64>,
    jobs: usize,
    mode: Mode,
    clusters: Option<usize>,
    regions: usize,
    done: &(dyn Fn() + Sync),
) -> anyhow::Result<Option<FailedSeed>> {
    let run_one = |seed: u64| -> anyhow::Result<Option<(SwarmOptions, Outcome)>> {
        let options = options(seed, mode, clusters).with_regions(regions);
        let outcome = crate::run(&generate(&options), seed, false)?;
        done();
        Ok(outcome.failure.is_some().then_some((options, outcome)))
    };
    let lowest = lowest_failing(seeds, jobs, &run_one)?;
    Ok(lowest.map(|(seed, (options, outcome))| FailedSeed {
        seed,
        options,
        outcome,
    }))
}

/// The lowest seed in `seeds` for which `run` gives `Some`, running seeds on `jobs` threads.
/// Seeds are handed out in order, and once one failed only seeds below it are still run, so
/// the answer is the one a run in order stopping at the first failure gives.
pub fn lowest_failing<T: Send>(
    seeds: Range<u64>,
    jobs: usize,
    run: &(dyn Fn(u64) -> anyhow::Result<Option<T>> + Sync),
) -> anyhow::Result<Option<(u64, T)>> {
    let next = AtomicU64::new(seeds.start);
    let lowest_seed = AtomicU64::new(u64::MAX);
    let lowest: Mutex<Option<(u64, T)>> = Mutex::new(None);
    let work = || -> anyhow::Result<()> {
        loop {
            let seed = next.fetch_add(1, Ordering::SeqCst);
            if !seeds.contains(&seed) || seed > lowest_seed.load(Ordering::SeqCst) {
                return Ok(());
            }
            let Some(failure) = run(seed)? else {
                continue;
            };
            lowest_seed.fetch_min(seed, Ordering::SeqCst);
            let mut lowest = lowest.lock().unwrap_or_else(|p| p.into_inner());
            if lowest.as_ref().is_none_or(|(s, _)| seed < *s) {
                *lowest = Some((seed, failure));
            }
        }
    };
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers = (0..jobs.max(1))
            .map(|_| {
                std::thread::Builder::new()
                    .stack_size(WORKER_STACK)
                    .spawn_scoped(scope, work)
            })
            .collect::<Result<Vec<_>, _>>()?;
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a swarm worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(lowest.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// The images clusters draw from.
const IMAGE_POOL: [&str; 8] = [
    "ubuntu/amd64/generic/focal",
    "ubuntu/amd64/generic/jammy",
    "ubuntu/amd64/generic/noble",
    "ubuntu/arm64/generic/jammy",
    "centos/amd64/generic/centos8",
    "centos/amd64/generic/centos7:install",
    "custom/amd64/generic/appliance",
    "custom/arm64/generic/appliance:install",
];

const DURATION_MS: u64 = 300_000;

/// Derives a seed's options. `clusters` overrides the drawn cluster count.
pub fn options(seed: u64, mode: Mode, clusters: Option<usize>) -> SwarmOptions {
    let mut rng = StdRng::seed_from_u64(seed);
    let kinds = FaultKind::ALL
        .into_iter()
        .filter(|kind| rng.gen_bool(kind.odds()))
        .collect();
    let settings = Settings::default();
    let heal_at_ms = (mode == Mode::Liveness)
        .then(|| DURATION_MS - settings.convergence_bound_ms() - rng.gen_range(20_000..60_000));
    let clusters = clusters.unwrap_or_else(|| rng.gen_range(2..=6));
    let window_end = heal_at_ms.unwrap_or(DURATION_MS);
    let domain = DomainOps::draw(seed);
    SwarmOptions {
        seed,
        mode,
        clusters,
        duration_ms: DURATION_MS,
        faults: rng.gen_range(2..=14),
        live_ops: rng.gen_range(2..=10),
        cached_ops: rng.gen_range(1..=5),
        drop_rate: rng.gen_range(0.01..0.3),
        duplicate_rate: rng.gen_range(0.01..0.2),
        reorder_rate: rng.gen_range(0.05..0.5),
        heal_at_ms,
        kinds,
        identity: IdentityPlan::draw(seed, clusters, window_end),
        domain,
        regions: 1,
    }
}

/// The scenario a seed's options describe.
pub fn generate(options: &SwarmOptions) -> Scenario {
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0x5eed_5eed_5eed_5eed);
    let ids: Vec<String> = (1..=options.clusters).map(|n| format!("c{n}")).collect();
    let mut clusters: Vec<ClusterSpec> = ids
        .iter()
        .map(|id| ClusterSpec {
            id: id.clone(),
            images: draw_images(&mut rng),
            declared: None,
            templates: Vec::new(),
        })
        .collect();
    let window_end = options.heal_at_ms.unwrap_or(options.duration_ms);
    let mut faults = Vec::new();
    for _ in 0..options.faults {
        let Some(&kind) = options.kinds.choose(&mut rng) else {
            break;
        };
        let at_ms = rng.gen_range(2_000..window_end);
        faults.extend(draw_fault(&mut rng, kind, at_ms, window_end, &ids, options));
    }
    if let Some(heal_at) = options.heal_at_ms {
        faults.push(Fault::HealAll { at_ms: heal_at });
        for node in ids.iter().map(String::as_str).chain([REGION]) {
            faults.push(Fault::Restart {
                at_ms: heal_at,
                node: node.to_owned(),
                region: None,
            });
        }
    }
    let mut ops = Vec::new();
    for _ in 0..options.live_ops {
        ops.push(Op::ListOsystems(ListOsystems {
            at_ms: rng.gen_range(1_000..options.duration_ms - 10_000),
            region: None,
            read: Read::Live,
            timeout_ms: Some(rng.gen_range(200..5_000)),
            expect: None,
        }));
    }
    for _ in 0..options.cached_ops {
        ops.push(Op::ListOsystems(ListOsystems {
            at_ms: rng.gen_range(1_000..options.duration_ms),
            region: None,
            read: Read::Cached,
            timeout_ms: None,
            expect: None,
        }));
    }
    add_domain_ops(options, &mut clusters, &mut ops);
    if let Some(plan) = &options.identity {
        plan.apply(&mut faults, &mut ops);
        // Liveness: whatever the faults did to the plan's operations, the cluster is
        // enrolled once the region is back.
        if let Some(at_ms) = options.heal_at_ms {
            ops.push(Op::Enroll(crate::scenario::Enroll {
                at_ms,
                cluster: plan.cluster.clone(),
                expect: None,
            }));
        }
    }
    if options.regions > 1 {
        regions::spread(options, &mut faults, &mut ops);
    }
    Scenario {
        description: format!("swarm seed {} ({:?})", options.seed, options.mode),
        settings: Settings {
            duration_ms: options.duration_ms,
            liveness: options.mode == Mode::Liveness,
            regions: options.regions,
            enrolled: options.identity.is_some(),
            ..Settings::default()
        },
        clusters,
        faults,
        ops,
        expect: Default::default(),
    }
}

fn draw_images(rng: &mut StdRng) -> Vec<String> {
    let count = rng.gen_range(1..=4);
    IMAGE_POOL
        .choose_multiple(rng, count)
        .map(|s| s.to_string())
        .collect()
}

/// One fault, and the fault that ends it (a heal, a restart) when the draw says so.
fn draw_fault(
    rng: &mut StdRng,
    kind: FaultKind,
    at_ms: u64,
    window_end: u64,
    ids: &[String],
    options: &SwarmOptions,
) -> Vec<Fault> {
    let cluster = ids.choose(rng).cloned().unwrap_or_default();
    let some_cluster = rng.gen_bool(0.5).then(|| cluster.clone());
    let later = (at_ms + rng.gen_range(500..60_000)).min(window_end);
    match kind {
        FaultKind::Partition => partition(rng, cluster, at_ms, later),
        FaultKind::Loss => vec![Fault::DropRate {
            at_ms,
            cluster: some_cluster,
            rate: options.drop_rate,
        }],
        FaultKind::Duplicate => vec![Fault::DuplicateRate {
            at_ms,
            cluster: some_cluster,
            rate: options.duplicate_rate,
        }],
        FaultKind::Reorder => vec![Fault::ReorderRate {
            at_ms,
            cluster: some_cluster,
            rate: options.reorder_rate,
        }],
        FaultKind::Delay => {
            let max_ms = rng.gen_range(10..3_000);
            let min_ms = max_ms / 4;
            let cluster = some_cluster;
            vec![Fault::Delay {
                at_ms,
                cluster,
                min_ms,
                max_ms,
            }]
        }
        FaultKind::Slow => {
            let extra_ms = rng.gen_range(500..8_000);
            let (node, end) = (cluster.clone(), 0);
            vec![
                Fault::Slow {
                    at_ms,
                    cluster,
                    extra_ms,
                },
                Fault::Slow {
                    at_ms: later,
                    cluster: node,
                    extra_ms: end,
                },
            ]
        }
        FaultKind::CrashCluster => crash_and_restart(cluster, at_ms, later),
        FaultKind::CrashRegion => crash_and_restart(REGION.into(), at_ms, later),
        FaultKind::ImagesChange => vec![Fault::ImagesChange {
            at_ms,
            cluster,
            images: draw_images(rng),
        }],
    }
}

/// A partition in a drawn direction, healed `later`.
fn partition(rng: &mut StdRng, cluster: String, at_ms: u64, later: u64) -> Vec<Fault> {
    let direction = *[Direction::Both, Direction::ToRegion, Direction::FromRegion]
        .choose(rng)
        .unwrap_or(&Direction::Both);
    vec![
        Fault::Partition {
            at_ms,
            cluster: cluster.clone(),
            direction,
            region: None,
        },
        Fault::Heal {
            at_ms: later,
            cluster: Some(cluster),
            region: None,
        },
    ]
}

/// `node` crashes at `at_ms` and restarts `later`.
fn crash_and_restart(node: String, at_ms: u64, later: u64) -> Vec<Fault> {
    vec![
        Fault::Crash {
            at_ms,
            node: node.clone(),
            region: None,
        },
        Fault::Restart {
            at_ms: later,
            node,
            region: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the number of threads, the verdict is the lowest failing seed, and every
    /// seed below it ran.
    #[test]
    fn parallel_seeds_give_the_lowest_failure() {
        for jobs in [1, 2, 5] {
            let ran = Mutex::new(Vec::new());
            let run = |seed: u64| -> anyhow::Result<Option<u64>> {
                ran.lock().expect("not poisoned").push(seed);
                Ok((seed.is_multiple_of(7) && seed > 20).then_some(seed * 10))
            };
            let found = lowest_failing(3..60, jobs, &run).expect("no error");
            assert_eq!(found, Some((21, 210)), "{jobs} jobs");
            let ran = ran.into_inner().expect("not poisoned");
            assert!((3..21).all(|s| ran.contains(&s)), "{jobs} jobs: {ran:?}");
        }
        let none = lowest_failing(0..30, 3, &|_| Ok(None::<()>)).expect("no error");
        assert!(none.is_none());
    }

    /// A fault kind's name is its snake_case spelling; a misspelt one is refused.
    #[test]
    fn fault_kinds_parse_by_name_only() {
        let kinds: Vec<FaultKind> =
            serde_json::from_str(r#"["partition", "crash_region", "images_change"]"#)
                .expect("known kinds parse");
        assert_eq!(
            kinds,
            [
                FaultKind::Partition,
                FaultKind::CrashRegion,
                FaultKind::ImagesChange
            ]
        );
        let typo = serde_json::from_str::<FaultKind>(r#""image_change""#).unwrap_err();
        assert!(typo.to_string().contains("unknown variant"), "{typo}");
    }
}
