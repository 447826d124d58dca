//! `tracepoint/syscalls/sys_enter_connect` and `sys_exit_connect`: a
//! `connect()` that failed in the system call itself.
//!
//! Some failures never reach the TCP state machine, so `nw_set_state` sees
//! nothing of them: `tcp_v4_connect()` / `tcp_v6_connect()` look the route
//! up before the socket enters `SYN_SENT` (no route: `ENETUNREACH`; an
//! `unreachable` or `prohibit` route: `EHOSTUNREACH`, `EACCES`), a cgroup
//! `connect4/6` program or a socket hook can refuse with `EPERM`, and a UDP
//! connect has no state machine at all. The exit reports the call when it
//! returned an error other than "in progress" (`EINPROGRESS`, `EALREADY`),
//! for IPv4/IPv6 TCP and UDP sockets, as a `ConnectError` event: the caller
//! (process context), the destination (the user's `sockaddr`), the errno
//! (in the totals' `sk_err`). A blocking TCP connect refused or timed out
//! by the state machine also returns its error here; the agent drops that
//! second report (it has the `connect_failed` of the same socket).
//!
//! The exit reads the call's arguments (fd, `sockaddr` pointer) from the
//! registers the system call entry saved (`bpf_task_pt_regs`, Linux 5.15),
//! so a successful `connect()` costs one test of its return value. Where
//! that helper is missing (`compat::NO_TASK_REGS`), an entry program keeps
//! them per thread instead, at the price of a map update and delete on
//! every inet `connect()` and of one more probe on every system call of
//! every task (the kernel runs a syscall entry tracepoint's probe for all
//! system calls and filters by number inside it).

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_task_btf, bpf_ktime_get_ns,
        bpf_probe_read_user, generated::bpf_task_pt_regs,
    },
    macros::tracepoint,
    programs::TracePointContext,
    EbpfContext,
};
use netwatch_common::{
    tcp::{AF_INET, AF_INET6, CLOSE, IPPROTO_TCP, IPPROTO_UDP},
    Bytes16, EventKind, OwnerSource,
};

use crate::{
    emit::{Draft, Slot, Who},
    maps::{offsets, CONNECTS},
    sock::{inet_tuple, read_kernel, Fields, Probe},
};

/// `sys_enter_connect`'s record: `fd` and `uservaddr` after the 8-byte
/// common header and `__syscall_nr` (each argument an 8-byte slot).
const FD_OFFSET: usize = 16;
const ADDR_OFFSET: usize = 24;
/// `long ret` in the `sys_exit_*` record.
const RET_OFFSET: usize = 16;

/// Where x86-64's `struct pt_regs` keeps a system call's first two
/// arguments (`di`, `si`): its layout is the ptrace ABI (`user_regs_struct`)
/// and the entry code's, fixed; the syscall's own code never writes them.
/// Other architectures load with `compat::NO_TASK_REGS` (the agent decides).
const PT_REGS_DI: u64 = 14 * 8;
const PT_REGS_SI: u64 = 13 * 8;

const EINPROGRESS: i64 = 115;
const EALREADY: i64 = 114;

/// A `connect()` in progress: the first 24 bytes of its `sockaddr`
/// (`sockaddr_in` needs 8, `sockaddr_in6` 24) and its fd.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Pending {
    /// Family (2 bytes), port (network order), then an IPv4 address.
    head: u64,
    /// Bytes 8..24 of a `sockaddr_in6`: its address.
    v6: [u64; 2],
    fd: u64,
}

