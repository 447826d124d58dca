//! `tp_btf/sched_process_exec`, `sched_process_exit`, `sched_process_fork`:
//! process lifecycle, for the agent's `holders` module, which keeps every
//! socket's holders current (a socket outlives the process that made it
//! when that process daemonizes, pre-forks, execs or passes the descriptor
//! on).
//!
//! All three run in the context of the task concerned: exec in the task
//! that exec'd (by then the group leader, with its new `comm`), exit in the
//! exiting task, fork in the parent. So pid and comm come from the
//! `current` helpers, and only the fork's child is read from the
//! tracepoint's arguments (`task->tgid` at the offset the agent resolved
//! from BTF). The BTF variants need no tracefs, and their arguments are
//! typed where the classic records changed layout across kernels
//! (`sched_process_fork`'s comms became `__data_loc` strings,
//! `sched_process_exit` gained `group_dead`).
//!
//! Filtering, in the kernel: threads are not processes. A thread's exit or
//! creation changes no socket's holders (threads share the descriptor
//! table), so exit is reported only for the group leader and fork only for
//! a child in a new thread group. What is left is a few records per
//! process started, at rates far below socket churn; they are submitted
//! without waking the reader, which drains this ring on its own clock
//! (at most every 50 ms), so a fork-heavy shell loop costs the workload no
//! wakeups.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{btf_tracepoint, map},
    maps::RingBuf,
    programs::BtfTracePointContext,
};
use netwatch_common::{Bytes16, ProcEvent, ProcKind};

use crate::{maps::offsets, sock::read_kernel};

const BPF_RB_NO_WAKEUP: u64 = 1;

/// 256 KiB: 6,500 records of 40 bytes (48 with the ring's header), many
/// times what the 50 ms between drains brings even from a fork bomb.
#[map]
pub static PROC_EVENTS: RingBuf = RingBuf::with_byte_size(256 << 10, 0);

#[btf_tracepoint(function = "sched_process_exec")]
pub fn nw_proc_exec(_ctx: BtfTracePointContext) -> i32 {
    if !crate::maps::others_hollow() {
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        send(ProcKind::Exec, tgid, 0);
    }
    0
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn nw_proc_exit(_ctx: BtfTracePointContext) -> i32 {
    if !crate::maps::others_hollow() {
        let id = bpf_get_current_pid_tgid();
        let (tgid, tid) = ((id >> 32) as u32, id as u32);
        // The leader's end stands for the group's: a process whose leader
        // ended before its other threads is seen a little early, which
        // costs one holder re-check that finds it still there.
        if tgid == tid {
            send(ProcKind::Exit, tgid, 0);
        }
    }
    0
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn nw_proc_fork(ctx: BtfTracePointContext) -> i32 {
    if !crate::maps::others_hollow() {
        let _ = try_fork(&ctx);
    }
    0
}

fn try_fork(ctx: &BtfTracePointContext) -> Result<(), i64> {
    // (struct task_struct *parent, struct task_struct *child)
    let child: u64 = ctx.arg::<u64>(1);
    let child_tgid: u32 = read_kernel(child + offsets().task_tgid as u64)?;
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    if child_tgid != parent {
        send(ProcKind::Fork, child_tgid, parent);
    }
    Ok(())
}

#[inline(always)]
fn send(kind: ProcKind, tgid: u32, parent: u32) {
    let comm = Bytes16(bpf_get_current_comm().unwrap_or([0; 16]));
    let ev = ProcEvent {
        // SAFETY: the helper has no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        kind: kind as u32,
        tgid,
        parent,
        _pad: 0,
        comm,
    };
    // A full ring loses a record; the agent's periodic holder re-check
    // (while an owner is stale) and its descriptor-passing refresh catch
    // up, so there is no loss counter to keep for these.
    let _ = PROC_EVENTS.output::<ProcEvent>(&ev, BPF_RB_NO_WAKEUP);
}
