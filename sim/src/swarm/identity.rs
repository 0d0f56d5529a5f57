//! A swarm seed's identity plan (issue 13), drawn from an RNG of its own so that the fault
//! plans of seeds without one stay as they were: in an enrolled world, one cluster is
//! revoked, impersonated with a forged or its revoked credential, sometimes removed, and
//! enrolled again.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::scenario::{CredentialKind, Enroll, Fault, Impersonate, Op, Remove, Revoke};

/// The chance that a seed runs an identity plan: modest, so most seeds stay as they were.
const ODDS: f64 = 0.3;

/// What a seed does to one cluster's identity.
#[derive(Clone, Debug, Serialize)]
pub struct IdentityPlan {
    pub cluster: String,
    pub revoke_at_ms: u64,
    pub impersonate_at_ms: u64,
    pub credential: CredentialKind,
    /// When the attacker stops.
    pub attack_until_ms: u64,
    /// When the revoked cluster is removed, if it is.
    pub remove_at_ms: Option<u64>,
    pub enroll_again_at_ms: u64,
}

impl IdentityPlan {
    /// The plan of `seed` among `clusters` clusters whose faults end by `window_end_ms`, if
    /// it draws one. A removal may be drawn whatever else the seed does: a cluster that
    /// nodes, license keys or preseed versions name is removed too (its row is kept, hidden,
    /// for that history).
    pub fn draw(seed: u64, clusters: usize, window_end_ms: u64) -> Option<IdentityPlan> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x1de7_1de7_1de7_1de7);
        if !rng.gen_bool(ODDS) || window_end_ms < 40_000 {
            return None;
        }
        let cluster = format!("c{}", rng.gen_range(1..=clusters.max(1)));
        let revoke_at_ms = rng.gen_range(3_000..window_end_ms - 30_000);
        let enroll_again_at_ms =
            (revoke_at_ms + rng.gen_range(10_000..60_000)).min(window_end_ms - 1_000);
        let impersonate_at_ms = revoke_at_ms + rng.gen_range(200..5_000);
        let credential = if rng.gen_bool(0.5) {
            CredentialKind::Revoked
        } else {
            CredentialKind::Forged
        };
        let remove_at_ms = rng
            .gen_bool(0.5)
            .then(|| revoke_at_ms + rng.gen_range(1_000..5_000))
            .filter(|at| *at < enroll_again_at_ms);
        Some(IdentityPlan {
            cluster,
            revoke_at_ms,
            impersonate_at_ms,
            credential,
            attack_until_ms: enroll_again_at_ms + rng.gen_range(0..30_000),
            remove_at_ms,
            enroll_again_at_ms,
        })
    }

    /// Its operations and its fault.
    pub fn apply(&self, faults: &mut Vec<Fault>, ops: &mut Vec<Op>) {
        let cluster = self.cluster.clone();
        ops.push(Op::Revoke(Revoke {
            at_ms: self.revoke_at_ms,
            cluster: cluster.clone(),
            expect: None,
        }));
        if let Some(at_ms) = self.remove_at_ms {
            ops.push(Op::Remove(Remove {
                at_ms,
                cluster: cluster.clone(),
                expect: None,
            }));
        }
        ops.push(Op::Enroll(Enroll {
            at_ms: self.enroll_again_at_ms,
            cluster: cluster.clone(),
            expect: None,
        }));
        faults.push(Fault::Impersonate(Impersonate {
            at_ms: self.impersonate_at_ms,
            cluster,
            credential: self.credential,
            images: vec!["custom/amd64/generic/implant".into()],
            until_ms: Some(self.attack_until_ms),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{options, Mode};

    /// A plan revokes before it attacks, removes, or enrolls again, all inside the fault
    /// window; a modest share of seeds draws one.
    #[test]
    fn plans_are_ordered_and_modest() {
        let mut drawn = 0;
        for seed in 0..500 {
            for mode in [Mode::Safety, Mode::Liveness] {
                let o = options(seed, mode, None);
                let Some(plan) = &o.identity else { continue };
                drawn += 1;
                let window_end = o.heal_at_ms.unwrap_or(o.duration_ms);
                assert!(plan.revoke_at_ms < plan.impersonate_at_ms, "seed {seed}");
                assert!(plan.impersonate_at_ms < window_end, "seed {seed}");
                assert!(plan.revoke_at_ms < plan.enroll_again_at_ms, "seed {seed}");
                assert!(plan.enroll_again_at_ms < window_end, "seed {seed}");
                if let Some(at) = plan.remove_at_ms {
                    assert!(plan.revoke_at_ms < at && at < plan.enroll_again_at_ms);
                }
                let n: usize = plan.cluster[1..].parse().expect("a cluster cN");
                assert!((1..=o.clusters).contains(&n), "seed {seed}");
            }
        }
        assert!(
            (200..=400).contains(&drawn),
            "{drawn} of 1000 runs drew a plan"
        );
    }
}
