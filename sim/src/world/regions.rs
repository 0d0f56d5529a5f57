//! Several regions sharing one store (issue 15): each a real region actor with its own
//! service, listening on its own address of the simulated network (`r1`, `r2`, …), over its
//! own store handle on the one SQLite file, as two `regiond`s share one PostgreSQL database.
//!
//! A world of one region (the default) is what it always was: the region is named and
//! listens as `region`, records nothing in the registry, and its `Registered` replies carry
//! no region list, so every trace stays byte for byte what it was.
//!
//! With several, each region records itself in the store's registry when it starts and beats
//! every `REGION_HEARTBEAT_INTERVAL` of virtual time, doing what regiond's registry thread
//! does (`region-bin/src/registry.rs`) through the same seam, the actor's messages: it asks
//! the actor which clusters are linked (`ConnectedPeers`), writes the heartbeat, hands the
//! actor the live regions (`SetRegionMesh`, which the actor passes on to clusters in
//! `Registered` and `RegionList`) and the clusters other regions saw (`AdoptClusters`). The
//! beat is a task on the world's runtime, not a thread; a crashed region's stops with it, and
//! its row stays behind until the others see its heartbeat lapse, as after a kill -9.

use actix::prelude::*;
use osmesh_actors::clock::Clock;
use osmesh_actors::region::identity::ApplyExclusions;
use osmesh_actors::region::regions::{
    live_endpoints, AdoptClusters, SetRegionMesh, REGION_FORGET_AFTER, REGION_HEARTBEAT_INTERVAL,
};
use osmesh_actors::region::service::RegionService;
use osmesh_actors::region::{ConnectedPeers, OsystemsAnswer, RegionActor, RegionSettings};
use osmesh_actors::Shutdown;
use osmesh_core::ClusterId;
use osmesh_store::{ClusterExclusions, NewRegion, Store};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;

use super::{checks, ms, open_store, State, SIM_EPOCH_MS};
use crate::invariants;
use crate::net::REGION_ADDR;
use crate::trace::Source;

/// How long after the last fault the clusters may take to learn of a restarted region: one
/// heartbeat of the regions still up (which then push the new list), and a second for the
/// list to travel and the dial to start. Added to the convergence bound with several regions.
pub const MESH_LAG_MS: u64 = REGION_HEARTBEAT_INTERVAL.as_millis() as u64 + 1_000;

/// The name (and address) of region `index` of `count`: `region` alone, else `r1`, `r2`, …
pub fn region_name(index: usize, count: usize) -> String {
    if count == 1 {
        REGION_ADDR.to_owned()
    } else {
        format!("r{}", index + 1)
    }
}

/// The index of region `name` (`r1` … `r{count}`) in a world of `count` regions.
pub fn region_index(name: &str, count: usize) -> Option<usize> {
    let k: usize = name.strip_prefix('r')?.parse().ok()?;
    (format!("r{k}") == name && (1..=count).contains(&k)).then(|| k - 1)
}

/// One region of the world, up or down.
pub(super) struct RegionSlot {
    /// Its name, which is also its address on the simulated network.
    pub(super) name: String,
    pub(super) up: Option<SimRegion>,
    /// Counts its starts: an operation refused by the region it was issued to while that
    /// region is still up means the actor died under it.
    starts: u64,
}

pub(super) struct SimRegion {
    pub(super) actor: Addr<RegionActor>,
    pub(super) service: RegionService,
    generation: u64,
    /// Cleared when the region crashes: its heartbeat task stops at its next wake.
    running: Rc<Cell<bool>>,
}

/// The regions of a world of `count`, none started yet.
pub(super) fn slots(count: usize) -> Vec<RegionSlot> {
    (0..count.max(1))
        .map(|index| RegionSlot {
            name: region_name(index, count.max(1)),
            up: None,
            starts: 0,
        })
        .collect()
}

impl State {
    fn slot_index(&self, region: Option<&str>) -> usize {
        region
            .and_then(|r| region_index(r, self.regions.len()))
            .unwrap_or(0)
    }

    fn several_regions(&self) -> bool {
        self.regions.len() > 1
    }

    /// The service of `region` (the first when `None`), if it is up.
    pub(crate) fn service_of(&self, region: Option<&str>) -> Option<RegionService> {
        let slot = &self.regions[self.slot_index(region)];
        slot.up.as_ref().map(|r| r.service.clone())
    }

    /// The first region's service, if it is up.
    pub(crate) fn service(&self) -> Option<RegionService> {
        self.service_of(None)
    }

    /// Which start of `region` is up, if one is.
    pub(crate) fn region_generation(&self, region: Option<&str>) -> Option<u64> {
        let slot = &self.regions[self.slot_index(region)];
        slot.up.as_ref().map(|r| r.generation)
    }

    /// The address of `region` (the first when `None`).
    pub(crate) fn region_addr(&self, region: Option<&str>) -> String {
        self.regions[self.slot_index(region)].name.clone()
    }

