//! `StoreThreads`: the threads regiond runs store calls on, one queue per thread. A call's lane
//! (the region uses a cluster's id) picks its thread, so calls on one lane run in order and a
//! slow one delays only the lanes that share its thread, never the region actor's thread.

use std::sync::mpsc::{channel, Receiver, Sender};

use osmesh_actors::store::{BlockingLanes, LaneJob};

/// A fixed set of store threads. Size it to the store's pool (`StoreOptions::pool_size`): more
/// threads than connections would only wait for one.
pub struct StoreThreads {
    queues: Vec<Sender<LaneJob>>,
}

impl StoreThreads {
    /// Starts `threads` store threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<StoreThreads> {
        let mut queues = Vec::with_capacity(threads.max(1));
        for n in 0..threads.max(1) {
            let (tx, rx) = channel::<LaneJob>();
            std::thread::Builder::new()
                .name(format!("store-{n}"))
                .spawn(move || store_thread(&rx))?;
            queues.push(tx);
        }
        Ok(StoreThreads { queues })
    }
}

impl StoreThreads {
    /// Which thread serves `lane` (0-based): calls on lanes of different threads never wait
    /// for each other.
    pub fn thread_of(&self, lane: &str) -> usize {
        lane_index(lane, self.queues.len())
    }
}

impl BlockingLanes for StoreThreads {
    fn submit(&self, lane: &str, job: LaneJob) {
        let index = lane_index(lane, self.queues.len());
        // A send fails only once the thread has gone; the dropped job reads as `Stopped`.
        let _ = self.queues[index].send(job);
    }
}

/// Which of `threads` serves `lane`: FNV-1a of its bytes, so a lane keeps its thread.
fn lane_index(lane: &str, threads: usize) -> usize {
    let hash = lane.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % threads as u64) as usize
}

fn store_thread(rx: &Receiver<LaneJob>) {
    while let Ok(job) = rx.recv() {
        // A panicking call must not take the thread (and its lanes) with it; its caller sees
        // its reply channel dropped (`StoreError::Stopped`).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_keeps_its_thread_and_lanes_spread() {
        assert_eq!(lane_index("cluster-a", 8), lane_index("cluster-a", 8));
        let used: std::collections::BTreeSet<_> =
            (0..64).map(|n| lane_index(&format!("c{n}"), 8)).collect();
        assert!(used.len() > 4, "{used:?}");
    }
}
