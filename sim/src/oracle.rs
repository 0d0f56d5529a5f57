//! The reference model the invariants hold the region's answers to.
//!
//! It is fed only by what the world itself did: which image sets each cluster held and from
//! when (the world changes them), and what the network carried (which clusters the region
//! acknowledged a `Register` to, which replies each cluster sent and when they reached the
//! region). From that, and from the rules in ARCHITECTURE.md and `core/src/mesh.rs`'s header
//! written out again here, it says what any answer may claim about each cluster. It never
//! reads the region's state, its store or its merge (`MeshView::from_answers`).
//!
//! The rules it encodes:
//!
//! - every cluster the region acknowledged as registered is named by every answer, either as
//!   answering or as not answering, never both; with several regions on one store, every
//!   cluster *any* region acknowledged is named by every region's answers, once the regions'
//!   heartbeat had time to pass it on ([`ADOPTION_BOUND_MS`]);
//! - a cluster's contribution to a view (the OSes and releases it supports; per arch, the
//!   purposes of the images it holds of a release it lists) is what the cluster held at one
//!   moment no later than when the region received it: a live answer's "now", a cached
//!   answer's "now − age";
//! - a cluster that did not answer contributes nothing;
//! - a live answer's "answered" means the cluster's replies to `ListOperatingSystems` and
//!   `ListBootImages` reached the region during that fan-out.

use osmesh_core::os::{Registry, RegistryConfig};
use osmesh_core::{BootImage, Purpose};
use std::collections::{BTreeMap, BTreeSet};

use crate::net::Observed;

pub mod credentials;

pub use credentials::{Attack, Credentials, IdentityEvent};

/// The longest a report can take from the cluster's scan to the region: the largest delay,
/// duplicate delay and slow-reply penalty a scenario or swarm draws (3 s + 3 s + 8 s), with
/// room to spare. A report the region received at `t` shows what the cluster held at some
/// moment in `t - STALENESS_BOUND_MS ..= t`.
pub const STALENESS_BOUND_MS: u64 = 30_000;

/// The longest the region may take from a report's arrival to the time it records for it: a
/// fan-out keeps every answer until its slowest cluster is done, within the longest deadline
/// a caller may give (`MAX_LIVE_TIMEOUT`, 60 s).
pub const RECORD_SLACK_MS: u64 = 60_000;

/// The longest a region may take to name a cluster another region acknowledged as
/// registered: the registry's heartbeat, which reads the store's clusters and hands the new
/// ones to the actor, beats every `REGION_HEARTBEAT_INTERVAL`; one second more for the actor
/// to take them.
pub const ADOPTION_BOUND_MS: u64 =
    osmesh_actors::region::regions::REGION_HEARTBEAT_INTERVAL.as_millis() as u64 + 1_000;

/// `(osystem, release)`.
pub type ReleaseKey = (String, String);
/// `(osystem, release, arch)`.
pub type ArchKey = (String, String, String);

/// What one cluster's part of a view says: the OSes and releases it supports, and per
/// `(osystem, release, arch)` the purposes it has images for. Comparable with the same
/// projection of a region's view onto that cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Projection {
    pub osystems: BTreeSet<String>,
    pub releases: BTreeSet<ReleaseKey>,
    pub available: BTreeMap<ArchKey, BTreeSet<Purpose>>,
}

/// One image set a cluster held, from `since_ms` on: its registry's listing and, apart, the
/// purposes of its images (a live fan-out asks for the two in separate calls, so an answer
/// may pair the listing of one set with the images of the next).
#[derive(Clone, Debug)]
pub struct Held {
    pub since_ms: u64,
    pub osystems: BTreeSet<String>,
    pub releases: BTreeSet<ReleaseKey>,
    /// Every image's purposes, whether or not the registry lists its release.
    pub images: BTreeMap<ArchKey, BTreeSet<Purpose>>,
}

impl Held {
    /// What the cluster with `config` holding `images` shows: the availability rule is that a
    /// release is available for an arch only where the cluster lists it and holds an image.
    pub fn new(since_ms: u64, config: &RegistryConfig, images: &[BootImage]) -> Held {
        let registry = Registry::new(config, images);
        let listing = registry.list();
        let osystems = listing.iter().map(|os| os.name.clone()).collect();
        let releases = listing
            .iter()
            .flat_map(|os| {
                os.releases
                    .iter()
                    .map(|r| (os.name.clone(), r.name.clone()))
            })
            .collect();
        let mut by_arch: BTreeMap<ArchKey, BTreeSet<Purpose>> = BTreeMap::new();
        for image in registry.boot_images() {
            let key = (
                image.osystem.clone(),
                image.release.clone(),
                image.arch.clone(),
            );
            by_arch
                .entry(key)
                .or_default()
                .extend(image.purposes.iter().copied());
        }
        Held {
            since_ms,
            osystems,
            releases,
            images: by_arch,
        }
    }

