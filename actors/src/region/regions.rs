//! Several regions on one database (issue 15), as the region actor and the service see them.
//!
//! Each `regiond` records itself in the store's registry and refreshes a heartbeat there off
//! the actor's thread (regiond's `registry` module). What the actor holds is [`RegionMesh`]:
//! its own registry id and every live region's endpoints, handed in by [`SetRegionMesh`]. It
//! puts them in every `Registered` reply and notifies every linked cluster with `RegionList`
//! at every heartbeat (not only when the set changes: a notification has no reply, so a
//! cluster that missed one learns the set at the next beat), so each cluster keeps one link
//! to every live region. A region with no registry (the simulator's single region, tests)
//! answers `Registered` as before, byte for byte.
//!
//! A cluster linked only to other regions (partitioned from this one) is still one this
//! region must name in every answer: [`AdoptClusters`] hands the actor the clusters the
//! database knows that it does not, which it keeps as not connected, with their last
//! snapshot as "last known".
//!
//! [`RegionService::regions`] lists the registry: which regions are up, how many clusters
//! each has linked, and which clusters miss a link to some live region.

use actix::prelude::*;
use osmesh_core::ClusterId;
use osmesh_net::envelope::encode_body;
use osmesh_net::messages::{method, RegionEndpoint, RegionList, Registered};
use std::time::Duration;

use super::service::{RegionService, ServiceError};
use super::RegionActor;
use crate::store::{ClusterRecord, RegionRecord};

/// How often a region writes its heartbeat (and re-reads the registry).
pub const REGION_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// A region whose heartbeat is older than this is down: three missed beats, so one slow
/// database write does not flap it. Its endpoints leave the lists clusters receive.
pub const REGION_DOWN_AFTER: Duration = Duration::from_secs(15);

/// A region down this long has its row deleted by whichever region notices first. Long
/// enough for an operator to see which region died; a region that returns registers anew.
pub const REGION_FORGET_AFTER: Duration = Duration::from_secs(3600);

/// This region's registry id and the live regions' endpoints (itself included).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionMesh {
    /// `None` until the registry is set up; then `Registered` carries the list.
    self_id: Option<String>,
    regions: Vec<RegionEndpoint>,
}

impl RegionMesh {
    /// The `Register` reply: the mesh when this region knows it, else the plain old reply.
    pub fn registered(&self, name: &str) -> Registered {
        match &self.self_id {
            Some(id) => Registered {
                region: name.to_owned(),
                region_id: Some(id.clone()),
                regions: Some(self.regions.clone()),
            },
            None => Registered::named(name),
        }
    }
}

/// The live regions' endpoints from the registry: up at `now_ms` (by [`REGION_DOWN_AFTER`]),
/// or `self_id` itself, sorted by id.
pub fn live_endpoints(records: &[RegionRecord], self_id: &str, now_ms: i64) -> Vec<RegionEndpoint> {
    let mut live: Vec<_> = records
        .iter()
        .filter(|r| r.id == self_id || is_up(r, now_ms))
        .map(|r| RegionEndpoint {
            id: r.id.clone(),
            name: r.name.clone(),
            rpc: r.rpc_endpoints.clone(),
        })
        .collect();
    live.sort();
    live
}

fn is_up(record: &RegionRecord, now_ms: i64) -> bool {
    now_ms - record.heartbeat_ms <= millis(REGION_DOWN_AFTER)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Hands the actor its registry id and the live regions (at every heartbeat); every linked
/// cluster is sent the list each time.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRegionMesh {
    pub self_id: String,
    pub regions: Vec<RegionEndpoint>,
}

impl Handler<SetRegionMesh> for RegionActor {
    type Result = ();

    fn handle(&mut self, msg: SetRegionMesh, _ctx: &mut Self::Context) {
        let mesh = RegionMesh {
            self_id: Some(msg.self_id),
            regions: msg.regions,
        };
        if mesh.regions != self.mesh.regions {
            tracing::info!(
                regions = mesh.regions.len(),
                "the live regions changed; telling the clusters"
            );
        }
        self.mesh = mesh;
        // Sent at every beat, changed or not: a `RegionList` is a notification, and one a
        // cluster missed (a frame lost, a link that came up as the set changed) would
        // otherwise leave it without a link to a region until the set changes again.
        let body = encode_body(&RegionList {
            regions: self.mesh.regions.clone(),
        });
        for (id, link) in self.state.connected_links() {
            if let Some(peer) = self.peers.get(&link) {
                if let Err(err) = peer.notify(method::REGION_LIST, body.clone()) {
                    tracing::debug!(cluster = ?id.as_str(), %err, "cannot send the region list");
                }
            }
        }
    }
}

/// Clusters from the database (seen by any region); those this region does not know yet are
/// added as not connected, their stored snapshot shown only as last known.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AdoptClusters {
    pub clusters: Vec<ClusterRecord>,
}

impl Handler<AdoptClusters> for RegionActor {
    type Result = ();

    fn handle(&mut self, msg: AdoptClusters, _ctx: &mut Self::Context) {
        for record in msg.clusters {
            let id = record.id.clone();
            if self.state.adopt(super::known_cluster(record)) {
                tracing::info!(cluster = ?id.as_str(), "a cluster known to other regions; not linked here");
            }
        }
    }
}

/// This region's registry id, once it has one.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct RegionSelf;

impl Handler<RegionSelf> for RegionActor {
    type Result = Option<String>;

    fn handle(&mut self, _msg: RegionSelf, _ctx: &mut Self::Context) -> Option<String> {
        self.mesh.self_id.clone()
    }
}

pub use osmesh_api::regions::{ClusterRegions, RegionState, RegionView, RegionsAnswer};

