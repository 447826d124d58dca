//! Counting and the ring buffer: how an event leaves the kernel.

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_task_btf, bpf_get_current_uid_gid, generated,
};
use netwatch_common::{Bytes16, Counter, EventKind, OwnerSource, SockEvent, Traffic, SOCK_EVENT_HEAD};

use crate::{
    maps::{offsets, COUNTERS, EVENTS, READER_AWAKE, SCRATCH},
    sock::{read_kernel, Direct, Fields, Tuple},
};

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

/// Whose socket an event is about, as far as the kernel can tell here.
pub enum Who {
    /// The current task: only in the owner's own system call. With the
    /// socket's start time, 0 where this is not its birth.
    Current(OwnerSource, u64),
    /// A passive child at its birth (`start_ns`), in softirq: its owner is
    /// its listener's, which the agent knows from the listener's own birth
    /// (or /proc) and lends it.
    Child(u64),
    /// Not known here (softirq context): the agent lends the owner from
    /// the socket's birth event.
    Nobody,
}

/// Where each program writes its event: a slot of its own in the per-CPU
/// `SCRATCH` array. With the owner's thread, descriptor and cgroup in the
/// head and the close-time figures in the totals the record (240 bytes)
/// no longer fits on `nw_set_state`'s 512-byte stack beside its locals.
/// One slot per program, because programs of different kinds nest on one
/// CPU (a softirq's `nw_set_state` can interrupt `accept()`'s hook); a
/// program never nests with itself (the kernel's per-program recursion
/// guard skips, and counts, such a run).
#[repr(u32)]
#[derive(Clone, Copy)]
pub enum Slot {
    SetState = 0,
    Accept = 1,
    Release = 2,
    Teardown = 3,
    Connect = 4,
}

/// Slots in `SCRATCH`.
pub const SCRATCH_SLOTS: u32 = 5;

/// An event being written in place in its program's scratch slot. Its head
/// (everything but the traffic totals) is always written; the totals only
/// for the events that carry them, and only those events send them: the
/// rest of the record is never touched, so no event pays for zeroing what
/// it does not send. The owner is written straight into it, never copied
/// through the stack.
pub struct Draft(*mut SockEvent);

impl Draft {
    /// `slot`'s record to write an event into with [`Draft::head`]; an
    /// error only if the array lookup fails, which it cannot for an index
    /// below `SCRATCH_SLOTS`.
    #[inline(always)]
    pub fn scratch(slot: Slot) -> Result<Self, i64> {
        SCRATCH.get_ptr_mut(slot as u32).map(Self).ok_or(0)
    }

    /// Writes the head. `inode`: 0 where the owner is not known either:
    /// only an owner's events read the socket's file.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn head(&mut self, kind: EventKind, now: u64, cookie: u64, t: &Tuple, who: Who, inode: u64, old: u8, new: u8) {
        let p = self.0;
        // SAFETY: field pointers into our own stack slot, written once each.
        unsafe {
            (&raw mut (*p).ts_ns).write(now);
            (&raw mut (*p).cookie).write(cookie);
            (&raw mut (*p).inode).write(inode);
            (&raw mut (*p).saddr).write(t.saddr);
            (&raw mut (*p).daddr).write(t.daddr);
            (&raw mut (*p).netns).write(t.netns);
            (&raw mut (*p).sport).write(t.sport);
            (&raw mut (*p).dport).write(t.dport);
            (&raw mut (*p).family).write(t.family);
            (&raw mut (*p).kind).write(kind as u8);
            (&raw mut (*p).old_state).write(old);
            (&raw mut (*p).new_state).write(new);
            (&raw mut (*p)._pad).write(0);
            (&raw mut (*p).fd).write(-1);
            match who {
                Who::Current(source, start_ns) => {
                    // The helper writes all 16 bytes (NUL-padded, or
                    // zeroed on error): the thread's own name.
                    generated::bpf_get_current_comm((&raw mut (*p).thread).cast(), 16);
                    // The process's name is its leader's (a thread named
                    // `acceptor-7` belongs to `python3`).
                    (&raw mut (*p).comm).write(leader_comm());
                    let pid_tgid = bpf_get_current_pid_tgid();
                    (&raw mut (*p).tid).write(pid_tgid as u32);
                    (&raw mut (*p).pid).write((pid_tgid >> 32) as u32);
                    (&raw mut (*p).uid).write(bpf_get_current_uid_gid() as u32);
                    (&raw mut (*p).start_ns).write(start_ns);
                    (&raw mut (*p).owner_source).write(source as u8);
                    // Where the owner runs (unit, container): since 4.18
                    // for tracepoints, 5.7 for cgroup sock programs.
                    (&raw mut (*p).cgroup).write(generated::bpf_get_current_cgroup_id());
                }
                // Zeros LLVM cannot see through: adjacent constant zero
                // stores become a call to the byte-loop memset (see
                // `Bytes16`); even volatile ones did, in the teardown
                // program.
                Who::Child(start_ns) => unowned(p, opaque_zero(), start_ns),
                Who::Nobody => {
                    let z = opaque_zero();
                    unowned(p, z, z);
                }
            }
        }
    }

    /// Records the descriptor `accept()` returned (after [`Draft::head`]).
    #[inline(always)]
    pub fn fd(&mut self, fd: i32) {
        // SAFETY: a field of our own stack slot.
        unsafe { (&raw mut (*self.0).fd).write(fd) };
    }

    /// Sends the head only.
    #[inline(always)]
    pub fn send(&self) {
        // SAFETY: the head was written by `head`.
        let head = unsafe { core::slice::from_raw_parts(self.0.cast::<u8>(), SOCK_EVENT_HEAD) };
        output(head);
    }

    /// Sends the whole record, its traffic totals zeroed and then filled
    /// in place by `fill` (by value they would cost the stack 64 bytes a
    /// copy, and a program has 512).
    #[inline(always)]
    pub fn send_with_totals(self, fill: impl FnOnce(&mut Traffic)) {
        let p = self.0;
        // SAFETY: the head was written by `head`, the totals here.
        let whole = unsafe {
            let totals = &raw mut (*p).traffic;
            totals.write(crate::traffic::zero());
            fill(&mut *totals);
            core::slice::from_raw_parts(p.cast::<u8>(), size_of::<SockEvent>())
        };
        output(whole);
    }
}

