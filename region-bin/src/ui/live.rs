//! What pushes the page: one poller per server reads the region's cached view every
//! [`POLL_INTERVAL`] while at least one page listens, and bumps a version when the view or any
//! cluster's link state changed; each `/ui/events` stream turns a new version into a
//! server-sent event, upon which the page fetches the view again.
//!
//! Why a poll and not a hook in the region actor: the actor is being rewritten (issue #11)
//! and the cached read is the very answer the page shows, rebuilt by the actor exactly when a
//! snapshot or a link changes (`RenderedView` relies on that too: an unchanged view is the
//! same `Arc`). So the poll costs one actor message and, while nothing changes, no rendering;
//! a change reaches the page within one interval plus the fetch. With no page open the poller
//! stops.

use osmesh_actors::region::service::RegionService;
use osmesh_actors::region::OsystemsAnswer;
use osmesh_core::mesh::MeshView;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the poller reads the cached view while a page listens.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The change feed shared by every HTTP worker.
pub struct Live {
    version: watch::Sender<u64>,
    polling: AtomicBool,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            version: watch::Sender::new(0),
            polling: AtomicBool::new(false),
        }
    }
}

/// The parts of an answer whose change the page must see: the view (by pointer first, then
/// by content) and every cluster's link state; ages are left out (they change on every read).
#[derive(Default)]
struct Fingerprint {
    view: Option<(Arc<MeshView>, [u8; 32])>,
    digest: Option<[u8; 32]>,
}

impl Fingerprint {
    /// Takes in `answer`; whether it differs from the last one (the first always does).
    fn changed(&mut self, answer: &OsystemsAnswer) -> bool {
        let view_digest = match &self.view {
            Some((view, digest)) if Arc::ptr_eq(view, &answer.view) => *digest,
            _ => {
                let mut hasher = Sha256::new();
                if serde_json::to_writer(&mut hasher, &*answer.view).is_err() {
                    return false;
                }
                let digest: [u8; 32] = hasher.finalize().into();
                self.view = Some((answer.view.clone(), digest));
                digest
            }
        };
        let mut hasher = Sha256::new();
        hasher.update(view_digest);
        for part in &answer.clusters {
            let link = (
                &part.cluster,
                &part.name,
                part.connected,
                part.disconnected_since_ms,
                part.age_ms.is_some(),
                &part.no_answer,
            );
            if serde_json::to_writer(&mut hasher, &link).is_err() {
                return false;
            }
        }
        let digest: [u8; 32] = hasher.finalize().into();
        // The first reading counts as a change: a page that fetched the view before this
        // poller started must not miss a change made before the first reading.
        let changed = self.digest != Some(digest);
        self.digest = Some(digest);
        changed
    }
}

impl Live {
    /// A receiver of view versions, starting the poller if none runs. Must be called on an
    /// actix/tokio runtime (an HTTP worker).
    pub fn subscribe(self: &Arc<Self>, service: &RegionService) -> watch::Receiver<u64> {
        let rx = self.version.subscribe();
        if !self.polling.swap(true, Ordering::AcqRel) {
            let live = self.clone();
            let service = service.clone();
            actix_web::rt::spawn(async move { live.poll(service).await });
        }
        rx
    }

    /// The current version (bumped on every change seen).
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    async fn poll(self: Arc<Self>, service: RegionService) {
        let mut fingerprint = Fingerprint::default();
        let mut ticks = tokio::time::interval(POLL_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if self.version.receiver_count() == 0 {
                self.polling.store(false, Ordering::Release);
                // A page that subscribed between the count and the store found `polling` set
                // and started nothing: keep going for it.
                if self.version.receiver_count() == 0 || self.polling.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
            match service.osystems_cached().await {
                Ok(answer) => {
                    if fingerprint.changed(&answer) {
                        self.version.send_modify(|v| *v += 1);
                    }
                }
                // Keep polling: the pages stay subscribed and the region may answer again.
                Err(err) => {
                    tracing::warn!(error = %err, "the page's change feed cannot read the region");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_actors::region::{ClusterPart, ReadPath};
    use osmesh_core::ClusterId;

    fn answer(view: &Arc<MeshView>, connected: bool, age_ms: i64) -> OsystemsAnswer {
        OsystemsAnswer {
            source: ReadPath::Cached,
            view: view.clone(),
            clusters: vec![ClusterPart {
                cluster: ClusterId::new("a"),
                name: "a".into(),
                connected,
                disconnected_since_ms: (!connected).then_some(5),
                age_ms: Some(age_ms),
                no_answer: None,
            }],
            deadline_ms: None,
            elapsed_ms: None,
        }
    }

    #[test]
    fn a_change_is_a_new_view_or_link_state_never_an_age() {
        let view = Arc::new(MeshView::default());
        let mut fp = Fingerprint::default();
        assert!(fp.changed(&answer(&view, true, 0)), "the first reading");
        assert!(!fp.changed(&answer(&view, true, 900)), "only older");
        // An equal view in a new allocation is no change either.
        let same = Arc::new(MeshView::default());
        assert!(!fp.changed(&answer(&same, true, 1_000)));
        assert!(fp.changed(&answer(&same, false, 1_000)), "disconnected");
        let mut other = MeshView::default();
        other.answered.insert(ClusterId::new("a"));
        assert!(
            fp.changed(&answer(&Arc::new(other), false, 1_000)),
            "new view"
        );
    }
}