    /// The projection when the listing is this set's and the images are `images_of`'s.
    pub fn projection_with(&self, images_of: &Held) -> Projection {
        Projection {
            osystems: self.osystems.clone(),
            releases: self.releases.clone(),
            available: images_of
                .images
                .iter()
                .filter(|((os, release, _), _)| {
                    self.releases.contains(&(os.clone(), release.clone()))
                })
                .map(|(key, purposes)| (key.clone(), purposes.clone()))
                .collect(),
        }
    }

    /// Whether `projection` is [`Held::projection_with`]`(images_of)`, compared without
    /// building it (the listing of a registry runs to dozens of releases).
    pub fn shows(&self, images_of: &Held, projection: &Projection) -> bool {
        if self.osystems != projection.osystems || self.releases != projection.releases {
            return false;
        }
        // One key reused for every lookup: comparing allocates nothing.
        let mut key = (String::new(), String::new());
        let listed = images_of.images.iter().filter(|((os, release, _), _)| {
            key.0.clear();
            key.0.push_str(os);
            key.1.clear();
            key.1.push_str(release);
            self.releases.contains(&key)
        });
        listed.eq(projection.available.iter())
    }

    pub fn projection(&self) -> Projection {
        self.projection_with(self)
    }
}

/// The reference model of one run.
#[derive(Clone, Debug, Default)]
pub struct Oracle {
    /// Per cluster of the world, every image set it held, oldest first.
    pub history: BTreeMap<String, Vec<Held>>,
    /// What the network carried, as last read from it.
    pub seen: Observed,
    /// What the world did to cluster identities (enrollment, revocation, removal, attacks).
    pub credentials: Credentials,
    /// Counts the image sets recorded and the non-empty observations merged (see
    /// [`Oracle::generation`]).
    changes: u64,
    /// The latest time the region acknowledged a `Register`, if it ever did.
    latest_registration_ms: Option<u64>,
}

impl Oracle {
    /// Records that `cluster` holds `images` from `at_ms` on.
    pub fn hold(
        &mut self,
        cluster: &str,
        at_ms: u64,
        config: &RegistryConfig,
        images: &[BootImage],
    ) {
        self.changes += 1;
        self.history
            .entry(cluster.to_owned())
            .or_default()
            .push(Held::new(at_ms, config, images));
    }

    /// Adds what the network carried since the last call.
    pub fn observe(&mut self, fresh: Observed) {
        if fresh.is_empty() {
            return;
        }
        self.changes += 1;
        let latest = fresh.last_registered.values().max().copied();
        self.latest_registration_ms = self.latest_registration_ms.max(latest);
        self.seen.merge(fresh);
    }

    /// Moves with every change the oracle is told of: an image set held ([`Oracle::hold`]),
    /// anything new the network carried ([`Oracle::observe`]), an identity event or attack.
    /// While it stays the same, so does every verdict the oracle gives for the same inputs
    /// and time (the fields are public for tests; the world changes them only through these).
    pub fn generation(&self) -> u64 {
        self.changes + self.credentials.changes()
    }

    /// Whether every registration and identity event is at least `settle_ms` older than
    /// `at_ms`: from then on, with the same [`Oracle::generation`], which clusters an answer
    /// must name and which are cut off no longer depend on when the answer was asked for
    /// (each rule compares those times with the answer's time, plus at most `settle_ms`).
    pub fn settled_at(&self, at_ms: u64, settle_ms: u64) -> bool {
        let older = |t: Option<u64>| t.is_none_or(|t| t.saturating_add(settle_ms) < at_ms);
        older(self.latest_registration_ms) && older(self.credentials.latest_event_ms())
    }

    /// The clusters the region acknowledged as registered, in id order, but for those
    /// removed since their last registration.
    pub fn registered(&self) -> impl Iterator<Item = &str> {
        self.seen
            .registered
            .keys()
            .map(String::as_str)
            .filter(|c| !self.removed_since_registered(c))
    }

