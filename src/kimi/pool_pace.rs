//! Pacing (`--account-min-interval`): spacing out the request starts on one account, jittered
//! ±20 %. The pool keeps one [`Pace`] per account; `Lease::pace` (in `pool.rs`) claims a start
//! here and sleeps until it.

use std::time::{Duration, Instant};

use crate::kimi::accounts;

/// Pacing's jitter: each gap between two starts on an account is the interval times a factor
/// drawn in `[1 - JITTER, 1 + JITTER]`.
const JITTER: f64 = 0.2;

/// Pacing of one account (`--account-min-interval`): the earliest the next request may start
/// on it (the last start plus the jittered interval). The decision is pure: time and jitter
/// are given.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    next: Option<Instant>,
}

impl Pace {
    /// Claims the next start for a request that may wait until `deadline`: the later of `now`
    /// and the next allowed start, after which the next one is `interval` times `jitter` later
    /// (the caller draws `jitter` in `[0.8, 1.2]`). `None`, and nothing claimed, when that start
    /// would come after `deadline`. An `interval` of zero never waits and remembers nothing.
    pub fn claim(
        &mut self,
        now: Instant,
        deadline: Instant,
        interval: Duration,
        jitter: f64,
    ) -> Option<Instant> {
        if interval.is_zero() {
            return Some(now);
        }
        let start = self.next.map_or(now, |next| next.max(now));
        if start > deadline {
            return None;
        }
        let factor = jitter.clamp(1.0 - JITTER, 1.0 + JITTER);
        self.next = Some(start + interval.mul_f64(factor));
        Some(start)
    }
}

/// A jitter factor for [`Pace::claim`], drawn in `[0.8, 1.2)`.
pub fn jitter() -> f64 {
    1.0 - JITTER + 2.0 * JITTER * accounts::random_fraction()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_lets_the_first_start_go_at_once_and_spaces_the_next_by_the_interval() {
        let (t0, interval) = (Instant::now(), Duration::from_secs(6));
        let far = t0 + Duration::from_secs(60);
        let mut pace = Pace::default();
        assert_eq!(pace.claim(t0, far, interval, 1.0), Some(t0), "the first request is not delayed");
        let one_second_later = t0 + Duration::from_secs(1);
        assert_eq!(pace.claim(one_second_later, far, interval, 1.0), Some(t0 + interval));
        // A request long after the last start goes at once.
        let later = t0 + Duration::from_secs(30);
        assert_eq!(pace.claim(later, far, interval, 1.0), Some(later));
    }

    #[test]
    fn pacing_jitter_stays_within_a_fifth_of_the_interval() {
        let (t0, interval) = (Instant::now(), Duration::from_secs(10));
        let far = t0 + Duration::from_secs(600);
        for (jitter, gap) in [(0.8, 8.0), (1.2, 12.0), (0.5, 8.0), (3.0, 12.0), (1.0, 10.0)] {
            let mut pace = Pace::default();
            pace.claim(t0, far, interval, jitter);
            let next = pace.claim(t0, far, interval, 1.0).unwrap();
            assert_eq!(next.duration_since(t0).as_secs_f64(), gap, "jitter {jitter}");
        }
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.8..1.2).contains(&j), "{j}");
        }
    }

    #[test]
    fn concurrent_requests_are_serialised_and_a_start_past_the_deadline_is_not_claimed() {
        let (t0, interval) = (Instant::now(), Duration::from_secs(6));
        let far = t0 + Duration::from_secs(60);
        let mut pace = Pace::default();
        let starts: Vec<Instant> = (0..4).map(|_| pace.claim(t0, far, interval, 1.0).unwrap()).collect();
        assert_eq!(starts, [t0, t0 + interval, t0 + 2 * interval, t0 + 3 * interval]);
        let before = pace;
        let near = t0 + Duration::from_secs(20);
        assert_eq!(pace.claim(t0, near, interval, 1.0), None, "t0 + 24 s is past the deadline");
        assert_eq!(pace, before, "nothing claimed");
        assert_eq!(
            pace.claim(t0, t0 + 4 * interval, interval, 1.0),
            Some(t0 + 4 * interval),
            "a start at the deadline is allowed"
        );
    }

    #[test]
    fn pacing_off_never_waits() {
        let t0 = Instant::now();
        let mut pace = Pace::default();
        for _ in 0..3 {
            assert_eq!(pace.claim(t0, t0, Duration::ZERO, 1.2), Some(t0));
        }
        assert_eq!(pace, Pace::default());
    }
}
