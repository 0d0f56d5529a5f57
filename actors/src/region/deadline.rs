//! The live read's hard deadline: how much of it the fan-out may wait for clusters.
//!
//! A live read must answer by its deadline however many clusters hang. The fan-out stops
//! waiting for clusters at `fanout_budget`; what is left of the deadline is reserved for the
//! work after it: merging the answers (in the region) and rendering the answer (in the API),
//! estimated from recent reads: twice the slowest recent merge plus the slowest recent
//! render, at most a quarter of the deadline. A merge is learned whenever the region merges
//! every cluster's view from scratch, for the cached view as much as for a live read (a live
//! read that reuses the kept merge teaches nothing: the next one may not be able to). Time
//! is tokio time, so in the simulator (virtual time, where a merge takes no time) the budget
//! is the deadline.

use std::time::Duration;

/// The most of a deadline ever reserved for the merge and the render.
const MAX_RESERVE_FRACTION: u32 = 4;

/// What recent live reads' merges and renders took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveReserve {
    /// The slowest recent merge; halves at each faster one, so one slow merge is forgotten.
    recent_merge: Duration,
    /// The slowest recent render of a live answer, forgotten the same way.
    recent_render: Duration,
}

impl LiveReserve {
    /// How long the fan-out of a live read with `deadline` may wait for clusters.
    pub fn fanout_budget(&self, deadline: Duration) -> Duration {
        let reserve =
            ((self.recent_merge + self.recent_render) * 2).min(deadline / MAX_RESERVE_FRACTION);
        deadline - reserve
    }

    /// A merge of every cluster's view from scratch took `took`.
    pub fn merged(&mut self, took: Duration) {
        self.recent_merge = took.max(self.recent_merge / 2);
    }

    /// Rendering a live answer (after the region answered) took `took`.
    pub fn rendered(&mut self, took: Duration) {
        self.recent_render = took.max(self.recent_render / 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn with_no_merge_cost_the_fanout_has_the_whole_deadline() {
        assert_eq!(LiveReserve::default().fanout_budget(ms(500)), ms(500));
        let mut reserve = LiveReserve::default();
        reserve.merged(Duration::ZERO);
        assert_eq!(reserve.fanout_budget(ms(500)), ms(500));
    }

    #[test]
    fn twice_the_last_merge_is_reserved_inside_the_deadline() {
        let mut reserve = LiveReserve::default();
        reserve.merged(ms(30));
        assert_eq!(reserve.fanout_budget(ms(500)), ms(440));
        // A budget plus the merge it reserved for stays within the deadline.
        assert!(reserve.fanout_budget(ms(500)) + ms(30) <= ms(500));
    }

    #[test]
    fn the_reserve_is_at_most_a_quarter_of_the_deadline() {
        let mut reserve = LiveReserve::default();
        reserve.merged(ms(400));
        assert_eq!(reserve.fanout_budget(ms(500)), ms(375));
        assert_eq!(reserve.fanout_budget(ms(1)), Duration::from_micros(750));
    }

    #[test]
    fn a_slow_merge_is_forgotten_by_halves() {
        let mut reserve = LiveReserve::default();
        reserve.merged(ms(40));
        reserve.merged(ms(5));
        assert_eq!(
            reserve.fanout_budget(ms(500)),
            ms(460),
            "20 ms kept, 40 reserved"
        );
        reserve.merged(ms(5));
        reserve.merged(ms(5));
        assert_eq!(
            reserve.fanout_budget(ms(500)),
            ms(490),
            "5 ms kept, 10 reserved"
        );
    }

    #[test]
    fn the_render_is_reserved_beside_the_merge() {
        let mut reserve = LiveReserve::default();
        reserve.rendered(ms(20));
        assert_eq!(reserve.fanout_budget(ms(500)), ms(460), "render alone");
        reserve.merged(ms(30));
        assert_eq!(reserve.fanout_budget(ms(500)), ms(400), "2 × (30 + 20)");
        reserve.rendered(ms(4));
        assert_eq!(reserve.fanout_budget(ms(500)), ms(420), "2 × (30 + 10)");
        reserve.rendered(ms(400));
        assert_eq!(
            reserve.fanout_budget(ms(500)),
            ms(375),
            "still at most a quarter"
        );
    }
}
