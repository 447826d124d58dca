//! `iter/task_file`: the owners of existing sockets, for seeding.
//!
//! The kernel calls this program once per open file of every process (a
//! thread sharing its leader's file table is skipped, so each descriptor
//! comes once) when the agent reads the iterator's file, and the program
//! writes a [`SocketFd`] for each socket. This replaces a `readlink` of
//! every `/proc/PID/fd/N`, which with tens of thousands of sockets is most
//! of what `ss -p` and `netstat -p` spend.
//!
//! `bpf_sock_from_file` says whether the file is a socket (it returns the
//! `struct socket` only for socket files), so no `f_op` or `i_mode` offsets
//! are needed; the socket's inode number sits beside it in its
//! `struct socket_alloc`.

use aya_ebpf::helpers::generated::{bpf_seq_write, bpf_sock_from_file};
use netwatch_common::{Bytes16, SocketFd};

use crate::{maps::offsets, sock::read_kernel};

/// `struct bpf_iter_meta` (include/linux/bpf.h): only `seq` is used.
#[repr(C)]
pub struct IterMeta {
    seq: *mut aya_ebpf::bindings::seq_file,
}

/// `struct bpf_iter__task_file` (kernel/bpf/task_iter.c): the context the
/// kernel passes; `task` and `file` are NULL on the final call.
#[repr(C)]
pub struct TaskFileCtx {
    meta: *mut IterMeta,
    task: *mut core::ffi::c_void,
    fd: u32,
    file: *mut aya_ebpf::bindings::file,
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task_file")]
pub extern "C" fn nw_iter_sockfd(ctx: *mut TaskFileCtx) -> i32 {
    let _ = try_socket_fd(ctx);
    // Non-zero would stop the iteration after this file.
    0
}

#[inline(always)]
fn try_socket_fd(ctx: *mut TaskFileCtx) -> Result<(), i64> {
    // SAFETY: the kernel passes a valid context; its pointers are checked
    // for NULL before use, as the verifier requires.
    let (meta, task, fd, file) = unsafe { ((*ctx).meta, (*ctx).task, (*ctx).fd, (*ctx).file) };
    if task.is_null() || file.is_null() {
        return Ok(());
    }
    // SAFETY: `file` is the kernel's (non-NULL) file pointer, as the helper expects.
    let socket = unsafe { bpf_sock_from_file(file) };
    if socket.is_null() {
        return Ok(());
    }
    let off = offsets();
    let task = task as u64;
    let record = SocketFd {
        inode: read_kernel(socket as u64 + u64::from(off.socket_ino))?,
        tgid: read_kernel(task + u64::from(off.task_tgid))?,
        fd,
        comm: read_kernel::<Bytes16>(task + u64::from(off.task_comm))?,
    };
    // SAFETY: `meta` is valid for the call; `seq` is the iterator's output.
    let seq = unsafe { (*meta).seq };
    // SAFETY: `record` is a plain value on the stack, written out whole.
    let written = unsafe { bpf_seq_write(seq, (&record as *const SocketFd).cast(), size_of::<SocketFd>() as u32) };
    // A full buffer makes the kernel stop this batch and call the program
    // again for the same file in the next read: nothing is lost.
    match written {
        0 => Ok(()),
        err => Err(err),
    }
}
