//! More of the region's rules, one test per rule that `cargo mutants` found unguarded by the
//! tests in `state.rs` (see docs/TESTING.md, "Mutation testing"). Plain `#[test]`s: no
//! runtime, no network.

use super::tests::{connect, id, rebuilds, report};
use super::*;

fn known(name: &str, last_seen_ms: i64) -> KnownCluster {
    KnownCluster {
        id: id(name),
        name: format!("{name} (remembered)"),
        last_seen_ms,
        snapshot: None,
    }
}

#[test]
fn each_register_refusal_becomes_the_error_the_cluster_is_told() {
    let duplicate = RpcError::from(RegisterRefusal::Duplicate {
        cluster: id("c1"),
        live_link: 4,
    });
    assert_eq!(duplicate.kind, ErrorKind::Unavailable);
    assert!(duplicate.message.contains("\"c1\""), "{duplicate:?}");
    assert!(duplicate.message.contains("already connected"));

    let internal = RpcError::from(RegisterRefusal::NotUnregistered);
    assert_eq!(internal.kind, ErrorKind::Internal);
    assert!(internal.message.contains("not an unregistered link"));

    let claim = RpcError::bad_request("authenticated as \"a\" but registering as \"b\"");
    assert_eq!(
        RpcError::from(RegisterRefusal::BadClaim(claim.clone())),
        claim
    );
}

#[test]
fn a_remembered_cluster_is_adopted_once_and_drops_the_kept_merge() {
    let mut state = RegionState::default();
    connect(&mut state, "c1", 0);
    state.handle_report(&id("c1"), report("jammy"), 10);
    state.cached_answer(10);
    assert_eq!(rebuilds(&mut state), 1);

    assert!(state.adopt(known("c2", 5)), "a cluster it did not know");
    let statuses = state.cluster_statuses(20);
    let c2 = statuses.iter().find(|s| s.id == id("c2")).expect("adopted");
    assert_eq!((c2.connected, c2.disconnected_since_ms), (false, Some(5)));
    state.cached_answer(20);
    assert_eq!(rebuilds(&mut state), 1, "adopting drops the kept merge");

    assert!(!state.adopt(known("c1", 99)), "it knows c1 already");
    assert!(!state.adopt(known("c2", 99)), "nor twice");
    let c1 = &state.cluster_statuses(20)[0];
    assert_eq!((c1.name.as_str(), c1.connected), ("c1", true), "untouched");
    state.cached_answer(20);
    assert_eq!(rebuilds(&mut state), 0, "nothing added: the merge stands");
}

#[test]
fn only_a_known_disconnected_cluster_is_forgotten() {
    let mut state = RegionState::restore([known("gone", 1)]);
    let link = connect(&mut state, "c1", 0);
    state.cached_answer(0);
    rebuilds(&mut state);

    assert_eq!(state.forget(&id("c1")), Err(()), "linked");
    assert_eq!(state.forget(&id("nobody")), Ok(false));
    state.cached_answer(0);
    assert_eq!(rebuilds(&mut state), 0, "refusals change nothing");

    assert_eq!(state.forget(&id("gone")), Ok(true));
    assert_eq!(state.forget(&id("gone")), Ok(false), "forgotten already");
    state.cached_answer(0);
    assert_eq!(rebuilds(&mut state), 1, "forgetting drops the kept merge");
    let ids: Vec<_> = state
        .cluster_statuses(0)
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, vec![id("c1")]);

    state.handle_link_closed(link, 5);
    assert_eq!(state.forget(&id("c1")), Ok(true), "disconnected now");
}

#[test]
fn links_of_names_every_open_link_of_one_identity() {
    let mut state = RegionState::default();
    let current = connect(&mut state, "c1", 0);
    let waiting = state.handle_authenticated(id("c1")).expect("a slot");
    let other = connect(&mut state, "c2", 0);
    assert_eq!(state.links_of(&id("c1")), vec![current, waiting]);
    assert_eq!(state.links_of(&id("c2")), vec![other]);
    let both = [id("c1"), id("c2")];
    assert_eq!(
        state.links_of_any(|c| both.contains(c)),
        vec![current, waiting, other],
        "one pass, in link order"
    );
    assert!(state.links_of_any(|c| c == &id("c9")).is_empty());
    assert!(state.links_of(&id("c3")).is_empty());
}

#[test]
fn link_ids_count_up_from_one_and_are_never_reused() {
    let mut state = RegionState::default();
    let first = state.handle_authenticated(id("c1")).expect("a slot");
    state.handle_register_refused(first);
    let second = state.handle_authenticated(id("c1")).expect("a slot");
    assert_eq!((first, second), (1, 2));
}

#[test]
fn a_refused_register_drops_only_an_unregistered_link() {
    let mut state = RegionState::default();
    let link = state.handle_authenticated(id("c1")).expect("a slot");
    state.handle_register_refused(link);
    assert_eq!(state.link(link), None, "its slot is free");
    assert!(state.links_of(&id("c1")).is_empty());

    let registered = connect(&mut state, "c2", 0);
    state.handle_register_refused(registered);
    assert_eq!(
        state.link(registered),
        Some(&LinkRole::Registered(id("c2"))),
        "a registered link stays"
    );
}