/// The regions answer from the registry's rows, the known clusters, the answering region's
/// id and its own links now. Pure, so tests check it without a database.
pub fn regions_answer(
    records: Vec<RegionRecord>,
    clusters: &[ClusterRecord],
    self_id: Option<&str>,
    self_linked: &[ClusterId],
    now_ms: i64,
) -> RegionsAnswer {
    let regions: Vec<RegionView> = records
        .into_iter()
        .map(|r| {
            let answering = self_id == Some(r.id.as_str());
            let state = if answering || is_up(&r, now_ms) {
                RegionState::Up
            } else {
                RegionState::Down
            };
            let linked = match (answering, state) {
                (true, _) => self_linked.to_vec(),
                (false, RegionState::Up) => r.linked_clusters,
                (false, RegionState::Down) => Vec::new(),
            };
            RegionView {
                heartbeat_age_ms: now_ms - r.heartbeat_ms,
                connected_clusters: linked.len(),
                clusters: linked,
                id: r.id,
                name: r.name,
                rpc_endpoints: r.rpc_endpoints,
                http_url: r.http_url,
                started_at_ms: r.started_at_ms,
                heartbeat_ms: r.heartbeat_ms,
                state,
                answering,
            }
        })
        .collect();
    let clusters = clusters
        .iter()
        .map(|c| {
            let (linked, missing): (Vec<&RegionView>, Vec<&RegionView>) = regions
                .iter()
                .filter(|r| r.state == RegionState::Up)
                .partition(|r| r.clusters.contains(&c.id));
            ClusterRegions {
                cluster: c.id.clone(),
                name: c.name.clone(),
                linked: linked.iter().map(|r| r.id.clone()).collect(),
                missing: missing.iter().map(|r| r.id.clone()).collect(),
            }
        })
        .collect();
    RegionsAnswer {
        regions,
        clusters,
        down_after_ms: millis(REGION_DOWN_AFTER),
        forget_after_ms: millis(REGION_FORGET_AFTER),
    }
}

impl RegionService {
    /// Every region in the registry with its state and linked clusters, and which clusters
    /// are linked to only some of the live regions.
    pub async fn regions(&self) -> Result<RegionsAnswer, ServiceError> {
        let self_id = self
            .region()
            .send(RegionSelf)
            .await
            .map_err(ServiceError::region_gone)?;
        let linked: Vec<ClusterId> = self.connected_peers().await?.into_keys().collect();
        let now = self.now_ms().await?;
        let records = self
            .store()
            .list_regions()
            .map_err(ServiceError::from_store)?;
        let clusters = self
            .store()
            .list_clusters()
            .map_err(ServiceError::from_store)?;
        Ok(regions_answer(
            records,
            &clusters,
            self_id.as_deref(),
            &linked,
            now,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, heartbeat_ms: i64, linked: &[&str]) -> RegionRecord {
        RegionRecord {
            id: id.into(),
            name: format!("region-{id}"),
            rpc_endpoints: vec![format!("{id}:5250")],
            http_url: format!("http://{id}:5240"),
            started_at_ms: 0,
            heartbeat_ms,
            linked_clusters: linked.iter().map(|c| ClusterId::new(*c)).collect(),
        }
    }

    fn cluster(id: &str) -> ClusterRecord {
        ClusterRecord {
            id: ClusterId::new(id),
            name: id.into(),
            first_seen_ms: 0,
            last_seen_ms: 0,
            snapshot: None,
        }
    }

    #[test]
    fn a_lapsed_heartbeat_is_down_and_leaves_the_cluster_lists() {
        let now = 100_000;
        let lapsed = now - millis(REGION_DOWN_AFTER) - 1;
        let records = vec![
            record("a", now, &[]),
            record("b", now - 1_000, &["c1"]),
            record("c", lapsed, &["c1", "c2"]),
        ];
        let live: Vec<_> = live_endpoints(&records, "a", now)
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(live, ["a", "b"]);
        // Its own row is live even if its last write is late (it is answering, so it runs).
        let own: Vec<_> = live_endpoints(&records, "c", now)
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(own, ["a", "b", "c"]);

        let me = [ClusterId::new("c1"), ClusterId::new("c2")];
        let answer = regions_answer(
            records,
            &[cluster("c1"), cluster("c2")],
            Some("a"),
            &me,
            now,
        );
        let states: Vec<_> = answer
            .regions
            .iter()
            .map(|r| (r.id.as_str(), r.state, r.answering, r.connected_clusters))
            .collect();
        assert_eq!(
            states,
            [
                ("a", RegionState::Up, true, 2),
                ("b", RegionState::Up, false, 1),
                ("c", RegionState::Down, false, 0),
            ]
        );
        let links: Vec<_> = answer
            .clusters
            .iter()
            .map(|c| (c.cluster.as_str(), c.linked.clone(), c.missing.clone()))
            .collect();
        assert_eq!(
            links,
            [
                ("c1", vec!["a".to_owned(), "b".to_owned()], vec![]),
                ("c2", vec!["a".to_owned()], vec!["b".to_owned()]),
            ]
        );
    }

    #[test]
    fn without_a_registry_the_reply_is_the_old_one() {
        let mesh = RegionMesh::default();
        assert_eq!(mesh.registered("r"), Registered::named("r"));
        let mesh = RegionMesh {
            self_id: Some("a".into()),
            regions: live_endpoints(&[record("a", 0, &[])], "a", 0),
        };
        let reply = mesh.registered("r");
        assert_eq!(reply.region_id.as_deref(), Some("a"));
        assert_eq!(reply.regions.map(|r| r.len()), Some(1));
    }
}
