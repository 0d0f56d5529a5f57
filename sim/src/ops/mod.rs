//! The operations a scenario runs, one kind per type, each in one place: its fields as the
//! scenario file spells them, how the trace names it, how it runs against the region's
//! service (logging the answer and holding it to the invariants) and how the answer is held
//! to the scenario's expectation. [`Op`] is the table of kinds: the one `match` over them
//! is [`each_op!`]; everything else goes through the [`Operation`] trait.
//!
//! Every operation enters through `RegionService`, as the HTTP handlers do. With the region
//! down it is not run; its expectation is held to a `region_unavailable` refusal.

use osmesh_actors::region::service::{RegionService, ServiceError};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;

use crate::trace::Source;
use crate::world::{FailureKind, State};

mod identity;
mod license;
mod nodes;
mod osystems;
mod preseed;

pub use identity::{CredentialKind, Enroll, IdentityExpect, Impersonate, Remove, Revoke};
pub use license::{mask_key, AddLicenseKey, KeyExpect, KeysExpect, LicenseKeys};
pub use nodes::{Allocate, EnlistNode, NodeExpect, ReleaseNode};
pub use osystems::{
    render_answer, render_view, ClustersExpect, ListClusters, ListExpect, ListOsystems, Read,
};
pub use preseed::{EditPreseed, Preseed, PreseedExpect, ResolvePreseed};

/// The world an operation runs in.
pub(crate) type Shared = Rc<RefCell<State>>;

/// An answer as an expectation reads it: the value, or the refusal's code.
pub type Got<T> = Result<T, String>;

/// The code an operation is refused with while the region is down.
const REGION_UNAVAILABLE: &str = "region_unavailable";

/// One kind of operation.
pub(crate) trait Operation {
    /// What a successful answer holds, as the expectation reads it.
    type Answer;
    /// What a scenario may expect of the answer; absent fields are not checked.
    type Expect;

    /// When it runs, in virtual milliseconds.
    fn at_ms(&self) -> u64;
    /// The region it is sent to (`r1`, `r2`, …); `None`: the first.
    fn region(&self) -> Option<&str> {
        None
    }
    /// How the trace names it (secrets masked).
    fn describe(&self) -> String;
    fn expect(&self) -> Option<&Self::Expect>;
    /// Runs it against the region's service: logs the answer, holds it to the invariants
    /// (a broken one fails the run as `Safety`) and records what the service acknowledged.
    async fn apply(
        &self,
        world: &Shared,
        number: usize,
        service: &RegionService,
    ) -> Got<Self::Answer>;
    /// How `got` differs from `expect`, one line per difference.
    fn problems(expect: &Self::Expect, got: &Got<Self::Answer>) -> Vec<String>;
}

/// An operation at a virtual time, entering through the region's service functions. Each
/// kind of answer has its own expectation type; absent expectations are not checked.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    ListOsystems(ListOsystems),
    /// The cluster status listing.
    ListClusters(ListClusters),
    /// Adds a license key: a cluster that knows the release must validate it first.
    AddLicenseKey(AddLicenseKey),
    /// The stored license keys.
    LicenseKeys(LicenseKeys),
    /// Enlists a ready node on `cluster`.
    EnlistNode(EnlistNode),
    /// Allocates a ready node that can install `osystem/distro_series` on `arch`.
    Allocate(Allocate),
    /// Returns the node named `hostname` to ready.
    ReleaseNode(ReleaseNode),
    /// An operator's edit of preseed `name`, based on a version.
    EditPreseed(EditPreseed),
    /// Ends a preseed's conflict by making `version` current.
    ResolvePreseed(ResolvePreseed),
    /// Shows preseed `name` and its history.
    Preseed(Preseed),
    /// Issues `cluster` a new credential (issue 13).
    Enroll(Enroll),
    /// Revokes `cluster`: its links are cut at once and it is refused afterwards.
    Revoke(Revoke),
    /// Forgets disconnected `cluster`, its snapshot and its enrollment.
    Remove(Remove),
}

