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
        Timestamp::from_nanosecond(ns).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}
