//! The domain operations of a scenario (license keys, nodes, preseeds): each enters through
//! the region's service, is rendered into the trace (keys masked), checked against its
//! expectation, and — when the service acknowledged a write — recorded in [`Acked`] so the
//! durability checks hold the store to it across region restarts.

use osmesh_actors::region::license::{LicenseKeyRequest, LicenseKeyView};
use osmesh_actors::region::nodes::{AllocateRequest, EnlistRequest, NodeView};
use osmesh_actors::region::preseed::{PreseedEdit, PreseedVersionView, PreseedView};
use osmesh_actors::region::service::{RegionService, ServiceError};
use osmesh_core::ClusterId;
use osmesh_net::messages::PreseedTemplate;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::{FailureKind, State};
use crate::invariants::{self, Acked, AckedAllocation};
use crate::scenario::{KeyExpect, KeysExpect, NodeExpect, Op, PreseedExpect, TemplateSpec};
use crate::trace::Source;

type Shared = Rc<RefCell<State>>;

/// The templates a cluster ships, from the scenario's specs.
pub(super) fn templates(specs: &[TemplateSpec]) -> Vec<PreseedTemplate> {
    specs
        .iter()
        .map(|t| PreseedTemplate {
            name: t.name.clone(),
            osystem: t.osystem.clone(),
            content: t.content.clone(),
        })
        .collect()
}

/// A key as the trace may show it: the product's own masking, so the trace shows what the
/// API and the logs would.
pub use osmesh_store::mask_key;

/// How the trace names a domain operation.
pub(super) fn describe(op: &Op) -> String {
    match op {
        Op::AddLicenseKey {
            osystem,
            distro_series,
            license_key,
            ..
        } => format!(
            "add_license_key {osystem}/{distro_series} {}",
            mask_key(license_key)
        ),
        Op::LicenseKeys { .. } => "license_keys".into(),
        Op::EnlistNode {
            hostname,
            arch,
            subarch,
            cluster,
            ..
        } => format!(
            "enlist_node {hostname} {arch}/{} on {cluster}",
            subarch.as_deref().unwrap_or("generic")
        ),
        Op::Allocate {
            osystem,
            distro_series,
            arch,
            hostname,
            ..
        } => {
            let named = hostname
                .as_deref()
                .map(|h| format!(" named {h}"))
                .unwrap_or_default();
            format!("allocate {osystem}/{distro_series} {arch}{named}")
        }
        Op::ReleaseNode { hostname, .. } => format!("release_node {hostname}"),
        Op::EditPreseed {
            name,
            content,
            based_on_version,
            ..
        } => format!(
            "edit_preseed {name} based on v{based_on_version} ({} bytes)",
            content.len()
        ),
        Op::ResolvePreseed { name, version, .. } => format!("resolve_preseed {name} to v{version}"),
        Op::Preseed { name, .. } => format!("preseed {name}"),
        Op::ListOsystems { .. } | Op::ListClusters { .. } => String::new(),
    }
}

/// The trace line after a region restart's durability check passed.
pub(super) fn durability_summary(acked: &Acked) -> String {
    format!(
        "durability after region restart: {} license key(s), {} preseed version(s), {} allocation(s) acknowledged, all kept",
        acked.license_keys.len(),
        acked.preseed_versions.len(),
        acked.allocations.len()
    )
}

/// With the region down, a domain operation is refused as `region_unavailable`.
pub(super) fn expect_region_down(state: &Shared, number: usize, op: &Op) {
    let error = match op {
        Op::AddLicenseKey {
            expect: Some(e), ..
        } => Some(&e.error),
        Op::EnlistNode {
            expect: Some(e), ..
        }
        | Op::Allocate {
            expect: Some(e), ..
        }
        | Op::ReleaseNode {
            expect: Some(e), ..
        } => Some(&e.error),
        Op::EditPreseed {
            expect: Some(e), ..
        }
        | Op::ResolvePreseed {
            expect: Some(e), ..
        }
        | Op::Preseed {
            expect: Some(e), ..
        } => Some(&e.error),
        _ => None,
    };
    let Some(error) = error else {
        return;
    };
    let mut problems = Vec::new();
    refusal_problems::<()>(error, &Err("region_unavailable"), &mut problems);
    report(state, number, problems);
}

