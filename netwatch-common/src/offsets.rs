//! Kernel struct offsets the programs need, resolved by the agent from
//! /sys/kernel/btf/vmlinux at load time and passed in as a read-only global.
//!
//! Rust eBPF has no CO-RE field relocations yet (docs/design.md#no-co-re), so
//! baking offsets in at build time would silently break on other kernels.

use core::mem::size_of;

/// Byte offsets, all relative to the start of the named struct; `u32` each
/// so the record has no padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub skc_daddr: u32,
    pub skc_rcv_saddr: u32,
    pub skc_dport: u32,
    pub skc_num: u32,
    pub skc_family: u32,
    pub skc_net: u32,
    pub skc_v6_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
    pub sk_protocol: u32,
    /// `struct net` -> `ns.inum`.
    pub net_inum: u32,
    /// `struct task_struct` -> `files`.
    pub task_files: u32,
    /// `struct files_struct` -> `fdt`.
    pub files_fdt: u32,
    /// `struct fdtable` -> `fd`.
    pub fdt_fd: u32,
    /// `struct fdtable` -> `max_fds`.
    pub fdt_max_fds: u32,
    /// `struct file` -> `private_data` (the `struct socket *`).
    pub file_private_data: u32,
    /// `struct socket` -> `sk`.
    pub socket_sk: u32,
    /// `struct sock` -> `sk_socket` (the `struct socket *`, NULL until a
    /// file holds the socket, e.g. a child not accepted yet).
    pub sk_socket: u32,
    /// From a `struct socket` to its inode's `i_ino`: sockets live in a
    /// `struct socket_alloc` next to their `vfs_inode`.
    pub socket_ino: u32,
    /// `struct sock` -> `__sk_common.skc_cookie` (where
    /// `bpf_get_socket_cookie` stores the cookie once made).
    pub skc_cookie: u32,
    /// `struct task_struct` -> `tgid` (the socket-file iterator reports
    /// processes, not threads).
    pub task_tgid: u32,
    /// `struct task_struct` -> `comm`.
    pub task_comm: u32,
    /// `struct tcp_sock` fields (the `struct sock` pointer is the
    /// `tcp_sock`'s): the kernel's own per-connection totals, which a
    /// closing TCP socket's event carries, as tcplife reports them.
    /// `bytes_sent` counts retransmitted payload again, `bytes_retrans` is
    /// that part; `bytes_received` counts each byte once.
    pub tcp_bytes_sent: u32,
    pub tcp_bytes_retrans: u32,
    pub tcp_bytes_received: u32,
    pub tcp_segs_out: u32,
    pub tcp_segs_in: u32,
    /// `struct sock` -> `__sk_common.skc_flags` (`sk_flags`): `SOCK_DONE` says the peer's FIN
    /// arrived, which `bytes_received` counts as one byte.
    pub sk_flags: u32,
    /// `struct sock` -> `__sk_common.skc_state`.
    pub skc_state: u32,
    /// `struct tcp_sock` -> `inet_conn.icsk_inet.inet_sport`: the local port
    /// in network order, which outlives `skc_num` when a failed connect
    /// gives its port back (what `getsockname` reports).
    pub inet_sport: u32,
    /// `struct task_struct` -> `group_leader`: events name the process
    /// by its leader's comm, as netstat does, not the calling thread's.
    pub task_group_leader: u32,
    /// `struct sock` -> `sk_err` and `sk_err_soft` (`int` each): why a
    /// closing connection died.
    pub sk_err: u32,
    pub sk_err_soft: u32,
    /// `struct tcp_sock` -> `srtt_us` (`u32`, the smoothed RTT << 3) and
    /// `total_retrans` (`u32`).
    pub tcp_srtt_us: u32,
    pub tcp_total_retrans: u32,
    /// `struct sk_buff` -> `sk`: the socket a dropped packet belonged to.
    pub skb_sk: u32,
    /// `struct sock` -> `__sk_common.skc_hash`, whose first `u16` is UDP's
    /// `udp_port_hash`: the port a UDP socket was hashed with, which stays
    /// when `connect(AF_UNSPEC)` unhashes it and zeroes its port, and is 0
    /// on a socket that never had one (sockets are allocated zeroed).
    pub skc_hash: u32,
}

const _: () = assert!(size_of::<KernelOffsets>() == 144);