#[tracepoint(category = "syscalls", name = "sys_enter_connect")]
pub fn nw_connect_in(ctx: TracePointContext) -> i32 {
    if !crate::maps::others_hollow() {
        let _ = try_enter(&ctx);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_connect")]
pub fn nw_connect_out(ctx: TracePointContext) -> i32 {
    if !crate::maps::others_hollow() {
        let _ = try_exit(&ctx);
    }
    0
}

#[inline(always)]
fn field<T>(ctx: &TracePointContext, offset: usize) -> T {
    // SAFETY: the offsets lie within the record (see the constants), and
    // the verifier lets a tracepoint program load its record directly.
    unsafe { core::ptr::read_volatile(ctx.as_ptr().cast::<u8>().add(offset).cast::<T>()) }
}

fn try_enter(ctx: &TracePointContext) -> Result<(), i64> {
    let Some(p) = pending(field(ctx, FD_OFFSET), field(ctx, ADDR_OFFSET))? else { return Ok(()) };
    let tid = bpf_get_current_pid_tgid();
    CONNECTS.insert(tid, p, 0).map_err(i64::from)
}

/// The call's fd and destination, from the user's `sockaddr` at `addr`;
/// `None` for families other than IPv4 and IPv6.
#[inline(always)]
fn pending(fd: u64, addr: u64) -> Result<Option<Pending>, i64> {
    // SAFETY: a user pointer, read by the helper that checks it.
    let head: u64 = unsafe { bpf_probe_read_user(addr as *const u64) }?;
    let family = head as u16;
    // Unix and netlink sockets connect far more often than inet ones: they
    // leave here without further reads.
    let v6 = match family {
        AF_INET => [0, 0],
        // SAFETY: as above; a sockaddr_in6 is 28 bytes.
        AF_INET6 => unsafe { bpf_probe_read_user((addr + 8) as *const [u64; 2]) }?,
        _ => return Ok(None),
    };
    Ok(Some(Pending { head, v6, fd }))
}

fn try_exit(ctx: &TracePointContext) -> Result<(), i64> {
    let ret: i64 = field(ctx, RET_OFFSET);
    let failed = ret < 0 && ret != -EINPROGRESS && ret != -EALREADY;
    let p = if crate::ident::no_task_regs() {
        let tid = bpf_get_current_pid_tgid();
        // SAFETY: copied out before the row is deleted.
        let Some(p) = (unsafe { CONNECTS.get(tid) }).copied() else { return Ok(()) };
        let _ = CONNECTS.remove(tid);
        p
    } else {
        if !failed {
            return Ok(());
        }
        // SAFETY: the helpers return the current task (never NULL) and its
        // saved user registers; both are read with probe reads only.
        let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as u64;
        let fd: u64 = read_kernel(regs + PT_REGS_DI)?;
        let addr: u64 = read_kernel(regs + PT_REGS_SI)?;
        let Some(p) = pending(fd, addr)? else { return Ok(()) };
        p
    };
    if !failed {
        return Ok(());
    }
    let off = offsets();
    let sk = socket_of(p.fd)?;
    if sk == 0 {
        return Ok(());
    }
    let protocol: u16 = Probe::at(sk, off.sk_protocol)?;
    if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP {
        return Ok(());
    }
    // The local end and the namespace from the socket (the local address
    // is often still unset), the remote end from the call.
    let mut t = inet_tuple::<Probe>(sk, off)?;
    t.family = p.head as u16;
    t.dport = u16::from_be((p.head >> 16) as u16);
    t.daddr = if t.family == AF_INET6 { words(p.v6[0], p.v6[1]) } else { words(p.head >> 32, 0) };
    // The id the socket's own events carry (0 if it had none), which the
    // agent matches against a `connect_failed` it already reported.
    let cookie: u64 = Probe::at(sk, off.skc_cookie).unwrap_or(0);
    let cookie = if crate::ident::own_ids() { crate::ident::known(sk, cookie) } else { cookie };
    // SAFETY: no arguments, no side effects.
    let now = unsafe { bpf_ktime_get_ns() };
    let mut e = Draft::scratch(Slot::Connect)?;
    e.head(EventKind::ConnectError, now, cookie, &t, Who::Current(OwnerSource::Current, 0), 0, CLOSE, CLOSE);
    e.send_with_totals(|totals| {
        totals.sk_err = (-ret) as u32;
        totals.protocol = protocol;
    });
    Ok(())
}

#[inline(always)]
fn words(lo: u64, hi: u64) -> Bytes16 {
    let mut b = crate::sock::zero16();
    let w = (&raw mut b).cast::<u64>();
    // SAFETY: both words of our own Bytes16.
    unsafe {
        w.write(lo);
        w.add(1).write(hi);
    }
    b
}

/// The `struct sock` behind the current task's descriptor `fd`, 0 if none:
/// `task->files->fdt->fd[fd]->private_data->sk`, probe reads throughout
/// (this runs only for a failed connect, where a few reads cost nothing
/// that matters, and so works the same on every kernel).
#[inline(always)]
fn socket_of(fd: u64) -> Result<u64, i64> {
    let off = offsets();
    // SAFETY: the helper returns the current task, never NULL.
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = Probe::at(task, off.task_files)?;
    if files == 0 {
        return Ok(0);
    }
    let fdt: u64 = Probe::at(files, off.files_fdt)?;
    if fdt == 0 {
        return Ok(0);
    }
    let max_fds: u32 = Probe::at(fdt, off.fdt_max_fds)?;
    if fd >= u64::from(max_fds) {
        return Ok(0);
    }
    let fds: u64 = Probe::at(fdt, off.fdt_fd)?;
    let file: u64 = read_kernel(fds + 8 * fd)?;
    if file == 0 {
        return Ok(0);
    }
    let socket: u64 = read_kernel(file + u64::from(off.file_private_data))?;
    if socket == 0 {
        return Ok(0);
    }
    read_kernel(socket + u64::from(off.socket_sk))
}
