//! `tracepoint/syscalls/sys_exit_accept4` and `sys_exit_accept`.
//!
//! Process context: `current` is the process `accept()` returned to. The
//! returned fd is resolved to its `struct sock` through the task's fd table
//! (`task->files->fdt->fd[ret]->private_data->sk`) and that process becomes
//! the socket's owner; until now it carried the listener's owner (from the
//! `Handshake`, `SYN_RECV -> ESTABLISHED`, which put it in the accept
//! queue). The `Accept` event names it (process, thread), with the
//! descriptor, the full tuple, the socket's state then and its inode, which
//! only exists from now on; the agent lends the new owner to the socket's
//! later events. This is what BCC's tcpaccept and `netstat -p` call the
//! accepting process: in a pre-fork server (nginx) a worker, never the
//! process that called listen().

use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_get_current_task_btf, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
    EbpfContext,
};
use netwatch_common::{
    tcp::{AF_INET, AF_INET6, IPPROTO_TCP},
    EventKind, OwnerSource,
};

use crate::{
    emit::{Draft, Slot, Who},
    maps::offsets,
    sock::{inet_tuple, read_kernel, Direct, Fields, Probe},
};

/// `long ret` in the `sys_exit_*` record (after the 8-byte common header and
/// `int __syscall_nr`); this layout has not changed since syscall tracepoints
/// exist.
const RET_OFFSET: usize = 16;

#[tracepoint(category = "syscalls", name = "sys_exit_accept4")]
pub fn nw_accept4_exit(ctx: TracePointContext) -> i32 {
    if !crate::maps::others_hollow() {
        let _ = try_accept_exit(&ctx);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_accept")]
pub fn nw_accept_exit(ctx: TracePointContext) -> i32 {
    if !crate::maps::others_hollow() {
        let _ = try_accept_exit(&ctx);
    }
    0
}

fn try_accept_exit(ctx: &TracePointContext) -> Result<(), i64> {
    // SAFETY: RET_OFFSET lies within every sys_exit record, and the
    // verifier lets a tracepoint program load its record directly.
    let fd: i64 = unsafe { core::ptr::read_volatile(ctx.as_ptr().cast::<u8>().add(RET_OFFSET).cast::<i64>()) };
    if fd < 0 {
        return Ok(());
    }
    let fds = if crate::ident::untyped_task() {
        // Without `bpf_get_current_task_btf` (before Linux 5.11) the task
        // is a plain number to the verifier: the same walk, probe reads.
        // SAFETY: the helper returns the current task, never NULL.
        let task = unsafe { bpf_get_current_task() };
        descriptors::<Probe>(task, fd)?
    } else {
        // The task typed by BTF: down to the descriptor array the verifier
        // checks plain loads against the kernel's types (`Direct`), where
        // untyped pointers need a probe read per step.
        // SAFETY: the helper returns the current task, never NULL.
        let task = unsafe { bpf_get_current_task_btf() } as u64;
        descriptors::<Direct>(task, fd)?
    };
    if fds == 0 {
        return Ok(());
    }
    let off = offsets();
    let file: u64 = read_kernel(fds + 8 * fd as u64)?;
    let socket: u64 = read_kernel(file + off.file_private_data as u64)?;
    let sk: u64 = read_kernel(socket + off.socket_sk as u64)?;
    if sk == 0 {
        return Ok(());
    }
    // accept() also returns non-TCP sockets (unix, SCTP), which have no
    // other events and no place in the table.
    let protocol: u16 = Probe::at(sk, off.sk_protocol)?;
    let family: u16 = Probe::at(sk, off.skc_family)?;
    if protocol != IPPROTO_TCP || (family != AF_INET && family != AF_INET6) {
        return Ok(());
    }
    // The full tuple, as accept() returned it (consumers of this event
    // alone, like tcpaccept's, need no earlier one): about half this
    // hook's cost in probe reads, accepted for that.
    let t = inet_tuple::<Probe>(sk, off)?;
    let inode = Probe::at(socket, off.socket_ino).unwrap_or(0);
    // Usually ESTABLISHED; CLOSE_WAIT if the peer closed while it queued.
    let state: u8 = Probe::at(sk, off.skc_state)?;
    // SAFETY: no arguments, no side effects.
    let now = unsafe { bpf_ktime_get_ns() };
    // The cookie was made when the handshake's events were sent.
    let cookie: u64 = read_kernel(sk + u64::from(off.skc_cookie))?;
    let cookie = if crate::ident::own_ids() { crate::ident::known(sk, cookie) } else { cookie };
    // No start time: the agent keeps the connection's, which began at the
    // handshake.
    let who = Who::Current(OwnerSource::Accept, 0);
    let mut e = Draft::scratch(Slot::Accept)?;
    e.head(EventKind::Accept, now, cookie, &t, who, inode, state, state);
    e.fd(fd as i32);
    e.send();
    Ok(())
}

/// The task's descriptor array (`struct file **`), 0 if `fd` is not in it.
#[inline(always)]
fn descriptors<R: Fields>(task: u64, fd: i64) -> Result<u64, i64> {
    let off = offsets();
    let files: u64 = R::at(task, off.task_files)?;
    if files == 0 {
        return Ok(0);
    }
    let fdt: u64 = R::at(files, off.files_fdt)?;
    if fdt == 0 {
        return Ok(0);
    }
    let max_fds: u32 = R::at(fdt, off.fdt_max_fds)?;
    if fd as u64 >= max_fds as u64 {
        return Ok(0);
    }
    // `struct file **`: a pointer to pointers is a plain number to the
    // verifier, so from here on it is probe reads again.
    R::at(fdt, off.fdt_fd)
}
