//! Reconnect policy: capped exponential backoff with "equal jitter".
//!
//! Attempt `n` (from 0) waits a delay drawn uniformly from `[c/2, c]` where
//! `c = min(cap, base * 2^n)`. Half the ceiling is fixed, so a reconnect never spins at
//! zero delay; the other half is random, so clusters that lost the region at the same
//! moment do not come back in lockstep. Pure: the RNG is handed in, time is not read.

use rand::Rng;
use std::time::Duration;

/// First reconnect ceiling.
pub const DEFAULT_RECONNECT_BASE: Duration = Duration::from_millis(500);
/// Largest reconnect ceiling.
pub const DEFAULT_RECONNECT_CAP: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Failed attempts since the last `reset`.
    pub attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(DEFAULT_RECONNECT_BASE, DEFAULT_RECONNECT_CAP)
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The ceiling of the current attempt: `min(cap, base * 2^attempt)`, without overflow.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// The delay before the next attempt; counts the attempt.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let nanos = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rng.gen_range(0..=nanos))
    }

    /// Call after a connection succeeded (handshake done).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_stay_within_half_and_full_ceiling_which_doubles_to_the_cap() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut backoff = Backoff::new(ms(100), ms(1_000));
        let ceilings = [100, 200, 400, 800, 1_000, 1_000, 1_000];
        for ceiling in ceilings {
            let delay = backoff.next_delay(&mut rng);
            assert!(
                delay >= ms(ceiling / 2) && delay <= ms(ceiling),
                "{delay:?} vs {ceiling}"
            );
        }
    }

    #[test]
    fn same_seed_same_delays_and_jitter_varies() {
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut backoff = Backoff::new(ms(100), ms(10_000));
            (0..8)
                .map(|_| backoff.next_delay(&mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn reset_starts_again_from_base() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut backoff = Backoff::new(ms(100), ms(10_000));
        for _ in 0..5 {
            backoff.next_delay(&mut rng);
        }
        backoff.reset();
        assert_eq!(backoff.attempt, 0);
        assert!(backoff.next_delay(&mut rng) <= ms(100));
    }

    #[test]
    fn many_attempts_do_not_overflow() {
        let mut rng = StdRng::seed_from_u64(0);
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        backoff.attempt = u32::MAX - 1;
        for _ in 0..3 {
            assert!(backoff.next_delay(&mut rng) <= Duration::from_secs(60));
        }
    }
}
