//! Preseed operations: an operator's edit, a conflict's resolution, and reading one preseed.
//! Each answer shows the preseed with its history; every version shown is recorded as
//! acknowledged, so the durability checks hold the store to it.

use osmesh_actors::region::preseed::{PreseedEdit, PreseedVersionView, PreseedView};
use osmesh_actors::region::service::{RegionService, ServiceError};
use serde::{Deserialize, Serialize};

use super::{log, refusal_problems, refused, Got, Operation, Shared};

/// What a preseed operation's answer must say.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PreseedExpect {
    /// The current version's number.
    pub current: Option<i32>,
    /// The current version's origin: `operator` or a cluster id.
    pub origin: Option<String>,
    pub in_conflict: Option<bool>,
    /// Every version number in the history, oldest first.
    pub versions: Option<Vec<i32>>,
    /// Refused with this code (e.g. `stale_preseed`).
    pub error: Option<String>,
}

/// A preseed as answered, with its history.
pub type PreseedAnswer = (PreseedView, Vec<PreseedVersionView>);

/// `edit_preseed`: an operator's edit of preseed `name`, based on a version.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EditPreseed {
    pub at_ms: u64,
    /// The region it is sent to (`r1`, `r2`, …); the first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub name: String,
    pub content: String,
    pub based_on_version: i32,
    #[serde(default)]
    pub expect: Option<PreseedExpect>,
}

impl Operation for EditPreseed {
    type Answer = PreseedAnswer;
    type Expect = PreseedExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    fn describe(&self) -> String {
        let (name, base, len) = (&self.name, self.based_on_version, self.content.len());
        format!("edit_preseed {name} based on v{base} ({len} bytes)")
    }

    fn expect(&self) -> Option<&PreseedExpect> {
        self.expect.as_ref()
    }

    async fn apply(
        &self,
        world: &Shared,
        number: usize,
        service: &RegionService,
    ) -> Got<PreseedAnswer> {
        let edit = PreseedEdit {
            content: self.content.clone(),
            based_on_version: self.based_on_version,
        };
        let result = service.edit_preseed(&self.name, &edit).await;
        preseed_answer(world, number, service, &self.name, result).await
    }

    fn problems(expect: &PreseedExpect, got: &Got<PreseedAnswer>) -> Vec<String> {
        preseed_problems(expect, got)
    }
}

/// `resolve_preseed`: ends preseed `name`'s conflict by making `version` current.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResolvePreseed {
    pub at_ms: u64,
    /// The region it is sent to (`r1`, `r2`, …); the first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub name: String,
    pub version: i32,
    #[serde(default)]
    pub expect: Option<PreseedExpect>,
}

impl Operation for ResolvePreseed {
    type Answer = PreseedAnswer;
    type Expect = PreseedExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    fn describe(&self) -> String {
        format!("resolve_preseed {} to v{}", self.name, self.version)
    }

    fn expect(&self) -> Option<&PreseedExpect> {
        self.expect.as_ref()
    }

    async fn apply(
        &self,
        world: &Shared,
        number: usize,
        service: &RegionService,
    ) -> Got<PreseedAnswer> {
        let result = service.resolve_preseed(&self.name, self.version).await;
        preseed_answer(world, number, service, &self.name, result).await
    }

    fn problems(expect: &PreseedExpect, got: &Got<PreseedAnswer>) -> Vec<String> {
        preseed_problems(expect, got)
    }
}

/// `preseed`: shows preseed `name` and its history.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preseed {
    pub at_ms: u64,
    /// The region it is sent to (`r1`, `r2`, …); the first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub name: String,
    #[serde(default)]
    pub expect: Option<PreseedExpect>,
}

impl Operation for Preseed {
    type Answer = PreseedAnswer;
    type Expect = PreseedExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    fn describe(&self) -> String {
        format!("preseed {}", self.name)
    }

    fn expect(&self) -> Option<&PreseedExpect> {
        self.expect.as_ref()
    }

    async fn apply(
        &self,
        world: &Shared,
        number: usize,
        service: &RegionService,
    ) -> Got<PreseedAnswer> {
        let result = service.preseed(&self.name).await;
        preseed_answer(world, number, service, &self.name, result).await
    }

    fn problems(expect: &PreseedExpect, got: &Got<PreseedAnswer>) -> Vec<String> {
        preseed_problems(expect, got)
    }
}

/// Logs a preseed answer with its history and records every version it showed as
/// acknowledged.
async fn preseed_answer(
    world: &Shared,
    number: usize,
    service: &RegionService,
    name: &str,
    result: Result<PreseedView, ServiceError>,
) -> Got<PreseedAnswer> {
    let preseed = match result {
        Ok(preseed) => preseed,
        Err(err) => return refused(world, number, &err),
    };
    let history = service.preseed_history(name).await.unwrap_or_default();
    let (line, past) = (preseed_line(&preseed), history_line(&history));
    log(
        world,
        format!("op#{number} preseed {name}: {line}; history {past}"),
    );
    let mut s = world.borrow_mut();
    for v in history.iter().chain([&preseed.current]) {
        s.acked
            .preseed_versions
            .insert((name.to_owned(), v.version), v.content_hash.clone());
    }
    Ok((preseed, history))
}

fn preseed_problems(expect: &PreseedExpect, got: &Got<PreseedAnswer>) -> Vec<String> {
    let mut problems = Vec::new();
    refusal_problems(&expect.error, got, &mut problems);
    let Ok((preseed, history)) = got else {
        return problems;
    };
    let current = preseed.current.version;
    if let Some(want) = expect.current.filter(|v| *v != current) {
        problems.push(format!("current v{current}, expected v{want}"));
    }
    let from = origin(&preseed.current);
    if let Some(want) = expect.origin.as_ref().filter(|o| **o != from) {
        problems.push(format!("current from {from}, expected {want}"));
    }
    if let Some(want) = expect.in_conflict.filter(|c| *c != preseed.in_conflict) {
        let is = preseed.in_conflict;
        problems.push(format!("in conflict {is}, expected {want}"));
    }
    let versions: Vec<i32> = history.iter().map(|v| v.version).collect();
    if let Some(want) = expect.versions.as_ref().filter(|v| **v != versions) {
        problems.push(format!("versions {versions:?}, expected {want:?}"));
    }
    problems
}

/// Every preseed with its history, for the final state.
pub(super) async fn final_lines(service: &RegionService) -> Vec<String> {
    let mut lines = Vec::new();
    let Ok(preseeds) = service.preseeds().await else {
        return lines;
    };
    for preseed in preseeds {
        let name = &preseed.name;
        let history = service.preseed_history(name).await.unwrap_or_default();
        let (line, past) = (preseed_line(&preseed), history_line(&history));
        lines.push(format!("preseed {name}: {line}; history {past}"));
    }
    lines
}

fn origin(version: &PreseedVersionView) -> String {
    version
        .origin_cluster
        .as_ref()
        .map_or_else(|| version.origin.clone(), ToString::to_string)
}

fn preseed_line(preseed: &PreseedView) -> String {
    let current = &preseed.current;
    let mut line = format!("current v{} ({})", current.version, origin(current));
    if let Some(c) = &preseed.conflict {
        line.push_str(&format!(
            ", in conflict: operator v{} vs cluster v{}",
            c.operator_version, c.cluster_version
        ));
    }
    line
}

fn history_line(history: &[PreseedVersionView]) -> String {
    history
        .iter()
        .map(|v| format!("v{} {}", v.version, origin(v)))
        .collect::<Vec<_>>()
        .join(", ")
}
