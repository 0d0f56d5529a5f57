//! Node operations: enlisting a node, allocating one for an OS, releasing one.

use osmesh_actors::region::nodes::{AllocateRequest, EnlistRequest, NodeView};
use osmesh_actors::region::service::{RegionService, ServiceError};
use osmesh_core::ClusterId;
use serde::{Deserialize, Serialize};

use super::{log, refusal_problems, refused, Got, Operation, Shared};
use crate::invariants::{self, AckedAllocation};
use crate::world::FailureKind;

/// What a node operation's answer must say: the node, or a refusal.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeExpect {
    pub hostname: Option<String>,
    /// The node's cluster, exactly.
    pub cluster: Option<String>,
    /// The node's cluster is one of these.
    pub cluster_in: Option<Vec<String>>,
    /// Refused with this code (e.g. `no_cluster_with_image`).
    pub error: Option<String>,
}

/// How a node answer differs from a [`NodeExpect`]; every node operation checks the same.
fn node_problems(expect: &NodeExpect, got: &Got<NodeView>) -> Vec<String> {
    let mut problems = Vec::new();
    refusal_problems(&expect.error, got, &mut problems);
    let Ok(node) = got else {
        return problems;
    };
    let cluster = node.cluster.to_string();
    if let Some(want) = expect.hostname.as_ref().filter(|h| **h != node.hostname) {
        problems.push(format!("node {}, expected {want}", node.hostname));
    }
    if let Some(want) = expect.cluster.as_ref().filter(|c| **c != cluster) {
        problems.push(format!("on {cluster}, expected {want}"));
    }
    if let Some(want) = expect.cluster_in.as_ref().filter(|c| !c.contains(&cluster)) {
        problems.push(format!("on {cluster}, expected one of {want:?}"));
    }
    problems
}

/// Logs a node answer (`verb`: what happened to it) and gives the node or the refusal.
fn node_answer(
    world: &Shared,
    number: usize,
    verb: &str,
    result: Result<NodeView, ServiceError>,
) -> Got<NodeView> {
    match result {
        Ok(node) => {
            log(world, format!("op#{number} {verb} {}", node_line(&node)));
            Ok(node)
        }
        Err(err) => refused(world, number, &err),
    }
}

/// `enlist_node`: a ready node on `cluster`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnlistNode {
    pub at_ms: u64,
    /// The region it is sent to (`r1`, `r2`, …); the first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub hostname: String,
    pub arch: String,
    #[serde(default)]
    pub subarch: Option<String>,
    pub cluster: String,
    #[serde(default)]
    pub expect: Option<NodeExpect>,
}

impl Operation for EnlistNode {
    type Answer = NodeView;
    type Expect = NodeExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    fn describe(&self) -> String {
        let subarch = self.subarch.as_deref().unwrap_or("generic");
        let (hostname, arch, cluster) = (&self.hostname, &self.arch, &self.cluster);
        format!("enlist_node {hostname} {arch}/{subarch} on {cluster}")
    }

    fn expect(&self) -> Option<&NodeExpect> {
        self.expect.as_ref()
    }

    /// Records the node as the world enlisted it, for the allocation invariants.
    async fn apply(&self, world: &Shared, number: usize, service: &RegionService) -> Got<NodeView> {
        let request = EnlistRequest {
            hostname: self.hostname.clone(),
            arch: self.arch.clone(),
            subarch: self.subarch.clone(),
            cluster: ClusterId::new(self.cluster.clone()),
            system_id: None,
            power_type: None,
            power_parameters: None,
        };
        let result = service.enlist_node(&request).await;
        let got = node_answer(world, number, "enlisted", result);
        if let Ok(node) = &got {
            let enlisted = invariants::Enlisted {
                id: node.id,
                hostname: request.hostname.clone(),
                arch: request.arch.clone(),
                cluster: request.cluster.to_string(),
            };
            world.borrow_mut().enlisted.insert(node.id, enlisted);
        }
        got
    }

    fn problems(expect: &NodeExpect, got: &Got<NodeView>) -> Vec<String> {
        node_problems(expect, got)
    }
}

/// `allocate`: a ready node that can install `osystem/distro_series` on `arch`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Allocate {
    pub at_ms: u64,
    /// The region it is sent to (`r1`, `r2`, …); the first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub osystem: String,
    pub distro_series: String,
    pub arch: String,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub expect: Option<NodeExpect>,
}

impl Operation for Allocate {
    type Answer = NodeView;
    type Expect = NodeExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    fn describe(&self) -> String {
        let named = self
            .hostname
            .as_deref()
            .map(|h| format!(" named {h}"))
            .unwrap_or_default();
        let (os, series, arch) = (&self.osystem, &self.distro_series, &self.arch);
        format!("allocate {os}/{series} {arch}{named}")
    }