/// Writes an owner nobody knows here: `z` must be an [`opaque_zero`].
#[inline(always)]
unsafe fn unowned(p: *mut SockEvent, z: u64, start_ns: u64) {
    // SAFETY: the caller's own record, written once per field.
    unsafe {
        let comm = (&raw mut (*p).comm).cast::<u64>();
        comm.write(z);
        comm.add(1).write(z);
        let thread = (&raw mut (*p).thread).cast::<u64>();
        thread.write(z);
        thread.add(1).write(z);
        (&raw mut (*p).tid).write(z as u32);
        (&raw mut (*p).pid).write(z as u32);
        (&raw mut (*p).uid).write(z as u32);
        (&raw mut (*p).start_ns).write(start_ns);
        (&raw mut (*p).owner_source).write(OwnerSource::Unknown as u8);
        (&raw mut (*p).cgroup).write(z);
    }
}

/// The comm of the current thread group's leader
/// (`current->group_leader->comm`): the process's name as netstat and
/// `/proc/PID/comm` give it, renamed by exec (which makes the exec'ing
/// thread the leader), where `bpf_get_current_comm` gives the calling
/// thread's. Zeros if it cannot be read.
#[inline(always)]
fn leader_comm() -> Bytes16 {
    let off = offsets();
    let read = || -> Result<Bytes16, i64> {
        if crate::ident::untyped_task() {
            // Without `bpf_get_current_task_btf` (before Linux 5.11) the
            // task is a plain number to the verifier: probe reads.
            // SAFETY: the helper returns the current task, never NULL.
            let task = unsafe { bpf_get_current_task() };
            let leader: u64 = read_kernel(task + u64::from(off.task_group_leader))?;
            read_kernel(leader + u64::from(off.task_comm))
        } else {
            // Typed by BTF, both pointers are plain loads the verifier
            // checks (a faulting one reads as zero).
            // SAFETY: the helper returns the current task, never NULL.
            let task = unsafe { bpf_get_current_task_btf() } as u64;
            let leader: u64 = Direct::at(task, off.task_group_leader)?;
            let lo: u64 = Direct::at(leader, off.task_comm)?;
            let hi: u64 = Direct::at(leader, off.task_comm + 8)?;
            Ok(crate::sock::from_words(lo, hi))
        }
    };
    read().unwrap_or_else(|_| crate::sock::zero16())
}

/// A zero the compiler cannot treat as a constant (a volatile load).
#[inline(always)]
pub fn opaque_zero() -> u64 {
    let src = 0u64;
    // SAFETY: reading a local.
    unsafe { core::ptr::read_volatile(&src) }
}

/// Hands a record to the agent, or counts it as lost (docs/design.md#ring-buffer-loss).
///
/// `bpf_ringbuf_output` copies the record in one helper call, where
/// reserve, write and submit took two calls and a copy in BPF.
///
/// While events flow the agent drains the ring on its own timer and says
/// so in `READER_AWAKE`: then nothing is woken from here. A wakeup is an
/// interrupt on the CPU of whatever process caused the event, and it pulls
/// the agent onto that CPU, where it competes with the traced workload;
/// that, more than the programs, slowed a busy workload. Once the ring has
/// been quiet the agent sleeps until the kernel's default wakeup (when the
/// ring was empty) tells it of the next event.
#[inline(always)]
fn output(record: &[u8]) {
    let awake = READER_AWAKE.get(0).is_some_and(|v| *v != 0);
    if EVENTS.output::<[u8]>(record, if awake { BPF_RB_NO_WAKEUP } else { 0 }).is_err() {
        count(Counter::LostEvents);
    }
}