    /// Every region up, by name, with its service.
    pub(super) fn up_regions(&self) -> Vec<(String, RegionService)> {
        self.regions
            .iter()
            .filter_map(|slot| Some((slot.name.clone(), slot.up.as_ref()?.service.clone())))
            .collect()
    }

    /// The region addresses cluster `id` is configured with: every region's, starting from
    /// one of its own (the clusters spread over the regions), as an operator lists them.
    pub(super) fn region_addrs_for(&self, id: &str) -> Vec<String> {
        let n = self.regions.len();
        let first = self.clusters.keys().position(|c| c == id).unwrap_or(0) % n;
        (0..n)
            .map(|k| self.regions[(first + k) % n].name.clone())
            .collect()
    }

    /// Starts region `index` over its own handle on the shared store; with several regions
    /// it records itself in the registry and starts beating.
    pub(super) fn start_region(&mut self, index: usize) -> anyhow::Result<()> {
        let store = open_store(&self.db_url)?;
        let name = self.regions[index].name.clone();
        let settings = RegionSettings {
            name: name.clone(),
            handshake: self.region_handshake(&name),
            peer: self.peer_config(),
            refresh_interval: ms(self.settings.refresh_interval_ms),
        };
        let clock = Clock::anchored_at(SIM_EPOCH_MS + self.now_ms() as i64);
        let rng = StdRng::seed_from_u64(self.rng.next_u64());
        let listener = Box::new(self.net.listen(&name));
        let actor = RegionActor::new(settings, store.inline(), clock, rng, listener).start();
        let service = RegionService::new(actor.clone(), store.inline());
        let several = self.several_regions();
        let slot = &mut self.regions[index];
        slot.starts += 1;
        let running = Rc::new(Cell::new(true));
        if several {
            let entry = Entry {
                id: format!("{name}-{}", slot.starts),
                name,
            };
            Registry::start(entry, store, actor.clone(), clock, running.clone())?;
        }
        slot.up = Some(SimRegion {
            actor,
            service,
            generation: slot.starts,
            running,
        });
        Ok(())
    }

    /// Crashes `region` (the first when `None`) as a kill -9 would: it stops listening, its
    /// links are cut, its actor is told to stop and its heartbeat stops (its registry row
    /// stays). With several regions, the others are then asked to serve every acknowledged
    /// write at the next check.
    pub(super) fn crash_region(&mut self, region: Option<&str>) {
        let index = self.slot_index(region);
        let name = self.regions[index].name.clone();
        let Some(up) = self.regions[index].up.take() else {
            return;
        };
        up.running.set(false);
        self.net.unlisten(&name);
        self.net.cut_region(&name);
        up.actor.do_send(Shutdown);
        let now = self.now_ms();
        self.crashed.push((now, name.clone(), up.actor.recipient()));
        if self.several_regions() {
            self.served_after_crash.push(name);
        }
    }

    /// Restarts `region` if it is down, then holds the store to everything acknowledged.
    pub(super) fn restart_region(&mut self, region: Option<&str>) -> anyhow::Result<()> {
        let index = self.slot_index(region);
        if self.regions[index].up.is_some() {
            return Ok(());
        }
        self.start_region(index)?;
        self.check_durability();
        if self.failure.is_none() {
            self.log(Source::Check, checks::durability_summary(&self.acked));
        }
        Ok(())
    }
}

/// What a region records about itself in the registry.
struct Entry {
    /// Unique per start, as regiond's random id: a restarted region is a new row.
    id: String,
    name: String,
}

/// The heartbeat of one region start: regiond's `registry` module on virtual time.
struct Registry {
    entry: Entry,
    store: Store,
    actor: Addr<RegionActor>,
    clock: Clock,
    started_ms: i64,
    /// Clusters already handed to the actor (or seen in the store) at the last beat.
    known: BTreeSet<ClusterId>,
}

impl Registry {
    /// Records the region, hands the actor the mesh at once (before any cluster can
    /// register), and beats on the world's runtime until `running` is cleared.
    fn start(
        entry: Entry,
        store: Store,
        actor: Addr<RegionActor>,
        clock: Clock,
        running: Rc<Cell<bool>>,
    ) -> anyhow::Result<()> {
        let started_ms = clock.now_ms();
        let endpoints = [entry.name.clone()];
        store.register_region(&NewRegion {
            id: &entry.id,
            name: &entry.name,
            rpc_endpoints: &endpoints,
            http_url: &format!("http://{}", entry.name),
            started_at_ms: started_ms,
        })?;
        let mut registry = Registry {
            entry,
            store,
            actor,
            clock,
            started_ms,
            known: BTreeSet::new(),
        };
        registry.publish_mesh(started_ms);
        actix_rt::spawn(async move {
            loop {
                tokio::time::sleep(REGION_HEARTBEAT_INTERVAL).await;
                if !running.get() {
                    return;
                }
                let Ok(peers) = registry.actor.send(ConnectedPeers).await else {
                    return;
                };
                if !running.get() {
                    return;
                }
                let linked: Vec<ClusterId> = peers.into_iter().map(|(id, _)| id).collect();
                registry.beat(&linked);
            }
        });
        Ok(())
    }

