//! Cluster identity (issue 13): an operator's `enroll`, `revoke` and `remove`, run as
//! regiond's `/api/v1/clusters/{name}/…` handlers run them, and the `impersonate` fault's
//! description. What the world does for each is in `world/identity.rs`; the invariant the
//! oracle holds answers to is `invariants::credentials_respected`.

use osmesh_actors::region::service::{RegionService, ServiceError};
use osmesh_core::ClusterId;
use serde::{Deserialize, Serialize};

use super::{log, refusal_problems, refused, Got, Operation, Shared};

/// `enroll`: issues `cluster` a new credential, recorded in the store as the product records
/// an issued certificate (its token created and redeemed at once: the simulated cluster
/// redeems it at its next dial, which the simulator does not model). Its next dial presents
/// it; one enrolled while running in compatibility mode presents it from its next start.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Enroll {
    pub at_ms: u64,
    pub cluster: String,
    #[serde(default)]
    pub expect: Option<IdentityExpect>,
}

/// `revoke`: stores the revocation and cuts the cluster's links at once.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    pub at_ms: u64,
    pub cluster: String,
    #[serde(default)]
    pub expect: Option<IdentityExpect>,
}

/// `remove`: forgets a disconnected cluster, its snapshot and its enrollment.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Remove {
    pub at_ms: u64,
    pub cluster: String,
    #[serde(default)]
    pub expect: Option<IdentityExpect>,
}

/// What an identity operation must answer; absent fields are not checked.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdentityExpect {
    /// Refused with this code (`no_such_cluster`, `cluster_connected`, …).
    pub error: Option<String>,
    /// Revocation: whether a registered link was cut.
    pub link_closed: Option<bool>,
}

/// The credential an attacker presents (the `impersonate` fault).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A certificate naming the cluster that is not the one on record (never issued, or
    /// superseded): the simulated TLS checks no signature, so only the region's own rule
    /// refuses it.
    #[default]
    Forged,
    /// The certificate the cluster held when it was last revoked (a stolen key); a forged
    /// one if it was never revoked.
    Revoked,
}

/// The releases an attacker reports unless told otherwise: nobody else's.
fn poison_images() -> Vec<String> {
    vec!["custom/amd64/generic/implant".into()]
}

/// `impersonate` (a fault): an attacker dials the region as `cluster` with `credential`,
/// registers and reports `images` as the cluster's, redialing as a cluster does, until
/// `until_ms` (or the end of the run).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Impersonate {
    pub at_ms: u64,
    pub cluster: String,
    #[serde(default)]
    pub credential: CredentialKind,
    #[serde(default = "poison_images")]
    pub images: Vec<String>,
    #[serde(default)]
    pub until_ms: Option<u64>,
}

impl CredentialKind {
    /// As the scenario file spells it.
    pub fn name(self) -> &'static str {
        match self {
            CredentialKind::Forged => "forged",
            CredentialKind::Revoked => "revoked",
        }
    }
}

impl Impersonate {
    pub fn describe(&self) -> String {
        let until = self
            .until_ms
            .map_or(String::new(), |t| format!(" until {t} ms"));
        format!(
            "impersonate {} ({} credential) reporting [{}]{until}",
            self.cluster,
            self.credential.name(),
            self.images.join(", ")
        )
    }
}

fn id(cluster: &str) -> ClusterId {
    ClusterId::new(cluster)
}

impl Operation for Enroll {
    type Answer = ();
    type Expect = IdentityExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn describe(&self) -> String {
        format!("enroll {}", self.cluster)
    }

    fn expect(&self) -> Option<&IdentityExpect> {
        self.expect.as_ref()
    }

    async fn apply(&self, world: &Shared, number: usize, _service: &RegionService) -> Got<()> {
        let enrolled = world.borrow_mut().enroll(&self.cluster);
        match enrolled {
            Ok(()) => {
                log(world, format!("op#{number} enrolled {}", self.cluster));
                Ok(())
            }
            Err(message) => {
                let err = ServiceError::unavailable("store_unavailable", message);
                refused(world, number, &err)
            }
        }
    }

    fn problems(expect: &IdentityExpect, got: &Got<()>) -> Vec<String> {
        let mut problems = Vec::new();
        refusal_problems(&expect.error, got, &mut problems);
        problems
    }
}

impl Operation for Revoke {
    /// Whether a registered link was cut.
    type Answer = bool;
    type Expect = IdentityExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn describe(&self) -> String {
        format!("revoke {}", self.cluster)
    }

    fn expect(&self) -> Option<&IdentityExpect> {
        self.expect.as_ref()
    }

    async fn apply(&self, world: &Shared, number: usize, service: &RegionService) -> Got<bool> {
        match service.revoke_cluster(&id(&self.cluster)).await {
            Ok(link_closed) => {
                world.borrow_mut().revoked(&self.cluster);
                let line = format!(
                    "op#{number} revoked {} (link closed: {link_closed})",
                    self.cluster
                );
                log(world, line);
                Ok(link_closed)
            }
            Err(err) => refused(world, number, &err),
        }
    }

    fn problems(expect: &IdentityExpect, got: &Got<bool>) -> Vec<String> {
        let mut problems = Vec::new();
        refusal_problems(&expect.error, got, &mut problems);
        if let (Ok(closed), Some(want)) = (got, expect.link_closed) {
            if *closed != want {
                problems.push(format!("link closed {closed}, expected {want}"));
            }
        }
        problems
    }
}

impl Operation for Remove {
    type Answer = ();
    type Expect = IdentityExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn describe(&self) -> String {
        format!("remove {}", self.cluster)
    }

    fn expect(&self) -> Option<&IdentityExpect> {
        self.expect.as_ref()
    }

    async fn apply(&self, world: &Shared, number: usize, service: &RegionService) -> Got<()> {
        let result = service.remove_cluster(&id(&self.cluster)).await;
        match result {
            Ok(()) => {
                world.borrow_mut().removed(&self.cluster);
                log(world, format!("op#{number} removed {}", self.cluster));
                Ok(())
            }
            Err(err) => refused(world, number, &err),
        }
    }

    fn problems(expect: &IdentityExpect, got: &Got<()>) -> Vec<String> {
        let mut problems = Vec::new();
        refusal_problems(&expect.error, got, &mut problems);
        problems
    }
}
