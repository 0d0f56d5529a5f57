//! The end of a run as people read it: which clusters are linked, the region's snapshots
//! and cached view, the domain records.

use actix::prelude::*;
use osmesh_actors::cluster::{ClusterActor, IsConnected};
use std::cell::RefCell;
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

/// The end of the run as people read it: nodes, links, the region's snapshots and view.
pub(super) async fn final_state(state: &Rc<RefCell<State>>) -> String {
    let connected = connected_clusters(state).await;
    let mut out = String::new();
    let (service, now) = {
        let s = state.borrow();
        let _ = writeln!(out, "virtual time: {} ms", s.now_ms());
        let _ = writeln!(
            out,
            "region: {}",
            if s.region.is_some() { "up" } else { "down" }
        );
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
            let _ = writeln!(
                out,
                "cluster {id}: {up}, {link}, images [{}]",
                images.join(", ")
            );
        }
        (s.service(), s.now_ms())
    };
    let Some(service) = service else {
        return out;
    };
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
                "region sees {}: {link}, {} images, snapshot {age}",
                c.id, c.image_count
            );
        }
    }
    if let Ok(answer) = service.osystems_cached().await {
        let mut s = state.borrow_mut();
        let converged = match s.converged(&answer) {
            Ok(()) => "yes".to_owned(),
            Err(why) => format!("no ({why})"),
        };
        let _ = writeln!(out, "cached view digest: {:016x}", digest(&answer.view));
        let _ = writeln!(
            out,
            "cached view converged to the clusters' images: {converged}"
        );
        for line in render_view(&answer.view) {
            let _ = writeln!(out, "  {line}");
        }
        let _ = now;
    }
    for line in crate::ops::final_lines(&service).await {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// FNV-1a over the view's JSON: a stable fingerprint for the final state.
fn digest(view: &osmesh_core::MeshView) -> u64 {
    let json = serde_json::to_string(view).unwrap_or_default();
    json.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
