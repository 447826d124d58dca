//! New connections per second, from deltas of a cumulative counter.

use std::collections::VecDeque;

/// Averages over a sliding window, so a burst shows for a few seconds
/// rather than flickering for one frame.
#[derive(Debug)]
pub struct RateMeter {
    window_ns: u64,
    /// `(time, counter)`, oldest first; the first sample is the last one
    /// at or before the window's start.
    samples: VecDeque<(u64, u64)>,
}

impl RateMeter {
    pub fn new(window_ns: u64) -> Self {
        Self { window_ns, samples: VecDeque::new() }
    }

    pub fn push(&mut self, now_ns: u64, total: u64) {
        if let Some(last) = self.samples.back_mut().filter(|&&mut (t, _)| t >= now_ns) {
            // Same instant (or a clock that went backwards): keep the newest count.
            last.1 = total;
            return;
        }
        self.samples.push_back((now_ns, total));
        let start = now_ns.saturating_sub(self.window_ns);
        while self.samples.len() > 2 && self.samples[1].0 <= start {
            self.samples.pop_front();
        }
    }

    /// Per second over the window (or since the first sample, if younger).
    pub fn per_sec(&self) -> f64 {
        let (Some(&(t0, n0)), Some(&(t1, n1))) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        if t1 <= t0 {
            return 0.0;
        }
        n1.saturating_sub(n0) as f64 * 1e9 / (t1 - t0) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn no_rate_until_two_samples() {
        let mut r = RateMeter::new(5 * S);
        assert_eq!(r.per_sec(), 0.0);
        r.push(S, 10);
        assert_eq!(r.per_sec(), 0.0);
    }

    #[test]
    fn rate_is_delta_over_time() {
        let mut r = RateMeter::new(5 * S);
        r.push(S, 0);
        r.push(2 * S, 10);
        assert_eq!(r.per_sec(), 10.0);
        r.push(3 * S, 40);
        assert_eq!(r.per_sec(), 20.0);
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut r = RateMeter::new(5 * S);
        r.push(0, 0);
        r.push(S, 1000);
        for t in 2..=20 {
            r.push(t * S, 1000);
        }
        assert_eq!(r.per_sec(), 0.0, "a burst 19 s ago no longer counts");
        assert!(r.samples.len() <= 7, "bounded: {}", r.samples.len());
        r.push(21 * S, 1050);
        assert_eq!(r.per_sec(), 10.0, "50 over the 5 s window");
    }

    #[test]
    fn same_instant_updates_instead_of_dividing_by_zero() {
        let mut r = RateMeter::new(5 * S);
        r.push(S, 0);
        r.push(2 * S, 5);
        r.push(2 * S, 8);
        assert_eq!(r.per_sec(), 8.0);
    }
}
