//! Waiting for a condition with a deadline instead of sleeping a fixed time:
//! as quick as the condition allows on an idle machine, as patient as the
//! deadline on a loaded one, and a failure says what was awaited and what
//! was last seen.

use std::fmt::Display;
use std::thread;
use std::time::{Duration, Instant};

/// How often a condition is looked at again.
pub const POLL: Duration = Duration::from_millis(20);

/// Set by `cargo xtask vmtest`: how many times slower than on the host the
/// tests run there (qemu's TCG emulates every instruction), so that every
/// deadline stretches with the machine rather than failing on its speed.
pub const TIME_SCALE_ENV: &str = "NETWATCH_TEST_TIME_SCALE";

/// `timeout` stretched by [`TIME_SCALE_ENV`] (a whole number, 1 if unset).
pub fn scaled(timeout: Duration) -> Duration {
    let scale = std::env::var(TIME_SCALE_ENV).ok().and_then(|v| v.parse::<u32>().ok()).unwrap_or(1);
    timeout * scale.max(1)
}

/// Calls `probe` until it returns `Ok`, at most for `timeout` (stretched by
/// [`scaled`]), and returns
/// its value. `Err` carries what was seen instead; the last one is in the
/// panic message when the deadline passes.
pub fn until<T, E: Display>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, E>) -> T {
    let timeout = scaled(timeout);
    let start = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(seen) if start.elapsed() >= timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

/// `Ok(())` if `cond`, else `Err(seen())`: the usual body of an [`until`]
/// probe.
pub fn check<E>(cond: bool, seen: impl FnOnce() -> E) -> Result<(), E> {
    if cond {
        Ok(())
    } else {
        Err(seen())
    }
}
