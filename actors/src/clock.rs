//! The one clock the actors read: tokio time, anchored to a wall-clock instant read once.
//!
//! Under the simulator tokio time is paused and virtual, so every timestamp the region stores
//! or reports is virtual too; in production the anchor is the process start time.

use tokio::time::Instant;

/// Milliseconds since the Unix epoch, as the actors see them.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    anchor: Instant,
    anchor_ms: i64,
}

impl Clock {
    /// A clock whose `now_ms()` equals `anchor_ms` at the moment of the call.
    ///
    /// Production passes the wall clock read once at start-up; the simulator a fixed value.
    pub fn anchored_at(anchor_ms: i64) -> Self {
        Clock {
            anchor: Instant::now(),
            anchor_ms,
        }
    }

    pub fn now_ms(&self) -> i64 {
        let elapsed = Instant::now().saturating_duration_since(self.anchor);
        self.anchor_ms + i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX / 2)
    }
}