#[test]
fn a_frame_dates_a_known_cluster_only() {
    let mut state = RegionState::default();
    connect(&mut state, "c1", 0);
    assert!(state.handle_heard(&id("c1"), 700));
    assert_eq!(state.cluster_statuses(800)[0].last_seen_ms, 700);
    assert!(!state.handle_heard(&id("nobody"), 700));
    assert_eq!(state.cluster_statuses(800).len(), 1);
}

#[test]
fn a_rename_changes_the_name_only() {
    let mut state = RegionState::default();
    connect(&mut state, "c1", 0);
    state.handle_rename(&id("c1"), "renamed".into());
    state.handle_rename(&id("nobody"), "ghost".into());
    let statuses = state.cluster_statuses(0);
    let names: Vec<_> = statuses
        .iter()
        .map(|s| (s.id.as_str(), s.name.as_str(), s.connected))
        .collect();
    assert_eq!(names, vec![("c1", "renamed", true)]);
}

#[test]
fn held_images_are_each_clusters_last_snapshot_with_its_age() {
    let mut state = RegionState::restore([known("a-gone", 3)]);
    connect(&mut state, "c1", 0);
    state.handle_report(&id("c1"), report("jammy"), 200);
    let held = state.held_images(1_000);
    assert_eq!(
        held,
        vec![
            HeldImages {
                cluster: id("a-gone"),
                connected: false,
                disconnected_since_ms: Some(3),
                age_ms: None,
                images: Vec::new(),
            },
            HeldImages {
                cluster: id("c1"),
                connected: true,
                disconnected_since_ms: None,
                age_ms: Some(800),
                images: report("jammy").images.as_ref().clone(),
            },
        ]
    );
    assert_eq!(state.cluster_statuses(1_000)[1].image_count, 1);
}

#[test]
fn fanout_targets_and_connected_links_name_every_cluster_and_its_link() {
    let mut state = RegionState::restore([known("a-gone", 3)]);
    let link = connect(&mut state, "c1", 0);
    state.handle_authenticated(id("c9")).expect("a slot");
    assert_eq!(
        state.fanout_targets(),
        vec![(id("a-gone"), None), (id("c1"), Some(link))]
    );
    let connected: Vec<_> = state
        .connected_links()
        .map(|(id, link)| (id.clone(), link))
        .collect();
    assert_eq!(connected, vec![(id("c1"), link)]);
}

#[test]
fn a_fanout_answer_dates_its_cluster_but_never_backwards() {
    let mut state = RegionState::default();
    connect(&mut state, "c1", 0);
    state.handle_heard(&id("c1"), 900);
    let answers = vec![(id("c1"), ClusterAnswer::Answered(report("jammy")))];
    state.handle_answers(&answers, 500);
    assert_eq!(state.cluster_statuses(1_000)[0].last_seen_ms, 900);
    state.handle_answers(&answers, 1_200);
    assert_eq!(state.cluster_statuses(1_300)[0].last_seen_ms, 1_200);
}

/// The cached epoch moves at every change a cached answer shows, and at nothing else: the
/// API answers 304 on it without building the answer, so a missed move would serve a stale
/// view as unchanged.
#[test]
fn the_cached_epoch_moves_exactly_when_a_cached_answer_changes_beyond_its_ages() {
    let mut state = RegionState::default();
    let moved = |state: &mut RegionState, before: u64| state.cached_epoch() != before;
    let mut epoch = state.cached_epoch();

    let link = connect(&mut state, "c1", 0);
    assert!(moved(&mut state, epoch), "a cluster registered");
    epoch = state.cached_epoch();

    state.handle_report(&id("c1"), report("jammy"), 10);
    assert!(moved(&mut state, epoch), "its first snapshot");
    epoch = state.cached_epoch();

    state.handle_report(&id("c1"), report("jammy"), 20);
    state.handle_heard(&id("c1"), 25);
    state.cached_answer(30);
    assert_eq!(
        state.cached_epoch(),
        epoch,
        "same content, a frame heard, a read: ages only"
    );
    let (head_epoch, view, clusters) = state.cached_head();
    assert_eq!((head_epoch, clusters), (epoch, 1));
    assert!(
        Arc::ptr_eq(&view, &state.cached_answer(30).view),
        "the kept merge"
    );

    state.handle_report(&id("c1"), report("noble"), 40);
    assert!(moved(&mut state, epoch), "new content");
    epoch = state.cached_epoch();

    state.handle_rename(&id("c1"), "c1".into());
    assert_eq!(state.cached_epoch(), epoch, "the same name again");
    state.handle_rename(&id("c1"), "renamed".into());
    assert!(moved(&mut state, epoch), "a new name");
    epoch = state.cached_epoch();

    assert!(state.adopt(known("c2", 5)));
    assert!(moved(&mut state, epoch), "a cluster adopted");
    epoch = state.cached_epoch();
    assert!(!state.adopt(known("c2", 6)));
    assert_eq!(
        state.cached_epoch(),
        epoch,
        "adopting a known cluster changes nothing"
    );

    state.handle_link_closed(link, 50);
    assert!(moved(&mut state, epoch), "a link lost");
    epoch = state.cached_epoch();

    assert_eq!(state.forget(&id("c2")), Ok(true));
    assert!(moved(&mut state, epoch), "a cluster forgotten");
    epoch = state.cached_epoch();
    assert_eq!(state.forget(&id("nobody")), Ok(false));
    assert_eq!(
        state.cached_epoch(),
        epoch,
        "forgetting an unknown cluster changes nothing"
    );
}
