//! The read operations: the OS listing (cached or live) and the cluster status listing.

use osmesh_actors::region::service::{RegionService, DEFAULT_LIVE_TIMEOUT};
use osmesh_actors::region::{ClusterStatus, OsystemsAnswer, ReadPath};
use osmesh_core::{ClusterId, MeshView, NoAnswerReason};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;
use tokio::time::Instant;

use super::{differs, log, refused, Got, Operation, Shared};
use crate::invariants;
use crate::trace::Source;
use crate::world::FailureKind;

/// Which read path an operation uses.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Read {
    Cached,
    Live,
}

impl fmt::Display for Read {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Read::Cached => "cached",
            Read::Live => "live",
        })
    }
}

/// `list_osystems`: the merged view, from the cached snapshots or a live fan-out.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListOsystems {
    pub at_ms: u64,
    /// The region it is sent to (`r1`, `r2`, …); the first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub read: Read,
    /// Live only; the service's default when absent.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub expect: Option<ListExpect>,
}

/// What a `list_osystems` answer must say. Absent fields are not checked.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListExpect {
    /// Exactly these clusters answered.
    pub answered: Option<Vec<String>>,
    /// Exactly these did not, with the reason as displayed (`not connected`, `timed out`,
    /// or an `error: …` prefix).
    pub not_answered: Option<BTreeMap<String, String>>,
    /// `"os/release/arch"` → exactly the clusters the view calls it available on.
    pub available: Option<BTreeMap<String, Vec<String>>>,
    /// `"os/release"` → exactly the clusters that support it.
    pub supported: Option<BTreeMap<String, Vec<String>>>,
    /// The answer is a refusal with this code (e.g. `region_unavailable`).
    pub error: Option<String>,
}

impl Operation for ListOsystems {
    type Answer = OsystemsAnswer;
    type Expect = ListExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    fn describe(&self) -> String {
        match self.timeout_ms {
            Some(t) => format!("list_osystems {} timeout {t}ms", self.read),
            None => format!("list_osystems {}", self.read),
        }
    }

    fn expect(&self) -> Option<&ListExpect> {
        self.expect.as_ref()
    }

    async fn apply(
        &self,
        world: &Shared,
        number: usize,
        service: &RegionService,
    ) -> Got<OsystemsAnswer> {
        let region = self.region.as_deref();
        let generation = world.borrow().region_generation(region);
        let issued = Instant::now();
        let issued_ms = world.borrow().now_ms();
        let result = match self.read {
            Read::Cached => service.osystems_cached().await,
            Read::Live => {
                let timeout = self
                    .timeout_ms
                    .map_or(DEFAULT_LIVE_TIMEOUT, Duration::from_millis);
                service.osystems_live(timeout).await
            }
        };
        let waited = u64::try_from(issued.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok(answer) => {
                answered(world, number, &answer, region, issued_ms, waited);
                Ok(answer)
            }
            Err(err) => {
                let got = refused(world, number, &err);
                let same_region = world.borrow().region_generation(region) == generation;
                if err.code == "region_unavailable" && same_region {
                    crate::world::region_died(world, &err);
                }
                got
            }
        }
    }

    fn problems(expect: &ListExpect, got: &Got<OsystemsAnswer>) -> Vec<String> {
        let answer = match got {
            Err(code) if expect.error.as_deref() == Some(code.as_str()) => return vec![],
            Err(code) => return vec![format!("refused with {code}, expected {:?}", expect.error)],
            Ok(answer) => answer,
        };
        let mut problems = Vec::new();
        if let Some(code) = &expect.error {
            problems.push(format!("answered, expected refusal {code}"));
        }
        let view = &answer.view;
        let answered: Vec<String> = view.answered.iter().map(|c| c.to_string()).collect();
        problems.extend(differs("answered", &answered, expect.answered.as_ref()));
        let not_answered: BTreeMap<String, String> = view
            .not_answered
            .iter()
            .map(|(c, r)| (c.to_string(), reason_label(r)))
            .collect();
        problems.extend(differs(
            "not answered",
            &not_answered,
            expect.not_answered.as_ref(),
        ));
        for (key, clusters) in expect.available.iter().flatten() {
            let is = available_on(answer, key);
            problems.extend(differs(&format!("{key} available on"), &is, Some(clusters)));
        }
        for (key, clusters) in expect.supported.iter().flatten() {
            let is = supported_by(view, key);
            problems.extend(differs(&format!("{key} supported by"), &is, Some(clusters)));
        }
        problems
    }
}

