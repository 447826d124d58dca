//! Socket identity where the kernel lets tracing programs read the socket
//! cookie but not make one (`bpf_get_socket_cookie` is callable from
//! tracing programs only since Linux 5.12; on 5.10 a program calling it is
//! rejected: "unknown func bpf_get_socket_cookie#46").
//!
//! The agent keys everything by cookie, so such a kernel still gets one id
//! per socket for the socket's whole life:
//!
//! - the kernel's cookie (`skc_cookie`) when the socket already has one at
//!   its first event: every socket created since netwatch started (the
//!   [`crate::cookies`] programs make it), every socket sock_diag listed at
//!   start-up (a dump makes each socket's cookie), and any socket something
//!   else asked;
//! - otherwise an id of netwatch's own, `SYNTHETIC | cpu << 40 | n` from
//!   a per-CPU counter: kernel cookies count up from 1 (in per-CPU batches
//!   of 4096) and would need a million sockets a second for over a century
//!   to reach 2^52, so the two cannot collide, and no counter repeats an
//!   id. Below 2^53, so JSON readers that hold numbers as doubles (jq,
//!   JavaScript) keep every id exact.
//!
//! Whichever is chosen stays the socket's: `IDS` (socket address -> id) is
//! consulted first, so a kernel cookie made later in the socket's life (a
//! sock_diag dump, a packet counted by the cgroup_skb programs) does not
//! change it. The row is written afresh at each birth (connect, listen, a
//! passive child's first event), so an address reused by a new socket never
//! inherits an old id, and deleted at `tcp_destroy_sock`.
//!
//! Where the helper exists (every newer kernel) the programs pay one load
//! of the frozen `COMPAT` global for this: the verifier knows its value and
//! removes the branch never taken, with the calls in it.

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::generated::bpf_get_smp_processor_id,
    macros::map,
    maps::{HashMap, PerCpuArray},
};
use netwatch_common::names::compat;

/// Bit 52: an id netwatch made, not a kernel cookie.
pub const SYNTHETIC: u64 = 1 << 52;

/// Socket address -> id. One entry in the object: the agent sizes it only
/// when it loads the programs in this mode.
#[map]
pub static IDS: HashMap<u64, u64> = HashMap::with_max_entries(1, 0);

/// How many synthetic ids each CPU made.
#[map]
pub static IDS_NEXT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Set by the agent before load (`netwatch_common::names::GLOBAL_COMPAT`).
#[unsafe(no_mangle)]
pub static COMPAT: u32 = 0;

#[inline(always)]
fn compat_bits() -> u32 {
    // SAFETY: a plain read of a global, volatile for the same reason as OFFSETS.
    unsafe { core::ptr::read_volatile(&COMPAT) }
}

/// Whether tracing programs must do without `bpf_get_socket_cookie`.
#[inline(always)]
pub fn own_ids() -> bool {
    compat_bits() & compat::OWN_IDS != 0
}

/// Whether `bpf_get_current_task_btf` is missing (accept walks the task's
/// files with probe reads instead).
#[inline(always)]
pub fn untyped_task() -> bool {
    compat_bits() & compat::UNTYPED_TASK != 0
}

/// Whether `connect()`'s arguments must be kept at its entry, the exit
/// being unable to read them (`compat::NO_TASK_REGS`).
#[inline(always)]
pub fn no_task_regs() -> bool {
    compat_bits() & compat::NO_TASK_REGS != 0
}

/// The id of `sk`, whose `skc_cookie` reads `kernel`; `birth`: this is the
/// socket's first event, so any row for its address is a dead socket's.
#[inline(always)]
pub fn id(sk: u64, kernel: u64, birth: bool) -> u64 {
    if !birth {
        // SAFETY: the value is copied out at once.
        if let Some(id) = unsafe { IDS.get(sk) } {
            return *id;
        }
    }
    let id = if kernel != 0 { kernel } else { next() };
    // A full map (more live sockets than it holds) leaves this socket
    // without a row: its later events look it up again, and one that
    // finds its kernel cookie made meanwhile names it by that.
    let _ = IDS.insert(sk, id, u64::from(BPF_ANY));
    id
}

/// The id of `sk` if it has one, without making one (accept: the
/// handshake's events made it).
#[inline(always)]
pub fn known(sk: u64, kernel: u64) -> u64 {
    // SAFETY: the value is copied out at once.
    match unsafe { IDS.get(sk) } {
        Some(id) => *id,
        None => kernel,
    }
}

/// `sk` is being freed.
#[inline(always)]
pub fn forget(sk: u64) {
    let _ = IDS.remove(sk);
}

/// A fresh `SYNTHETIC` id: this CPU's number above a count of the ids this
/// CPU made (per CPU, because the BPF target this crate builds for cannot
/// use an atomic add's result; the programs do not nest on one CPU).
#[inline(always)]
fn next() -> u64 {
    // SAFETY: no arguments; returns the current CPU's number.
    let cpu = u64::from(unsafe { bpf_get_smp_processor_id() });
    match IDS_NEXT.get_ptr_mut(0) {
        Some(n) => {
            // SAFETY: this CPU's own slot.
            let count = unsafe {
                *n += 1;
                *n
            };
            SYNTHETIC | ((cpu & CPU_MASK) << CPU_SHIFT) | (count & ((1 << CPU_SHIFT) - 1))
        }
        None => SYNTHETIC,
    }
}

/// Below it, 2^40 ids per CPU; above it (and below `SYNTHETIC`), the CPU.
const CPU_SHIFT: u32 = 40;
/// 4096 CPUs, as many as fit below `SYNTHETIC`.
const CPU_MASK: u64 = (1 << 12) - 1;