    /// [`Oracle::registered`], less a cluster whose registration is not older than
    /// `issued_ms` (its first, or its latest once it was ever removed): an answer asked for in
    /// that same virtual millisecond may have been built just before it.
    pub fn registered_before(&self, issued_ms: u64) -> impl Iterator<Item = &str> {
        self.registered().filter(move |c| {
            let first = self
                .seen
                .registered
                .get(*c)
                .is_some_and(|at| *at < issued_ms);
            let since_removal = self.credentials.last_removed(c).is_none()
                || self
                    .seen
                    .last_registered
                    .get(*c)
                    .is_some_and(|at| *at < issued_ms);
            first && since_removal
        })
    }

    /// Whether `cluster` was removed after the region last acknowledged its `Register`.
    pub fn removed_since_registered(&self, cluster: &str) -> bool {
        let Some(removed) = self.credentials.last_removed(cluster) else {
            return false;
        };
        self.seen
            .last_registered
            .get(cluster)
            .is_none_or(|at| *at <= removed)
    }

    /// Whether `cluster`'s registry ever listed `release`.
    pub fn ever_listed(&self, cluster: &str, release: &ReleaseKey) -> bool {
        self.history
            .get(cluster)
            .is_some_and(|h| h.iter().any(|held| held.releases.contains(release)))
    }