/// Runs one domain operation against the region's service.
pub(super) async fn run(state: &Shared, number: usize, service: &RegionService, op: Op) {
    match op {
        Op::AddLicenseKey {
            osystem,
            distro_series,
            license_key,
            expect,
            ..
        } => {
            let request = LicenseKeyRequest {
                osystem,
                distro_series,
                license_key,
            };
            let issued_ms = state.borrow().now_ms();
            let result = service.add_license_key(&request).await;
            let got = key_added(state, number, service, &request, issued_ms, result).await;
            if let Some(expect) = expect {
                check_key(state, number, &expect, &got);
            }
        }
        Op::LicenseKeys { expect, .. } => match service.license_keys().await {
            Ok(keys) => {
                log(
                    state,
                    format!("op#{number} license keys: {}", keys_line(&keys)),
                );
                if let Some(KeysExpect { keys: Some(want) }) = expect {
                    let is: BTreeMap<String, String> = keys
                        .iter()
                        .map(|k| {
                            (
                                format!("{}/{}", k.osystem, k.distro_series),
                                k.validated_by.to_string(),
                            )
                        })
                        .collect();
                    if is != want {
                        let problem = format!("keys {is:?}, expected {want:?}");
                        report(state, number, vec![problem]);
                    }
                }
            }
            Err(err) => refused(state, number, &err),
        },
        Op::EnlistNode {
            hostname,
            arch,
            subarch,
            cluster,
            expect,
            ..
        } => {
            let request = EnlistRequest {
                hostname,
                arch,
                subarch,
                cluster: ClusterId::new(cluster),
                system_id: None,
                power_type: None,
                power_parameters: None,
            };
            let result = service.enlist_node(&request).await;
            let got = node_answer(state, number, "enlisted", result);
            if let Ok(node) = &got {
                let enlisted = invariants::Enlisted {
                    id: node.id,
                    hostname: request.hostname.clone(),
                    arch: request.arch.clone(),
                    cluster: request.cluster.to_string(),
                };
                state.borrow_mut().enlisted.insert(node.id, enlisted);
            }
            if let Some(expect) = expect {
                check_node(state, number, &expect, &got);
            }
        }
        Op::Allocate {
            osystem,
            distro_series,
            arch,
            hostname,
            expect,
            ..
        } => {
            let request = AllocateRequest {
                osystem,
                distro_series,
                arch,
                subarch: None,
                hostname,
            };
            let result = service.allocate_node(&request).await;
            let got = node_answer(state, number, "allocated", result);
            if let Ok(node) = &got {
                allocated(state, &request, node);
                on_connected_cluster(state, service, node).await;
            }
            if let Some(expect) = expect {
                check_node(state, number, &expect, &got);
            }
        }
        Op::ReleaseNode {
            hostname, expect, ..
        } => {
            let result = release(service, &hostname).await;
            let got = node_answer(state, number, "released", result);
            if let Ok(node) = &got {
                state.borrow_mut().acked.allocations.remove(&node.id);
            }
            if let Some(expect) = expect {
                check_node(state, number, &expect, &got);
            }
        }
        Op::EditPreseed {
            name,
            content,
            based_on_version,
            expect,
            ..
        } => {
            let edit = PreseedEdit {
                content,
                based_on_version,
            };
            let result = service.edit_preseed(&name, &edit).await;
            preseed_answer(state, number, service, &name, result, expect).await;
        }
        Op::ResolvePreseed {
            name,
            version,
            expect,
            ..
        } => {
            let result = service.resolve_preseed(&name, version).await;
            preseed_answer(state, number, service, &name, result, expect).await;
        }
        Op::Preseed { name, expect, .. } => {
            let result = service.preseed(&name).await;
            preseed_answer(state, number, service, &name, result, expect).await;
        }
        Op::ListOsystems { .. } | Op::ListClusters { .. } => {}
    }
}

/// Lines for the final state: stored keys (masked), nodes and preseeds; none when empty.
pub(super) async fn final_lines(service: &RegionService) -> Vec<String> {
    let mut lines = Vec::new();
    if let Ok(keys) = service.license_keys().await {
        if !keys.is_empty() {
            lines.push(format!("license keys: {}", keys_line(&keys)));
        }
    }
    if let Ok(nodes) = service.nodes().await {
        for node in nodes {
            lines.push(format!("node {}", node_line(&node)));
        }
    }
    if let Ok(preseeds) = service.preseeds().await {
        for preseed in preseeds {
            let history = service
                .preseed_history(&preseed.name)
                .await
                .unwrap_or_default();
            lines.push(format!(
                "preseed {}: {}; history {}",
                preseed.name,
                preseed_line(&preseed),
                history_line(&history)
            ));
        }
    }
    lines
}

