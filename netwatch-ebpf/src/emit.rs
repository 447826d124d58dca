//! Counting and the ring buffer: how an event leaves the kernel.

use netwatch_common::{Counter, SockEvent};

use crate::maps::{COUNTERS, EVENTS, READER_AWAKE};

/// `bpf_ringbuf_submit` flag: do not wake the reader.
const BPF_RB_NO_WAKEUP: u64 = 1;

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
/// While events flow the agent drains the ring on its own timer and says
/// so in `READER_AWAKE`: then nothing is woken from here. A wakeup is an
/// interrupt on the CPU of whatever process caused the event, and it pulls
/// the agent onto that CPU, where it competes with the traced workload;
/// that, more than the programs, slowed a busy workload. Once the ring has
/// been quiet the agent sleeps until the kernel's default wakeup (when the
/// ring was empty) tells it of the next event.
#[inline(always)]
pub fn submit(event: &SockEvent) {
    match EVENTS.reserve::<SockEvent>(0) {
        Some(mut entry) => {
            entry.write(*event);
            let awake = READER_AWAKE.get(0).is_some_and(|v| *v != 0);
            entry.submit(if awake { BPF_RB_NO_WAKEUP } else { 0 });
        }
        None => count(Counter::LostEvents),
    }
}