/// Logs an answer and holds it to the invariants every answer must satisfy, and a live
/// one to its deadline.
fn answered(
    world: &Shared,
    number: usize,
    answer: &OsystemsAnswer,
    region: Option<&str>,
    issued_ms: u64,
    waited: u64,
) {
    {
        let s = world.borrow();
        for line in render_answer(number, answer, waited) {
            s.log(Source::Answer, line);
        }
    }
    let mut s = world.borrow_mut();
    s.check_answer(answer, region, issued_ms);
    if let Some(deadline) = answer.deadline_ms {
        let in_time = invariants::live_answer_in_time(waited, deadline).and_then(|()| {
            invariants::live_answer_in_time(answer.elapsed_ms.unwrap_or(0), deadline)
        });
        if let Err(message) = in_time {
            s.fail(FailureKind::Safety, message);
        }
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

/// The clusters the view says support `os/release`, sorted.
fn supported_by(view: &MeshView, key: &str) -> Vec<String> {
    let (os, release) = key.split_once('/').unwrap_or((key, ""));
    view.release(os, release)
        .map(|r| r.supported_by.iter().map(|c| c.to_string()).collect())
        .unwrap_or_default()
}

fn reason_label(reason: &NoAnswerReason) -> String {
    match reason {
        NoAnswerReason::Error(_) => "error".into(),
        other => other.to_string(),
    }
}

/// `list_clusters`: the cluster status listing.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListClusters {
    pub at_ms: u64,
    /// The region it is sent to (`r1`, `r2`, …); the first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub expect: Option<ClustersExpect>,
}

/// What a `list_clusters` answer must say.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClustersExpect {
    pub known: Option<Vec<String>>,
    pub connected: Option<Vec<String>>,
}

impl Operation for ListClusters {
    type Answer = Vec<ClusterStatus>;
    type Expect = ClustersExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    fn describe(&self) -> String {
        "list_clusters".into()
    }

    fn expect(&self) -> Option<&ClustersExpect> {
        self.expect.as_ref()
    }

    async fn apply(
        &self,
        world: &Shared,
        number: usize,
        service: &RegionService,
    ) -> Got<Vec<ClusterStatus>> {
        let statuses = match service.clusters().await {
            Ok(statuses) => statuses,
            Err(err) => {
                log(world, format!("op#{number} refused: {}", err.code));
                return Err(err.code.to_owned());
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
        log(world, format!("op#{number} clusters: {line}"));
        Ok(statuses)
    }

    /// A refusal is not checked: the listing has no expected error.
    fn problems(expect: &ClustersExpect, got: &Got<Vec<ClusterStatus>>) -> Vec<String> {
        let Ok(statuses) = got else {
            return vec![];
        };
        let known: Vec<String> = statuses.iter().map(|c| c.id.to_string()).collect();
        let connected: Vec<String> = statuses
            .iter()
            .filter(|c| c.connected)
            .map(|c| c.id.to_string())
            .collect();
        let mut problems = Vec::new();
        if expect.known.as_ref().is_some_and(|want| want != &known) {
            problems.push(format!("known {known:?}, expected {:?}", expect.known));
        }
        if expect.connected.as_ref().is_some_and(|w| w != &connected) {
            let want = &expect.connected;
            problems.push(format!("connected {connected:?}, expected {want:?}"));
        }
        problems
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
    let source = match answer.source {
        ReadPath::Cached => "cached",
        ReadPath::Live => "live",
    };
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
pub fn render_view(view: &MeshView) -> Vec<String> {
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