fn log(state: &Shared, text: String) {
    state.borrow().log(Source::Answer, text);
}

fn refused(state: &Shared, number: usize, err: &ServiceError) {
    log(
        state,
        format!("op#{number} refused: {} ({})", err.code, err.message),
    );
}

fn report(state: &Shared, number: usize, problems: Vec<String>) {
    if problems.is_empty() {
        return;
    }
    state.borrow_mut().fail(
        FailureKind::Expectation,
        format!("op#{number}: {}", problems.join("; ")),
    );
}

fn safety(state: &Shared, message: String) {
    state.borrow_mut().fail(FailureKind::Safety, message);
}

/// Whether a refusal (or its absence) is the expected one.
fn refusal_problems<T>(error: &Option<String>, got: &Result<T, &str>, problems: &mut Vec<String>) {
    match (got, error) {
        (Err(code), Some(want)) if code == want => {}
        (Err(code), want) => problems.push(format!("refused with {code}, expected {want:?}")),
        (Ok(_), Some(want)) => problems.push(format!("succeeded, expected refusal {want}")),
        (Ok(_), None) => {}
    }
}

/// Logs an add's answer and holds it to the invariants: a stored key names a cluster that
/// was up at some point since the add was issued and knows the release; a refused key is not
/// stored.
async fn key_added(
    state: &Shared,
    number: usize,
    service: &RegionService,
    request: &LicenseKeyRequest,
    issued_ms: u64,
    result: Result<LicenseKeyView, ServiceError>,
) -> Result<String, &'static str> {
    let release = (
        request.osystem.trim().to_owned(),
        request.distro_series.trim().to_owned(),
    );
    match result {
        Ok(view) => {
            let by = view.validated_by.to_string();
            log(
                state,
                format!(
                    "op#{number} stored {}/{} key {} validated by {by}",
                    view.osystem, view.distro_series, view.license_key
                ),
            );
            let mut s = state.borrow_mut();
            let knows = s.clusters.get(&by).is_some_and(|c| {
                let up = c.actor.is_some() || c.crashed_at_ms.is_some_and(|t| t >= issued_ms);
                up && c.knew.contains(&release)
            });
            if !knows {
                drop(s);
                safety(
                    state,
                    format!(
                        "op#{number}: the key of {}/{} was stored on the word of {by}, which was down throughout or does not know the release",
                        release.0, release.1
                    ),
                );
                return Ok(by);
            }
            let key = request.license_key.trim().to_owned();
            s.acked.license_keys.insert(release, (key, by.clone()));
            Ok(by)
        }
        Err(err) => {
            refused(state, number, &err);
            let acked = state.borrow().acked.license_keys.contains_key(&release);
            let stored = service.license_key(&release.0, &release.1).await.is_ok();
            if stored && !acked {
                safety(
                    state,
                    format!(
                        "op#{number}: the add of {}/{} was refused ({}) yet a key is stored",
                        release.0, release.1, err.code
                    ),
                );
            }
            Err(err.code)
        }
    }
}

fn check_key(state: &Shared, number: usize, expect: &KeyExpect, got: &Result<String, &str>) {
    let mut problems = Vec::new();
    refusal_problems(&expect.error, got, &mut problems);
    if let (Ok(by), Some(want)) = (got, &expect.validated_by) {
        if by != want {
            problems.push(format!("validated by {by}, expected {want}"));
        }
    }
    report(state, number, problems);
}