    fn expect(&self) -> Option<&NodeExpect> {
        self.expect.as_ref()
    }

    /// Holds an acknowledged allocation to the invariants, then records it.
    async fn apply(&self, world: &Shared, number: usize, service: &RegionService) -> Got<NodeView> {
        let request = AllocateRequest {
            osystem: self.osystem.clone(),
            distro_series: self.distro_series.clone(),
            arch: self.arch.clone(),
            subarch: None,
            hostname: self.hostname.clone(),
        };
        let result = service.allocate_node(&request).await;
        let got = node_answer(world, number, "allocated", result);
        if let Ok(node) = &got {
            allocated(world, self.region.as_deref(), &request, node);
            on_connected_cluster(world, service, node).await;
        }
        got
    }

    fn problems(expect: &NodeExpect, got: &Got<NodeView>) -> Vec<String> {
        node_problems(expect, got)
    }
}

/// Holds an acknowledged allocation to the invariants, then records it.
fn allocated(world: &Shared, region: Option<&str>, request: &AllocateRequest, node: &NodeView) {
    let region = world.borrow().region_addr(region);
    let allocation = AckedAllocation {
        region,
        hostname: node.hostname.clone(),
        cluster: node.cluster.to_string(),
        osystem: request.osystem.clone(),
        distro_series: request.distro_series.clone(),
    };
    let mut s = world.borrow_mut();
    s.observe();
    let now = s.now_ms();
    let Some(enlisted) = s.enlisted.get(&node.id).cloned() else {
        let message = format!(
            "node {} (id {}) was allocated, but the world never enlisted it",
            node.hostname, node.id
        );
        s.fail(FailureKind::Safety, message);
        return;
    };
    let sound = invariants::allocation_is_sound(
        &enlisted,
        &request.arch,
        &allocation,
        &s.acked,
        &s.oracle,
        now,
    );
    match sound {
        Ok(()) => {
            s.acked.allocations.insert(node.id, allocation);
        }
        Err(message) => s.fail(FailureKind::Safety, message),
    }
}

/// Holds an acknowledged allocation to "no allocation lands on a disconnected cluster".
async fn on_connected_cluster(world: &Shared, service: &RegionService, node: &NodeView) {
    let Ok(answer) = service.osystems_cached().await else {
        return;
    };
    let at = node.allocated_at_ms.unwrap_or(node.created_at_ms);
    if let Err(message) = invariants::allocation_on_connected_cluster(&node.cluster, at, &answer) {
        world.borrow_mut().fail(FailureKind::Safety, message);
    }
}

/// `release_node`: the node named `hostname` back to ready.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReleaseNode {
    pub at_ms: u64,
    /// The region it is sent to (`r1`, `r2`, …); the first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub hostname: String,
    #[serde(default)]
    pub expect: Option<NodeExpect>,
}

impl Operation for ReleaseNode {
    type Answer = NodeView;
    type Expect = NodeExpect;

    fn at_ms(&self) -> u64 {
        self.at_ms
    }

    fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    fn describe(&self) -> String {
        format!("release_node {}", self.hostname)
    }

    fn expect(&self) -> Option<&NodeExpect> {
        self.expect.as_ref()
    }

    /// An acknowledged release ends the allocation the durability checks hold.
    async fn apply(&self, world: &Shared, number: usize, service: &RegionService) -> Got<NodeView> {
        let result = release(service, &self.hostname).await;
        let got = node_answer(world, number, "released", result);
        if let Ok(node) = &got {
            world.borrow_mut().acked.allocations.remove(&node.id);
        }
        got
    }

    fn problems(expect: &NodeExpect, got: &Got<NodeView>) -> Vec<String> {
        node_problems(expect, got)
    }
}

/// Releases the node named `hostname`.
async fn release(service: &RegionService, hostname: &str) -> Result<NodeView, ServiceError> {
    let nodes = service.nodes().await?;
    let Some(node) = nodes.iter().find(|n| n.hostname == hostname) else {
        return Err(ServiceError::not_found(
            "no_such_node",
            format!("no node named {hostname:?}"),
        ));
    };
    service.release_node(node.id).await
}

/// Every node, for the final state.
pub(super) async fn final_lines(service: &RegionService) -> Vec<String> {
    let nodes = service.nodes().await.unwrap_or_default();
    nodes
        .iter()
        .map(|node| format!("node {}", node_line(node)))
        .collect()
}

fn node_line(node: &NodeView) -> String {
    let os = match (&node.osystem, &node.distro_series) {
        (Some(os), Some(series)) => format!(" {os}/{series}"),
        _ => String::new(),
    };
    format!(
        "{} (id {}) {}/{} on {}: {}{os}",
        node.hostname, node.id, node.arch, node.subarch, node.cluster, node.status
    )
}
