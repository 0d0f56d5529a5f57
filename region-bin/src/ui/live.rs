//! What pushes the page: one poller per server reads the validator of the region's cached
//! view every [`POLL_INTERVAL`] while at least one page listens, and bumps a version when it
//! moved; each `/ui/events` stream turns a new version into a server-sent event, upon which
//! the page fetches the view again.
//!
//! Why a poll and not a hook in the region actor: the actor is being rewritten (issue #11)
//! and the validator is the one the API's `ETag` is made of: the region's `CachedValidator`,
//! whose epoch moves at every change a cached answer shows but its ages (a new view, a
//! cluster's link made or lost, a cluster added or renamed). So the poll costs one actor
//! message (`CachedOsystemsHead`, no per-cluster work) and compares two numbers; a change
//! reaches the page within one interval plus the fetch. With no page open the poller stops.

use osmesh_actors::region::service::RegionService;
use osmesh_actors::region::CachedValidator;
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

/// The last validator the poller read.
#[derive(Default)]
struct Fingerprint {
    last: Option<CachedValidator>,
}

impl Fingerprint {
    /// Takes in the cached answer's `validator`; whether it differs from the last one (the
    /// first always does: a page that fetched the view before this poller started must not
    /// miss a change made before the first reading).
    fn changed(&mut self, validator: CachedValidator) -> bool {
        let changed = self.last != Some(validator);
        self.last = Some(validator);
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
            match service.osystems_cached_head().await {
                Ok(head) => {
                    if fingerprint.changed(head.validator) {
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

    #[test]
    fn a_change_is_a_new_validator() {
        let validator = |instance, epoch| CachedValidator { instance, epoch };
        let mut fp = Fingerprint::default();
        assert!(fp.changed(validator(7, 0)), "the first reading");
        assert!(!fp.changed(validator(7, 0)), "the same answer, ages aside");
        assert!(fp.changed(validator(7, 1)), "the epoch moved");
        assert!(fp.changed(validator(8, 1)), "another region instance");
    }
}
