//! How long a peer's sync task waits before reconnecting: "decorrelated jitter" (each delay
//! drawn uniformly from `[initial, 3 × previous]`, capped at `max`, "previous" starting at
//! `initial`), started over after a good session.
//!
//! Why jitter: every follower of a hotline loses its connection at the same moment when the
//! hotline restarts; with plain doubling they would all come back in lockstep, each wave a
//! thundering herd of full pulls. Why the reset: before it, the delay only ever grew, so a
//! follower that had once waited out a long outage reconnected after a blip of a healthy link
//! as slowly as after the outage. Decorrelated rather than "full" jitter so that no delay is
//! ever shorter than `initial` (a peer that fails at once is not retried in a tight loop).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// One peer's reconnect delays.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// The last delay returned; `None` right after a reset.
    last: Option<Duration>,
    rng: StdRng,
}

impl Backoff {
    /// Delays between `initial_ms` and `max_ms`, from an RNG seeded by the OS.
    pub fn new(initial_ms: u64, max_ms: u64) -> Self {
        Self::with_rng(initial_ms, max_ms, StdRng::from_entropy())
    }

    /// The same with a given RNG (tests use a seeded one).
    pub fn with_rng(initial_ms: u64, max_ms: u64, rng: StdRng) -> Self {
        let initial = Duration::from_millis(initial_ms.max(1));
        Self {
            initial,
            max: Duration::from_millis(max_ms).max(initial),
            last: None,
            rng,
        }
    }

    /// The delay before the next attempt: uniform in `[initial, min(max, 3 × previous)]`,
    /// where "previous" is `initial` after [`reset`](Self::reset) (or creation), so even the
    /// first retry of peers that failed together is spread.
    pub fn next_delay(&mut self) -> Duration {
        let prev = self.last.unwrap_or(self.initial);
        let hi = prev.saturating_mul(3).min(self.max);
        let delay = if hi <= self.initial {
            self.initial
        } else {
            self.rng.gen_range(self.initial..=hi)
        };
        self.last = Some(delay);
        delay
    }

    /// After a good session: the next delay starts from `initial` again.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded(seed: u64) -> Backoff {
        Backoff::with_rng(200, 30_000, StdRng::seed_from_u64(seed))
    }

    #[test]
    fn delays_stay_within_initial_and_max_and_grow_towards_max() {
        let (initial, max) = (Duration::from_millis(200), Duration::from_millis(30_000));
        let mut b = seeded(7);
        let mut prev = Some(initial);
        let mut reached_max_region = false;
        for _ in 0..200 {
            let d = b.next_delay();
            assert!(d >= initial && d <= max, "{d:?}");
            if let Some(p) = prev {
                assert!(d <= (p * 3).min(max), "{d:?} after {p:?}");
            }
            reached_max_region |= d > max / 2;
            prev = Some(d);
        }
        assert!(reached_max_region, "failures back off towards the cap");
    }

    #[test]
    fn jitter_spreads_peers_that_failed_together() {
        // Ten peers' tasks failing in lockstep, each with its own RNG: their fifth delays
        // differ (without jitter they would be identical).
        let fifth: std::collections::BTreeSet<Duration> = (0..10)
            .map(|seed| {
                let mut b = seeded(seed);
                (0..5).map(|_| b.next_delay()).last().unwrap()
            })
            .collect();
        assert!(fifth.len() >= 8, "{fifth:?}");
    }

    #[test]
    fn reset_after_a_good_session_starts_over() {
        let mut b = seeded(1);
        for _ in 0..50 {
            b.next_delay();
        }
        assert!(b.next_delay() > Duration::from_millis(200));
        b.reset();
        let first = b.next_delay();
        assert!(
            first >= Duration::from_millis(200) && first <= Duration::from_millis(600),
            "{first:?}"
        );
    }

    #[test]
    fn same_seed_same_delays() {
        let (mut a, mut b) = (seeded(42), seeded(42));
        for _ in 0..20 {
            assert_eq!(a.next_delay(), b.next_delay());
        }
    }

    #[test]
    fn degenerate_settings_do_not_panic() {
        let mut b = Backoff::with_rng(0, 0, StdRng::seed_from_u64(0));
        for _ in 0..5 {
            assert_eq!(b.next_delay(), Duration::from_millis(1));
        }
        let mut b = Backoff::with_rng(500, 100, StdRng::seed_from_u64(0));
        assert_eq!(b.next_delay(), Duration::from_millis(500));
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }
}