    /// The clusters an answer of the region at `region`, asked for at `issued_ms`, must name:
    /// those it acknowledged as registered itself, and those any region acknowledged at least
    /// [`ADOPTION_BOUND_MS`] before; never one removed since. A cluster that was removed and
    /// came back is new again: every region must name it once its latest registration is
    /// [`ADOPTION_BOUND_MS`] old (a region that forgot it at the removal learns of it again
    /// through its heartbeat, like any cluster only others saw). In id order.
    pub fn must_name<'a>(
        &'a self,
        region: &'a str,
        issued_ms: u64,
    ) -> impl Iterator<Item = &'a str> {
        self.seen
            .registered
            .iter()
            .filter(move |(id, at)| {
                let adopted_by = |at: u64| at.saturating_add(ADOPTION_BOUND_MS) <= issued_ms;
                if self.credentials.last_removed(id).is_some() {
                    let latest = self.seen.last_registered.get(*id).copied();
                    return latest.is_some_and(adopted_by);
                }
                self.seen.registered_with(id, region, issued_ms) || adopted_by(**at)
            })
            .filter(|(id, _)| !self.removed_since_registered(id))
            .map(|(id, _)| id.as_str())
    }

    /// How many image sets `cluster` has held: grows with each change, so a verdict that
    /// read the history can say which history it read.
    pub fn history_len(&self, cluster: &str) -> usize {
        self.history.get(cluster).map_or(0, Vec::len)
    }

    /// The image sets `cluster` held at some moment up to `at_ms`.
    pub fn held_by(&self, cluster: &str, at_ms: i128) -> &[Held] {
        let history = self.history.get(cluster).map_or(&[][..], Vec::as_slice);
        let n = history
            .iter()
            .take_while(|h| i128::from(h.since_ms) <= at_ms)
            .count();
        &history[..n]
    }

    /// The image sets a report the region received at `at_ms` may show: those `cluster`
    /// held at some moment in `at_ms - STALENESS_BOUND_MS ..= at_ms` (a report is scanned
    /// when it is sent, and no frame spends longer than the bound in flight).
    pub fn reportable(&self, cluster: &str, at_ms: i128) -> Vec<&Held> {
        self.held_between(cluster, at_ms - i128::from(STALENESS_BOUND_MS), at_ms)
    }

    /// The image sets `cluster` held at some moment in `from_ms..=to_ms`.
    pub fn held_between(&self, cluster: &str, from_ms: i128, to_ms: i128) -> Vec<&Held> {
        let held = self.held_by(cluster, to_ms);
        let from = from_ms;
        held.iter()
            .enumerate()
            .filter(|(i, _)| {
                held.get(i + 1)
                    .is_none_or(|next| i128::from(next.since_ms) > from)
            })
            .map(|(_, h)| h)
            .collect()
    }

    /// What `cluster` holds now.
    pub fn current(&self, cluster: &str) -> Option<&Held> {
        self.history.get(cluster).and_then(|h| h.last())
    }

    /// Whether `projection` is what `cluster` could have reported by `at_ms`: the listing of
    /// one set it held and the images of the same or another one, both held by then (the two
    /// are separate calls, answered in either order).
    pub fn explains(&self, cluster: &str, at_ms: i128, projection: &Projection) -> bool {
        let from = at_ms - i128::from(STALENESS_BOUND_MS);
        self.explains_between(cluster, from, at_ms, projection)
    }

    /// Whether `projection` pairs the listing and the images of sets `cluster` held at some
    /// moment in `from_ms..=to_ms`.
    pub fn explains_between(
        &self,
        cluster: &str,
        from_ms: i128,
        to_ms: i128,
        projection: &Projection,
    ) -> bool {
        let held = self.held_between(cluster, from_ms, to_ms);
        held.iter()
            .any(|listing| held.iter().any(|images| listing.shows(images, projection)))
    }

    /// Whether `cluster` held an image of `os`/`release` for `arch` serving one of
    /// `purposes`, in a release its registry listed, at some time up to `at_ms`.
    pub fn held_for(
        &self,
        cluster: &str,
        at_ms: i128,
        key: &ArchKey,
        purposes: &[Purpose],
    ) -> bool {
        self.held_by(cluster, at_ms).iter().any(|h| {
            h.projection()
                .available
                .get(key)
                .is_some_and(|p| purposes.iter().any(|x| p.contains(x)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(spec: &str) -> BootImage {
        crate::scenario::parse_images(&[spec.to_owned()])
            .expect("a valid image")
            .remove(0)
    }

    #[test]
    fn availability_needs_the_listing_and_the_image() {
        let config = RegistryConfig::default();
        let held = Held::new(0, &config, &[image("ubuntu/amd64/generic/jammy:install")]);
        let p = held.projection();
        assert!(p.releases.contains(&("ubuntu".into(), "jammy".into())));
        assert_eq!(
            p.available
                .get(&("ubuntu".into(), "jammy".into(), "amd64".into()))
                .cloned(),
            Some(BTreeSet::from([Purpose::Install]))
        );
        assert!(!p
            .available
            .contains_key(&("ubuntu".into(), "jammy".into(), "arm64".into())));
    }

    /// The checker's skips rest on this: every change the world tells the oracle of moves
    /// its generation, and nothing else does.
    #[test]
    fn the_generation_moves_with_every_change_and_only_then() {
        let config = RegistryConfig::default();
        let mut oracle = Oracle::default();
        let start = oracle.generation();
        oracle.observe(Observed::default());
        assert_eq!(oracle.generation(), start, "nothing new was seen");
        oracle.hold("c1", 0, &config, &[image("ubuntu/amd64/generic/jammy")]);
        let held = oracle.generation();
        assert_ne!(held, start);
        let mut fresh = Observed::default();
        fresh.reports.insert("c1".into(), vec![10]);
        oracle.observe(fresh);
        let observed = oracle.generation();
        assert_ne!(observed, held);
        oracle
            .credentials
            .record("c1", 20, credentials::IdentityEvent::Revoked);
        assert_ne!(oracle.generation(), observed);
    }

    #[test]
    fn settled_once_every_registration_and_event_is_older_than_the_window() {
        let mut oracle = Oracle::default();
        assert!(oracle.settled_at(0, 0), "nothing happened yet");
        let mut fresh = Observed::default();
        fresh.last_registered.insert("c1".into(), 100);
        oracle.observe(fresh);
        assert!(
            !oracle.settled_at(100, 0),
            "registered in that very millisecond"
        );
        assert!(oracle.settled_at(101, 0));
        assert!(!oracle.settled_at(150, 50));
        assert!(oracle.settled_at(151, 50));
        oracle
            .credentials
            .record("c1", 300, credentials::IdentityEvent::Removed);
        assert!(
            !oracle.settled_at(300, 0),
            "an event as recent as the answer"
        );
        assert!(oracle.settled_at(301, 0));
    }

    #[test]
    fn only_sets_held_by_the_time_explain_an_answer() {
        let config = RegistryConfig::default();
        let mut oracle = Oracle::default();
        oracle.hold("c1", 0, &config, &[image("ubuntu/amd64/generic/jammy")]);
        oracle.hold("c1", 100, &config, &[image("ubuntu/amd64/generic/noble")]);
        let later = oracle.history["c1"][1].projection();
        assert!(!oracle.explains("c1", 99, &later));
        assert!(oracle.explains("c1", 100, &later));
        let earlier = oracle.history["c1"][0].projection();
        assert!(oracle.explains("c1", 500, &earlier));
        assert!(!oracle.explains("c1", -1, &earlier));
        assert!(!oracle.explains("c2", 500, &earlier));
        // Superseded longer ago than any frame can take: a stale report.
        let stale = 100 + i128::from(STALENESS_BOUND_MS) + 1;
        assert!(!oracle.explains("c1", stale, &earlier));
        assert!(oracle.explains("c1", stale - 2, &earlier));
    }
}
