//! Kernel struct offsets the programs need, resolved by the agent from
//! /sys/kernel/btf/vmlinux at load time and passed in as a read-only global.
//!
//! Rust eBPF has no CO-RE field relocations yet (KERNEL-NOTES point 8), so
//! baking offsets in at build time would silently break on other kernels.

use core::mem::size_of;

/// Byte offsets, all relative to the start of the named struct. Each is a
/// `u32` so the record has no padding; `sock_read_len` bounds the single
/// read of `struct sock_common` that the hot path does.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// How many bytes of `struct sock` to copy in one read; every
    /// `sock_common` field below lies within it.
    pub sock_read_len: u32,
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
    pub _pad: u32,
}

const _: () = assert!(size_of::<KernelOffsets>() == 72);

/// Upper bound of `sock_read_len`: the scratch buffer the programs copy into.
pub const SOCK_READ_MAX: u32 = 256;
