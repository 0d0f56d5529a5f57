//! Where store calls run. A [`StoreHandle`] holds the store and, in regiond, the store's own
//! threads ([`BlockingLanes`], implemented by `osmesh_store::StoreThreads`): a call made
//! through [`StoreHandle::call`] then runs on one of those threads and the caller gets a
//! [`StoreCall::Pending`] to await, so a slow statement never holds the region actor's thread
//! (its links, heartbeats, handshakes and accept loop). Without lanes (the simulator, unit
//! tests) the call runs at once on the calling thread and comes back [`StoreCall::Done`]: no
//! OS thread exists on the simulated path, so virtual time cannot jump during a call and the
//! caller applies the result in the same step, exactly as a direct call would.
//!
//! Calls on one lane run one at a time in the order they were made; the region uses one lane
//! per cluster, so what it writes for a cluster (its registration, snapshot, templates, last
//! seen) lands in the order it happened, while other clusters' calls go on beside it.

use std::sync::Arc;
use tokio::sync::oneshot;

use super::{RegionStore, StoreError};

/// A job for a store thread.
pub type LaneJob = Box<dyn FnOnce() + Send>;

/// Threads that run blocking jobs, in submission order per lane.
pub trait BlockingLanes: Send + Sync + 'static {
    /// Queues `job` on the thread that serves `lane`. Must not block the caller. If the
    /// threads have stopped the job is dropped, which the caller sees as `StoreError::Stopped`.
    fn submit(&self, lane: &str, job: LaneJob);
}

/// The outcome of a store call: ready now (inline), or to be awaited (on a store thread).
#[must_use = "a pending store call's result arrives only through it"]
pub enum StoreCall<T> {
    Done(Result<T, StoreError>),
    Pending(oneshot::Receiver<Result<T, StoreError>>),
}

impl<T> StoreCall<T> {
    /// The call's result, waiting for its thread if it is pending.
    pub async fn outcome(self) -> Result<T, StoreError> {
        match self {
            StoreCall::Done(result) => result,
            StoreCall::Pending(rx) => rx.await.unwrap_or(Err(StoreError::Stopped)),
        }
    }
}

/// The store, and where its calls run. Cheap to clone.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<dyn RegionStore>,
    lanes: Option<Arc<dyn BlockingLanes>>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle")
            .field("on_threads", &self.lanes.is_some())
            .finish_non_exhaustive()
    }
}

impl StoreHandle {
    /// Calls run on the caller's thread (the simulator's way).
    pub fn inline(store: Arc<dyn RegionStore>) -> Self {
        StoreHandle { store, lanes: None }
    }

    /// Calls made through [`StoreHandle::call`] run on `lanes` (regiond's way).
    pub fn on_lanes(store: Arc<dyn RegionStore>, lanes: Arc<dyn BlockingLanes>) -> Self {
        StoreHandle {
            store,
            lanes: Some(lanes),
        }
    }

    /// The store itself, for a synchronous call on the caller's thread (start-up, and
    /// callers that are not the region actor).
    pub fn direct(&self) -> &dyn RegionStore {
        &*self.store
    }

    /// Runs `job` on the store: at once when inline, else queued on `lane`'s thread.
    pub fn call<T: Send + 'static>(
        &self,
        lane: &str,
        job: impl FnOnce(&dyn RegionStore) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreCall<T> {
        let Some(lanes) = &self.lanes else {
            return StoreCall::Done(job(&*self.store));
        };
        let (tx, rx) = oneshot::channel();
        let store = self.store.clone();
        lanes.submit(
            lane,
            Box::new(move || {
                let _ = tx.send(job(&*store));
            }),
        );
        StoreCall::Pending(rx)
    }
}