fn keys_line(keys: &[LicenseKeyView]) -> String {
    if keys.is_empty() {
        return "none".into();
    }
    keys.iter()
        .map(|k| {
            format!(
                "{}/{} {} by {}",
                k.osystem, k.distro_series, k.license_key, k.validated_by
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
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

fn node_answer(
    state: &Shared,
    number: usize,
    verb: &str,
    result: Result<NodeView, ServiceError>,
) -> Result<NodeView, &'static str> {
    match result {
        Ok(node) => {
            log(state, format!("op#{number} {verb} {}", node_line(&node)));
            Ok(node)
        }
        Err(err) => {
            refused(state, number, &err);
            Err(err.code)
        }
    }
}

/// Holds an acknowledged allocation to the invariants, then records it.
fn allocated(state: &Shared, request: &AllocateRequest, node: &NodeView) {
    let allocation = AckedAllocation {
        hostname: node.hostname.clone(),
        cluster: node.cluster.to_string(),
        osystem: request.osystem.clone(),
        distro_series: request.distro_series.clone(),
    };
    let mut s = state.borrow_mut();
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
async fn on_connected_cluster(state: &Shared, service: &RegionService, node: &NodeView) {
    let Ok(answer) = service.osystems_cached().await else {
        return;
    };
    let at = node.allocated_at_ms.unwrap_or(node.created_at_ms);
    if let Err(message) = invariants::allocation_on_connected_cluster(&node.cluster, at, &answer) {
        state.borrow_mut().fail(FailureKind::Safety, message);
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

fn check_node(state: &Shared, number: usize, expect: &NodeExpect, got: &Result<NodeView, &str>) {
    let mut problems = Vec::new();
    refusal_problems(&expect.error, got, &mut problems);
    if let Ok(node) = got {
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
    }
    report(state, number, problems);
}

fn origin(version: &PreseedVersionView) -> String {
    version
        .origin_cluster
        .as_ref()
        .map_or_else(|| version.origin.clone(), ToString::to_string)
}

fn preseed_line(preseed: &PreseedView) -> String {
    let mut line = format!(
        "current v{} ({})",
        preseed.current.version,
        origin(&preseed.current)
    );
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

/// Logs a preseed answer with its history, records every version it showed as acknowledged,
/// and checks the expectation.
async fn preseed_answer(
    state: &Shared,
    number: usize,
    service: &RegionService,
    name: &str,
    result: Result<PreseedView, ServiceError>,
    expect: Option<PreseedExpect>,
) {
    let got = match result {
        Ok(preseed) => {
            let history = service.preseed_history(name).await.unwrap_or_default();
            log(
                state,
                format!(
                    "op#{number} preseed {name}: {}; history {}",
                    preseed_line(&preseed),
                    history_line(&history)
                ),
            );
            let mut s = state.borrow_mut();
            for v in history.iter().chain([&preseed.current]) {
                s.acked
                    .preseed_versions
                    .insert((name.to_owned(), v.version), v.content_hash.clone());
            }
            Ok((preseed, history))
        }
        Err(err) => {
            refused(state, number, &err);
            Err(err.code)
        }
    };
    let Some(expect) = expect else {
        return;
    };
    let mut problems = Vec::new();
    refusal_problems(&expect.error, &got, &mut problems);
    if let Ok((preseed, history)) = &got {
        let current = preseed.current.version;
        if let Some(want) = expect.current.filter(|v| *v != current) {
            problems.push(format!("current v{current}, expected v{want}"));
        }
        let from = origin(&preseed.current);
        if let Some(want) = expect.origin.as_ref().filter(|o| **o != from) {
            problems.push(format!("current from {from}, expected {want}"));
        }
        if let Some(want) = expect.in_conflict.filter(|c| *c != preseed.in_conflict) {
            problems.push(format!(
                "in conflict {}, expected {want}",
                preseed.in_conflict
            ));
        }
        let versions: Vec<i32> = history.iter().map(|v| v.version).collect();
        if let Some(want) = expect.versions.as_ref().filter(|v| **v != versions) {
            problems.push(format!("versions {versions:?}, expected {want:?}"));
        }
    }
    report(state, number, problems);
}

#[cfg(test)]
mod tests {
    use super::mask_key;

    /// The trace masks keys with the product's function: a key never shows more there than
    /// the API shows.
    #[test]
    fn the_trace_masks_keys_as_the_product_does() {
        let op = crate::scenario::Op::AddLicenseKey {
            at_ms: 0,
            osystem: "windows".into(),
            distro_series: "win2019".into(),
            license_key: "ABCDE-12345-FGHIJ-67890-KLMNO".into(),
            expect: None,
        };
        let line = super::describe(&op);
        assert_eq!(
            line,
            "add_license_key windows/win2019 *****-*****-*****-*****-KLMNO"
        );
        assert!(!line.contains("ABCDE"));
        assert_eq!(mask_key("AB-CD"), "**-**");
    }
}
