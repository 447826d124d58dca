//! Making kernel cookies before the tracepoints need them, on kernels whose
//! tracing programs cannot make them (`ident`): loaded and attached only
//! there, on the cgroup v2 root, so every socket in the system passes.
//!
//! `bpf_get_socket_cookie` is available to these two program types long
//! before tracing programs got it (both since Linux 5.x, well before 5.10),
//! and a cookie, once made, is kept in the socket (`skc_cookie`), where the
//! tracepoints read it. So a socket's events carry the kernel's cookie, as
//! sock_diag and `ss -e` show it, not an id of netwatch's own:
//!
//! - `cgroup/sock_create` (`release::nw_sock_create`, which also notes a
//!   UDP socket's birth) runs in `inet_create()` (the `socket()` call),
//!   before any state change of the socket;
//! - `sock_ops` `BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB` runs on a passive
//!   child in `tcp_init_transfer()`, called by `tcp_rcv_state_process()`
//!   just before its `SYN_RECV -> ESTABLISHED`, where the child's birth is
//!   reported on these kernels (`state::late_child`).
//!
//! What neither reaches (sockets the kernel opens for itself, which skip
//! the cgroup hooks) still gets an id of netwatch's own.

use aya_ebpf::{helpers::generated::bpf_get_socket_cookie, macros::sock_ops, programs::SockOpsContext};

/// `BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB` (include/uapi/linux/bpf.h).
const PASSIVE_ESTABLISHED: u32 = 5;

#[sock_ops]
pub fn nw_sock_ops(ctx: SockOpsContext) -> u32 {
    if ctx.op() == PASSIVE_ESTABLISHED {
        // SAFETY: the context is the socket operation's own.
        let _ = unsafe { bpf_get_socket_cookie(ctx.ops.cast()) };
    }
    // The return value of these callbacks is ignored; 1 is "ok".
    1
}
