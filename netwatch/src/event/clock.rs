//! Kernel timestamps are CLOCK_MONOTONIC; users want wall-clock time.

use jiff::Timestamp;

fn now(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_MONOTONIC now, in the kernel's `bpf_ktime_get_ns` units.
pub fn monotonic_ns() -> u64 {
    now(libc::CLOCK_MONOTONIC) as u64
}

/// Converts monotonic timestamps to wall-clock ones. The offset is taken
/// once: a wall-clock step (NTP) while running shifts later times by the
/// step, which is what `date` would also show.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    offset_ns: i128,
}

impl WallClock {
    pub fn new() -> Self {
        Self { offset_ns: now(libc::CLOCK_REALTIME) - now(libc::CLOCK_MONOTONIC) }
    }

    pub fn at(&self, mono_ns: u64) -> Timestamp {
        let ns = self.offset_ns + i128::from(mono_ns);
        // Split in i64 (any time until 2262): `from_nanosecond`'s i128
        // division cost as much as the rest of an event's timestamp.
        match i64::try_from(ns) {
            Ok(ns) => Timestamp::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as i32),
            Err(_) => Timestamp::from_nanosecond(ns),
        }
        .unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Formats timestamps as `<per-second prefix><fraction>`, formatting the
/// prefix only when the second changes: at hundreds of thousands of events
/// a second, a full calendar conversion per event is most of the cost.
#[derive(Debug)]
pub struct SecondCache {
    second: i64,
    prefix: String,
    format: &'static str,
    tz: jiff::tz::TimeZone,
}

impl SecondCache {
    /// `format` is a strftime pattern for the whole-second part.
    pub fn new(format: &'static str, tz: jiff::tz::TimeZone) -> Self {
        Self { second: i64::MIN, prefix: String::new(), format, tz }
    }

    /// The whole-second part of `at` and its microseconds.
    pub fn split(&mut self, at: Timestamp) -> (&str, u32) {
        let second = at.as_second();
        if second != self.second {
            self.second = second;
            self.prefix = at.to_zoned(self.tz.clone()).strftime(self.format).to_string();
        }
        (&self.prefix, (at.subsec_nanosecond() / 1000) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The i64 split is `from_nanosecond`'s, before the epoch too.
    #[test]
    fn at_splits_as_from_nanosecond() {
        for offset_ns in [0i128, 1_700_000_000_123_456_789, -5_000_000_001, -1] {
            let clock = WallClock { offset_ns };
            for mono in [0u64, 1, 999_999_999, 1_000_000_000, 86_400_123_456_789] {
                let want = Timestamp::from_nanosecond(offset_ns + i128::from(mono)).unwrap();
                assert_eq!(clock.at(mono), want, "{offset_ns} + {mono}");
            }
        }
    }

    #[test]
    fn second_cache_matches_full_formatting() {
        let mut c = SecondCache::new("%Y-%m-%dT%H:%M:%S", jiff::tz::TimeZone::UTC);
        for ns in [0i128, 999_999_999, 1_700_000_000_123_456_789, 1_700_000_000_999_999_000] {
            let at = Timestamp::from_nanosecond(ns).unwrap();
            let (prefix, us) = c.split(at);
            let full = at.strftime("%Y-%m-%dT%H:%M:%S%.6f").to_string();
            assert_eq!(format!("{prefix}.{us:06}"), full);
        }
    }
}
