//! Counting and the ring buffer: how an event leaves the kernel.

use netwatch_common::{Counter, SockEvent};

use crate::maps::{COUNTERS, EVENTS};

#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, and programs do not nest on one CPU for
        // these hooks, so the increment cannot race.
        unsafe { *slot += 1 };
    }
}

/// Hands `event` to the agent, or counts it as lost (KERNEL-NOTES point 5).
///
/// Default wakeup flags: the kernel only wakes the agent when the ring was
/// empty, and the agent waits ~1 ms after a wakeup before draining, so under
/// load one wakeup covers hundreds of events.
#[inline(always)]
pub fn submit(event: &SockEvent) {
    match EVENTS.reserve::<SockEvent>(0) {
        Some(mut entry) => {
            entry.write(*event);
            entry.submit(0);
        }
        None => count(Counter::LostEvents),
    }
}
