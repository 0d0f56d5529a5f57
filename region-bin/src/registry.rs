//! This region's entry in the region registry (issue 15). At start-up the region records
//! itself (a random id, its name, the RPC endpoints clusters dial, its API URL); then a
//! thread of its own — never the region actor's, whose thread must not block on the
//! database — beats every `REGION_HEARTBEAT_INTERVAL`: it asks the actor which clusters are
//! linked (a region whose actor does not answer stops beating, so the others see it down),
//! writes the heartbeat, deletes rows silent for `REGION_FORGET_AFTER`, and hands the actor
//! the live regions' endpoints, which it passes on to the clusters when they change. It also
//! hands the actor clusters that only other regions have seen, so this region names them
//! (as not connected) in its answers.
//! A clean stop deletes the row, so the others drop the region at once.

use actix::Addr;
use anyhow::{Context, Result};
use osmesh_actors::region::identity::ApplyExclusions;
use osmesh_actors::region::regions::{
    live_endpoints, AdoptClusters, SetRegionMesh, REGION_FORGET_AFTER, REGION_HEARTBEAT_INTERVAL,
};
use osmesh_actors::region::{ConnectedPeers, RegionActor};
use osmesh_core::ClusterId;
use osmesh_store::{ClusterExclusions, NewRegion, Store};
use osmesh_telemetry::metrics::name;
use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::wall_clock_ms;

/// How long a beat waits for the region actor's list of linked clusters.
pub const ACTOR_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// What this region records about itself.
#[derive(Clone, Debug)]
pub struct RegionEntry {
    pub id: String,
    pub name: String,
    pub rpc_endpoints: Vec<String>,
    pub http_url: String,
}

impl RegionEntry {
    /// A new entry with a random 128-bit id (one per process start).
    pub fn new(name: String, rpc_endpoints: Vec<String>, http_url: String) -> RegionEntry {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        RegionEntry {
            id: hex::encode(bytes),
            name,
            rpc_endpoints,
            http_url,
        }
    }
}

/// The heartbeat thread; stopping it (or dropping this) deletes the region's row.
pub struct Registration {
    entry: RegionEntry,
    store: Store,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Registration {
    pub fn id(&self) -> &str {
        &self.entry.id
    }

    /// Stops beating and removes the region's row.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        let _ = thread.join();
        match self.store.deregister_region(&self.entry.id) {
            Ok(()) => tracing::info!(id = %self.entry.id, "region left the registry"),
            Err(err) => tracing::warn!(%err, "cannot remove this region from the registry"),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Records the region and starts its heartbeat thread. The first beat runs here, so the
/// actor knows the mesh before the first cluster registers.
pub fn register(
    store: Store,
    region: Addr<RegionActor>,
    entry: RegionEntry,
) -> Result<Registration> {
    let started = wall_clock_ms();
    store
        .register_region(&NewRegion {
            id: &entry.id,
            name: &entry.name,
            rpc_endpoints: &entry.rpc_endpoints,
            http_url: &entry.http_url,
            started_at_ms: started,
        })
        .context("cannot record this region in the region registry")?;
    tracing::info!(id = %entry.id, rpc = ?entry.rpc_endpoints, "region recorded in the registry");
    publish_mesh(&store, &region, &entry.id, started);
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let thread = std::thread::Builder::new()
        .name("region-heartbeat".into())
        .spawn({
            let (store, entry, stop) = (store.clone(), entry.clone(), stop.clone());
            move || heartbeat_loop(&store, &region, &entry, started, &stop)
        })
        .context("cannot start the region heartbeat thread")?;
    Ok(Registration {
        entry,
        store,
        stop,
        thread: Some(thread),
    })
}

fn heartbeat_loop(
    store: &Store,
    region: &Addr<RegionActor>,
    entry: &RegionEntry,
    started: i64,
    stop: &(Mutex<bool>, Condvar),
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(%err, "cannot start the heartbeat runtime; this region will show as down");
            return;
        }
    };
    let (stopped, wake) = stop;
    let mut known = BTreeSet::new();
    let mut guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        guard = match wake.wait_timeout(guard, REGION_HEARTBEAT_INTERVAL) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
        if *guard {
            return;
        }
        // Built inside the runtime: a timeout needs its timer.
        let asked = runtime.block_on(async {
            tokio::time::timeout(ACTOR_ANSWER_TIMEOUT, region.send(ConnectedPeers)).await
        });
        let linked: Vec<ClusterId> = match asked {
            Ok(Ok(peers)) => peers.into_iter().map(|(id, _)| id).collect(),
            _ => {
                tracing::warn!("the region actor does not answer; skipping this heartbeat");
                continue;
            }
        };
        beat(store, region, entry, started, &linked);
        adopt_new_clusters(store, region, &mut known);
        apply_exclusions(store, region, &mut known);
    }
}

