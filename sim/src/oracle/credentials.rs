//! What the world did to cluster identities (issue 13), as the identity invariant reads it:
//! when each cluster's credential was issued, revoked or removed (recorded when the
//! operation was done, never read from the region), and what attackers claiming a cluster's
//! identity reported as its.

use std::collections::{BTreeMap, BTreeSet};

use super::ReleaseKey;

/// One thing the world did to a cluster's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityEvent {
    /// A credential was issued and recorded (at world start, or by an `enroll` operation).
    Enrolled,
    /// Revoked: its links were cut and its credential admits nothing any more.
    Revoked,
    /// Removed: the region forgot it and its enrollment.
    Removed,
}

/// An attack the world mounted: who was impersonated, with what, from when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attack {
    pub cluster: String,
    /// How the trace names the credential (`forged`, `revoked`).
    pub credential: String,
    pub from_ms: u64,
}

/// The identity history of one run.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// Per cluster, its identity events in time order.
    events: BTreeMap<String, Vec<(u64, IdentityEvent)>>,
    /// Per impersonated cluster, the releases attackers reported as its (the poison).
    pub poison: BTreeMap<String, BTreeSet<ReleaseKey>>,
    /// Every attack, in order.
    pub attacks: Vec<Attack>,
    /// Counts the events and attacks recorded (see [`super::Oracle::generation`]).
    changes: u64,
    /// The time of the latest event recorded, if any.
    latest_event_ms: Option<u64>,
}

impl Credentials {
    /// Records `event` on `cluster`, done at `at_ms`.
    pub fn record(&mut self, cluster: &str, at_ms: u64, event: IdentityEvent) {
        self.changes += 1;
        self.latest_event_ms = self.latest_event_ms.max(Some(at_ms));
        self.events
            .entry(cluster.to_owned())
            .or_default()
            .push((at_ms, event));
    }

    /// Records an attack on `cluster` reporting `releases` as its.
    pub fn attacked(&mut self, attack: Attack, releases: BTreeSet<ReleaseKey>) {
        self.changes += 1;
        self.poison
            .entry(attack.cluster.clone())
            .or_default()
            .extend(releases);
        self.attacks.push(attack);
    }

    /// The revocation or removal that cuts `cluster` off for an answer issued at
    /// `issued_ms`: the last event done strictly before it, when it is one of those two.
    pub fn cut_off_before(&self, cluster: &str, issued_ms: u64) -> Option<(u64, IdentityEvent)> {
        let last = self
            .events
            .get(cluster)?
            .iter()
            .take_while(|(at, _)| *at < issued_ms)
            .last()
            .copied()?;
        (last.1 != IdentityEvent::Enrolled).then_some(last)
    }

    /// How many events and attacks were recorded: what the credential invariants read
    /// changed only if this did.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// When the latest identity event was done, if one was.
    pub fn latest_event_ms(&self) -> Option<u64> {
        self.latest_event_ms
    }

    /// When `cluster` was last removed, if it ever was.
    pub fn last_removed(&self, cluster: &str) -> Option<u64> {
        self.events
            .get(cluster)?
            .iter()
            .rev()
            .find(|(_, e)| *e == IdentityEvent::Removed)
            .map(|(at, _)| *at)
    }

    /// How the attacks on `cluster` are named in a failure.
    pub fn attacks_on(&self, cluster: &str) -> String {
        let named: Vec<String> = self
            .attacks
            .iter()
            .filter(|a| a.cluster == cluster)
            .map(|a| format!("{} credential from {} ms", a.credential, a.from_ms))
            .collect();
        if named.is_empty() {
            "no attack recorded".into()
        } else {
            named.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_cut_off_after_its_revocation_until_enrolled_again() {
        let mut c = Credentials::default();
        c.record("c1", 0, IdentityEvent::Enrolled);
        c.record("c1", 100, IdentityEvent::Revoked);
        c.record("c1", 500, IdentityEvent::Enrolled);
        assert_eq!(c.cut_off_before("c1", 100), None, "done in the same ms");
        assert_eq!(
            c.cut_off_before("c1", 101),
            Some((100, IdentityEvent::Revoked))
        );
        assert_eq!(c.cut_off_before("c1", 501), None);
        assert_eq!(c.cut_off_before("c2", 501), None);
        c.record("c1", 600, IdentityEvent::Removed);
        assert_eq!(c.last_removed("c1"), Some(600));
        assert_eq!(
            c.cut_off_before("c1", 700),
            Some((600, IdentityEvent::Removed))
        );
    }
}