/// `$body` with `$op` bound to the operation inside `$value` (an `&Op`), whatever its kind.
macro_rules! each_op {
    ($value:expr, $op:ident => $body:expr) => {
        match $value {
            Op::ListOsystems($op) => $body,
            Op::ListClusters($op) => $body,
            Op::AddLicenseKey($op) => $body,
            Op::LicenseKeys($op) => $body,
            Op::EnlistNode($op) => $body,
            Op::Allocate($op) => $body,
            Op::ReleaseNode($op) => $body,
            Op::EditPreseed($op) => $body,
            Op::ResolvePreseed($op) => $body,
            Op::Preseed($op) => $body,
            Op::Enroll($op) => $body,
            Op::Revoke($op) => $body,
            Op::Remove($op) => $body,
        }
    };
}

impl Op {
    pub fn at_ms(&self) -> u64 {
        each_op!(self, op => op.at_ms())
    }

    /// The region the operation is sent to, when it names one.
    pub fn region(&self) -> Option<&str> {
        each_op!(self, op => op.region())
    }

    /// How the trace names the operation.
    pub fn describe(&self) -> String {
        each_op!(self, op => op.describe())
    }

    /// Runs operation `number` (counted from 1) in `world`.
    pub(crate) async fn run(&self, world: Shared, number: usize) {
        each_op!(self, op => drive(op, &world, number).await)
    }
}

/// Runs one operation: logs it, applies it if its region is up, checks its expectation.
async fn drive<O: Operation>(op: &O, world: &Shared, number: usize) {
    let service = world.borrow().service_of(op.region());
    let at = op.region().map(|r| format!(" at {r}")).unwrap_or_default();
    let got = match service {
        None => {
            let line = format!("op#{number} {}{at}: region down", op.describe());
            world.borrow().log(Source::Op, line);
            Err(REGION_UNAVAILABLE.to_owned())
        }
        Some(service) => {
            let line = format!("op#{number} {}{at}", op.describe());
            world.borrow().log(Source::Op, line);
            op.apply(world, number, &service).await
        }
    };
    if let Some(expect) = op.expect() {
        report(world, number, O::problems(expect, &got));
    }
}

/// Lines for the final state: stored keys (masked), nodes and preseeds; none when empty.
pub(crate) async fn final_lines(service: &RegionService) -> Vec<String> {
    let mut lines = license::final_lines(service).await;
    lines.extend(nodes::final_lines(service).await);
    lines.extend(preseed::final_lines(service).await);
    lines
}

fn log(world: &Shared, text: String) {
    world.borrow().log(Source::Answer, text);
}

/// Logs a refusal and gives its code.
fn refused<T>(world: &Shared, number: usize, err: &ServiceError) -> Got<T> {
    log(
        world,
        format!("op#{number} refused: {} ({})", err.code, err.message),
    );
    Err(err.code.to_owned())
}

/// Fails the run as `Expectation` when there are problems.
fn report(world: &Shared, number: usize, problems: Vec<String>) {
    if problems.is_empty() {
        return;
    }
    world.borrow_mut().fail(
        FailureKind::Expectation,
        format!("op#{number}: {}", problems.join("; ")),
    );
}

fn safety(world: &Shared, message: String) {
    world.borrow_mut().fail(FailureKind::Safety, message);
}

/// Whether a refusal (or its absence) is the expected one.
fn refusal_problems<T>(error: &Option<String>, got: &Got<T>, problems: &mut Vec<String>) {
    match (got, error) {
        (Err(code), Some(want)) if code == want => {}
        (Err(code), want) => problems.push(format!("refused with {code}, expected {want:?}")),
        (Ok(_), Some(want)) => problems.push(format!("succeeded, expected refusal {want}")),
        (Ok(_), None) => {}
    }
}

/// A difference between what was seen and what was wanted, when something was wanted.
fn differs<T: PartialEq + std::fmt::Debug>(what: &str, is: &T, want: Option<&T>) -> Option<String> {
    want.filter(|w| *w != is)
        .map(|w| format!("{what} {is:?}, expected {w:?}"))
}