/// Hands the actor the clusters revoked or removed through any region, so a revocation made
/// through another region closes this region's links within one heartbeat. A removed cluster
/// is forgotten by the actor, and here too, so that it is adopted again if it comes back.
fn apply_exclusions(store: &Store, region: &Addr<RegionActor>, known: &mut BTreeSet<ClusterId>) {
    match store.cluster_exclusions() {
        Ok(excluded) if excluded == ClusterExclusions::default() => {}
        Ok(excluded) => {
            for id in &excluded.removed {
                known.remove(id);
            }
            region.do_send(ApplyExclusions(excluded));
        }
        Err(err) => tracing::warn!(%err, "cannot read revoked and removed clusters"),
    }
}

/// Hands the actor every cluster in the database that was not there at the last look (the
/// actor skips those it knows). Only ids are read each time; records only for new ones.
fn adopt_new_clusters(store: &Store, region: &Addr<RegionActor>, known: &mut BTreeSet<ClusterId>) {
    let ids = match store.list_cluster_ids() {
        Ok(ids) => ids,
        Err(err) => {
            tracing::warn!(%err, "cannot list the clusters other regions know");
            return;
        }
    };
    let mut clusters = Vec::new();
    for id in ids.iter().filter(|id| !known.contains(*id)) {
        match store.get_cluster(id) {
            Ok(Some(record)) => clusters.push(record),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(%err, cluster = ?id.as_str(), "cannot read a cluster record");
                return;
            }
        }
    }
    *known = ids.into_iter().collect();
    if !clusters.is_empty() {
        region.do_send(AdoptClusters { clusters });
    }
}

/// One heartbeat: write it (registering again if another region forgot us), forget long-silent
/// regions, and hand the actor the live set.
fn beat(
    store: &Store,
    region: &Addr<RegionActor>,
    entry: &RegionEntry,
    started: i64,
    linked: &[ClusterId],
) {
    let now = wall_clock_ms();
    let written = store
        .region_heartbeat(&entry.id, now, linked)
        .and_then(|found| {
            if found {
                return Ok(());
            }
            tracing::warn!("this region's registry row was removed; recording it again");
            store.register_region(&NewRegion {
                id: &entry.id,
                name: &entry.name,
                rpc_endpoints: &entry.rpc_endpoints,
                http_url: &entry.http_url,
                started_at_ms: started,
            })
        });
    if let Err(err) = written {
        tracing::warn!(%err, "cannot write the region heartbeat");
        return;
    }
    let forget_before = now - i64::try_from(REGION_FORGET_AFTER.as_millis()).unwrap_or(i64::MAX);
    match store.forget_regions_silent_since(forget_before) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            regions = n,
            "forgot regions silent for {REGION_FORGET_AFTER:?}"
        ),
        Err(err) => tracing::warn!(%err, "cannot forget silent regions"),
    }
    publish_mesh(store, region, &entry.id, now);
}

fn publish_mesh(store: &Store, region: &Addr<RegionActor>, self_id: &str, now: i64) {
    match store.list_regions() {
        Ok(records) => {
            let live = live_endpoints(&records, self_id, now);
            let down = records.len().saturating_sub(live.len());
            metrics::gauge!(name::REGIONS_UP).set(live.len() as f64);
            metrics::gauge!(name::REGIONS_DOWN).set(down as f64);
            region.do_send(SetRegionMesh {
                self_id: self_id.to_owned(),
                regions: live,
            });
        }
        Err(err) => tracing::warn!(%err, "cannot read the region registry"),
    }
}
