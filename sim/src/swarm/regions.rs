//! A swarm seed in a world of several regions: the seed's plan for one region, spread over
//! the regions from a random stream of its own (so the plan itself is unchanged): each
//! operation goes to a drawn region, each region crash and its restart to a drawn region,
//! some partitions cut a cluster from one region only, and some seeds add a rolling restart
//! (each region crashed and restarted in turn, never two at once). In liveness mode every
//! region restarts at the heal.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::SwarmOptions;
use crate::scenario::{Fault, Op, REGION};

/// Spreads the plan over `options.regions` regions.
pub(super) fn spread(options: &SwarmOptions, faults: &mut Vec<Fault>, ops: &mut [Op]) {
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0x5b7e_ad00_5b7e_ad00);
    let names: Vec<String> = (1..=options.regions).map(|k| format!("r{k}")).collect();
    for op in ops.iter_mut() {
        let region = Some(names.choose(&mut rng).cloned().unwrap_or_default());
        set_op_region(op, region);
    }
    let mut crashed: Option<String> = None;
    for fault in faults.iter_mut() {
        match fault {
            Fault::Crash { node, region, .. } if node == REGION => {
                *region = names.choose(&mut rng).cloned();
                crashed = region.clone();
            }
            Fault::Restart { node, region, .. } if node == REGION => {
                // The restart after a crash, or the heal's (of the first region).
                *region = crashed.take().or_else(|| names.first().cloned());
            }
            Fault::Partition { region, .. } if rng.gen_bool(0.5) => {
                *region = names.choose(&mut rng).cloned();
            }
            _ => {}
        }
    }
    let window_end = options.heal_at_ms.unwrap_or(options.duration_ms);
    if rng.gen_bool(0.3) {
        faults.extend(rolling_restart(&mut rng, &names, window_end));
    }
    if let Some(heal_at) = options.heal_at_ms {
        for name in &names {
            faults.push(Fault::Restart {
                at_ms: heal_at,
                node: REGION.to_owned(),
                region: Some(name.clone()),
            });
        }
    }
}

/// Each region in turn crashes and restarts a little later, before the next one crashes:
/// the mesh always has a region (a rolling upgrade).
fn rolling_restart(rng: &mut StdRng, names: &[String], window_end: u64) -> Vec<Fault> {
    let gap = rng.gen_range(5_000..30_000);
    let down = rng.gen_range(500..gap - 1_000);
    let span = gap * names.len() as u64;
    if window_end < 2_000 + span {
        return Vec::new();
    }
    let start = rng.gen_range(2_000..=window_end - span);
    let mut faults = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let at_ms = start + gap * k as u64;
        faults.push(Fault::Crash {
            at_ms,
            node: REGION.to_owned(),
            region: Some(name.clone()),
        });
        faults.push(Fault::Restart {
            at_ms: at_ms + down,
            node: REGION.to_owned(),
            region: Some(name.clone()),
        });
    }
    faults
}

fn set_op_region(op: &mut Op, to: Option<String>) {
    match op {
        Op::ListOsystems(o) => o.region = to,
        Op::ListClusters(o) => o.region = to,
        Op::AddLicenseKey(o) => o.region = to,
        Op::LicenseKeys(o) => o.region = to,
        Op::EnlistNode(o) => o.region = to,
        Op::Allocate(o) => o.region = to,
        Op::ReleaseNode(o) => o.region = to,
        Op::EditPreseed(o) => o.region = to,
        Op::ResolvePreseed(o) => o.region = to,
        Op::Preseed(o) => o.region = to,
        // Identity operations go to the first region (a revocation is the database's, and
        // each region acts on it; enrollment is the store's alone).
        Op::Enroll(_) | Op::Revoke(_) | Op::Remove(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::{generate, options, Mode};

    /// A seed's plan is a function of the seed and the region bound: the same twice, the same
    /// as before with one region, and with several every op and region fault names one.
    #[test]
    fn a_seed_spread_over_regions_is_deterministic_and_complete() {
        for seed in 0..40 {
            let one = generate(&options(seed, Mode::Liveness, None));
            let bound_one = generate(&options(seed, Mode::Liveness, None).with_regions(1));
            assert_eq!(toml::to_string(&one).ok(), toml::to_string(&bound_one).ok());
            let a = generate(&options(seed, Mode::Liveness, None).with_regions(3));
            let b = generate(&options(seed, Mode::Liveness, None).with_regions(3));
            assert_eq!(toml::to_string(&a).ok(), toml::to_string(&b).ok());
            assert!((1..=3).contains(&a.settings.regions));
            if a.settings.regions > 1 {
                let identity = |op: &crate::scenario::Op| {
                    use crate::scenario::Op;
                    matches!(op, Op::Enroll(_) | Op::Revoke(_) | Op::Remove(_))
                };
                let spread = |op: &crate::scenario::Op| op.region().is_some() || identity(op);
                assert!(a.ops.iter().all(spread), "seed {seed}");
                assert!(a.faults.iter().all(|f| match f {
                    crate::scenario::Fault::Crash { node, region, .. }
                    | crate::scenario::Fault::Restart { node, region, .. } =>
                        node != super::REGION || region.is_some(),
                    _ => true,
                }));
            }
            crate::scenario::validate(&a).expect("the spread plan is valid");
        }
        let drawn: std::collections::BTreeSet<usize> = (0..40)
            .map(|seed| options(seed, Mode::Safety, None).with_regions(3).regions)
            .collect();
        assert_eq!(drawn.len(), 3, "the counts drawn over 40 seeds: {drawn:?}");
    }
}