    /// One heartbeat: write it (recording the region again if its row was removed), forget
    /// long-silent regions, hand the actor the live set and the clusters new to the store.
    fn beat(&mut self, linked: &[ClusterId]) {
        let now = self.clock.now_ms();
        let entry = &self.entry;
        let endpoints = [entry.name.clone()];
        let found = self.store.region_heartbeat(&entry.id, now, linked);
        if let Ok(false) = found {
            let _ = self.store.register_region(&NewRegion {
                id: &entry.id,
                name: &entry.name,
                rpc_endpoints: &endpoints,
                http_url: &format!("http://{}", entry.name),
                started_at_ms: self.started_ms,
            });
        }
        let forget = i64::try_from(REGION_FORGET_AFTER.as_millis()).unwrap_or(i64::MAX);
        let _ = self.store.forget_regions_silent_since(now - forget);
        self.publish_mesh(now);
        self.adopt_new_clusters();
        // Revocations and removals made through any region (regiond's `apply_exclusions`).
        // A removed cluster is forgotten, so it is new again if it comes back.
        if let Ok(excluded) = self.store.cluster_exclusions() {
            if excluded != ClusterExclusions::default() {
                for id in &excluded.removed {
                    self.known.remove(id);
                }
                self.actor.do_send(ApplyExclusions(excluded));
            }
        }
    }

    fn publish_mesh(&self, now_ms: i64) {
        if let Ok(records) = self.store.list_regions() {
            self.actor.do_send(SetRegionMesh {
                self_id: self.entry.id.clone(),
                regions: live_endpoints(&records, &self.entry.id, now_ms),
            });
        }
    }

    /// Hands the actor every cluster in the store that was not there at the last look.
    fn adopt_new_clusters(&mut self) {
        let Ok(ids) = self.store.list_cluster_ids() else {
            return;
        };
        let clusters: Vec<_> = ids
            .iter()
            .filter(|id| !self.known.contains(*id))
            .filter_map(|id| self.store.get_cluster(id).ok().flatten())
            .collect();
        self.known = ids.into_iter().collect();
        if !clusters.is_empty() {
            self.actor.do_send(AdoptClusters { clusters });
        }
    }
}

/// Whether every region is up and its cached view equals the clusters' true state.
pub(super) async fn all_converged(state: &Rc<RefCell<State>>) -> bool {
    let regions = {
        let s = state.borrow();
        if s.regions.iter().any(|slot| slot.up.is_none()) {
            return false;
        }
        s.up_regions()
    };
    for (_, service) in regions {
        let Ok(answer) = service.osystems_cached().await else {
            return false;
        };
        if state.borrow_mut().converged(&answer).is_err() {
            return false;
        }
    }
    true
}

/// After a region crashed, every region still up serves every acknowledged write: the
/// license keys and allocations the world was answered with, whichever region answered.
pub(super) async fn check_served_after_crash(state: &Rc<RefCell<State>>) {
    let crashed = std::mem::take(&mut state.borrow_mut().served_after_crash);
    if crashed.is_empty() {
        return;
    }
    let regions = state.borrow().up_regions();
    for (name, service) in &regions {
        let (Ok(keys), Ok(nodes)) = (service.license_keys().await, service.nodes().await) else {
            continue;
        };
        let mut s = state.borrow_mut();
        if let Err(message) = invariants::acked_writes_served(&s.acked, &keys, &nodes) {
            let message = format!(
                "after the crash of {}, {name} does not serve an acknowledged write: {message}",
                crashed.join(", ")
            );
            s.fail(crate::world::FailureKind::Safety, message);
            return;
        }
    }
    if regions.is_empty() {
        return;
    }
    let s = state.borrow();
    let names: Vec<&str> = regions.iter().map(|(n, _)| n.as_str()).collect();
    let line = format!(
        "after the crash of {}: {} {} the {} license key(s) and {} allocation(s) acknowledged",
        crashed.join(", "),
        names.join(", "),
        if names.len() == 1 { "serves" } else { "serve" },
        s.acked.license_keys.len(),
        s.acked.allocations.len()
    );
    s.log(Source::Check, line);
}

/// The answer each region up gives from its cache, by name.
pub(super) async fn cached_answers(
    regions: &[(String, RegionService)],
) -> Vec<(
    String,
    Result<OsystemsAnswer, osmesh_actors::region::service::ServiceError>,
)> {
    let mut answers = Vec::new();
    for (name, service) in regions {
        answers.push((name.clone(), service.osystems_cached().await));
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_and_indexes_agree() {
        assert_eq!(region_name(0, 1), "region");
        assert_eq!(region_name(2, 3), "r3");
        assert_eq!(region_index("r3", 3), Some(2));
        assert_eq!(region_index("r1", 1), Some(0));
        for bad in ["r4", "r0", "r01", "region", "x1", "r"] {
            assert_eq!(region_index(bad, 3), None, "{bad}");
        }
    }
}
