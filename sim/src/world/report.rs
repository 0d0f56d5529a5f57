//! The end of a run as people read it: which clusters are linked, the region's snapshots
//! and cached view, the domain records.

use actix::prelude::*;
use osmesh_actors::cluster::{ClusterActor, IsConnected, RegionLinks};
use osmesh_actors::region::service::RegionService;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

use super::State;
use crate::ops::render_view;

pub(super) async fn connected_clusters(state: &Rc<RefCell<State>>) -> Vec<String> {
    let actors: Vec<(String, Option<Addr<ClusterActor>>)> = state
        .borrow()
        .clusters
        .iter()
        .map(|(id, c)| (id.clone(), c.actor.clone()))
        .collect();
    let mut connected = Vec::new();
    for (id, actor) in actors {
        if let Some(actor) = actor {
            if actor.send(IsConnected).await.unwrap_or(false) {
                connected.push(id);
            }
        }
    }
    connected
}

/// With several regions: the regions each cluster keeps a link to (by registry id), as
/// ` linked to [r1-1, r2-1]`; empty with one region.
async fn region_links(state: &Rc<RefCell<State>>) -> BTreeMap<String, String> {
    let actors: Vec<(String, Option<Addr<ClusterActor>>)> = {
        let s = state.borrow();
        if s.regions.len() < 2 {
            return BTreeMap::new();
        }
        s.clusters
            .iter()
            .map(|(id, c)| (id.clone(), c.actor.clone()))
            .collect()
    };
    let mut links = BTreeMap::new();
    for (id, actor) in actors {
        let Some(actor) = actor else { continue };
        let linked: Vec<String> = actor
            .send(RegionLinks)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.connected)
            .map(|l| l.region_id)
            .collect();
        links.insert(id, format!(", linked to [{}]", linked.join(", ")));
    }
    links
}

/// The end of the run as people read it: nodes, links, the regions' snapshots and views.
pub(super) async fn final_state(state: &Rc<RefCell<State>>) -> String {
    let connected = connected_clusters(state).await;
    let links = region_links(state).await;
    let mut out = String::new();
    let regions = {
        let s = state.borrow();
        let _ = writeln!(out, "virtual time: {} ms", s.now_ms());
        for slot in &s.regions {
            let up = if slot.up.is_some() { "up" } else { "down" };
            if s.regions.len() == 1 {
                let _ = writeln!(out, "region: {up}");
            } else {
                let _ = writeln!(out, "region {}: {up}", slot.name);
            }
        }
        for (id, c) in &s.clusters {
            let up = if c.actor.is_some() { "up" } else { "down" };
            let link = if connected.contains(id) {
                "connected"
            } else {
                "not connected"
            };
            let images: Vec<String> = c
                .images
                .get()
                .iter()
                .map(|i| format!("{}/{}/{}/{}", i.osystem, i.arch, i.subarch, i.release))
                .collect();
            let linked = links.get(id).map_or("", String::as_str);
            let _ = writeln!(
                out,
                "cluster {id}: {up}, {link}{linked}, images [{}]",
                images.join(", ")
            );
        }
        if s.regions.len() == 1 {
            // One region: its lines carry no name, as they always did.
            s.service()
                .map(|r| vec![(String::new(), r)])
                .unwrap_or_default()
        } else {
            s.up_regions()
                .into_iter()
                .map(|(name, r)| (format!("{name} "), r))
                .collect()
        }
    };
    for (prefix, service) in &regions {
        region_lines(state, &mut out, prefix, service).await;
    }
    if let Some((_, service)) = regions.first() {
        for line in crate::ops::final_lines(service).await {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// One region's lines: how it sees each cluster, its cached view and whether it converged.
/// `prefix` names the region (empty alone).
async fn region_lines(
    state: &Rc<RefCell<State>>,
    out: &mut String,
    prefix: &str,
    service: &RegionService,
) {
    if let Ok(statuses) = service.clusters().await {
        for c in statuses {
            let age = c
                .snapshot_age_ms
                .map_or("none".into(), |a| format!("{a} ms old"));
            let link = if c.connected {
                "connected"
            } else {
                "disconnected"
            };
            let _ = writeln!(
                out,
                "{} sees {}: {link}, {} images, snapshot {age}",
                if prefix.is_empty() {
                    "region"
                } else {
                    prefix.trim_end()
                },
                c.id,
                c.image_count
            );
        }
    }
    if let Ok(answer) = service.osystems_cached().await {
        let mut s = state.borrow_mut();
        let converged = match s.converged(&answer) {
            Ok(()) => "yes".to_owned(),
            Err(why) => format!("no ({why})"),
        };
        let _ = writeln!(
            out,
            "{prefix}cached view digest: {:016x}",
            digest(&answer.view)
        );
        let _ = writeln!(
            out,
            "{prefix}cached view converged to the clusters' images: {converged}"
        );
        for line in render_view(&answer.view) {
            let _ = writeln!(out, "  {line}");
        }
    }
}

/// FNV-1a over the view's JSON: a stable fingerprint for the final state.
fn digest(view: &osmesh_core::MeshView) -> u64 {
    let json = serde_json::to_string(view).unwrap_or_default();
    json.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
