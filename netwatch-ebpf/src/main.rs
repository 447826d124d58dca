//! netwatch's kernel side: where connection events are born.
//!
//! | hook | program | feeds |
//! |---|---|---|
//! | `tp_btf/inet_sock_set_state` | [`state::nw_set_state`] | every TCP transition, as a [`SockEvent`] in `EVENTS` (owners on births only) |
//! | `tp_btf/tcp_destroy_sock` | [`teardown::nw_destroy_sock`] | a `Destroy` event (when asked for, or when a reset followed the close) |
//! | `tracepoint/syscalls/sys_exit_accept{,4}` | [`accept::nw_accept4_exit`], [`accept::nw_accept_exit`] | an `Accept` event: the accepting process (now the owner) and thread, the fd, the full tuple |
//! | `cgroup_skb/{ingress,egress}` (cgroup v2 root) | [`traffic`] | bytes and packets per socket in `TRAFFIC` |
//! | `tp_btf/tcp_retransmit_skb`, `tcp_send_reset`, `tcp_receive_reset` | [`tcp_events`] | retransmits and resets in `TRAFFIC` |
//! | `tp_btf/kfree_skb` (5.17+, optional) | [`drops`] | packets dropped per socket, and the last drop's reason, in `TRAFFIC` |
//! | `cgroup/sock_release` (cgroup v2 root) | [`release`] | a UDP socket's `UdpClose` event with its totals; frees non-TCP `TRAFFIC` rows |
//! | `tracepoint/syscalls/sys_{enter,exit}_connect` | [`connect`] | a `ConnectError` event for a `connect()` that failed in the system call (no route, refused by a hook) |
//! | `tp_btf/sched_process_{exec,exit,fork}` | [`process`] | a `ProcEvent` in `PROC_EVENTS` per exec, process end and process fork |
//! | `cgroup_skb/ingress` (cgroup v2 root) | [`dns`] | UDP datagrams and TCP segments from port 53 (DNS answers) in `DNS_EVENTS`, ring-full in `DNS_LOST` |
//! | `cgroup/sock_create`, `sock_ops` (cgroup v2 root; only where tracing programs cannot make cookies) | [`cookies`] | each socket's kernel cookie, made before its first transition ([`ident`]) |
//!
//! Why these hooks: `inet_sock_set_state` fires inside `tcp_set_state()`
//! (net/ipv4/tcp.c) and `inet_sk_state_store()` (net/ipv4/af_inet.c) for
//! every transition, but mostly in softirq context, where the current task is
//! whoever happened to be on the CPU (docs/design.md#softirq-owners). So the owner is
//! taken from `current` only where the transition runs in the owner's own
//! system call: `CLOSE -> SYN_SENT` (`connect()`) and `CLOSE -> LISTEN`
//! (`listen()`); a passive child, born in softirq, belongs to its
//! listener's owner (which the agent lends it: `event::listeners`) until
//! `accept()` returns it, when the syscall exit tracepoint (process context
//! again) hands it to the accepting process. Each of these events carries
//! the owner and the agent lends it to the socket's later events: the
//! process (tgid) under its leader's comm, with the calling thread's id and
//! comm beside them (`emit::leader_comm`).
//! `tcp_destroy_sock` (`tcp_v4_destroy_sock()`, shared by IPv6) is the one
//! point every TCP socket passes when freed, so per-socket traffic rows are
//! deleted there (docs/design.md#socket-reuse).
//!
//! Kernels up to at least 6.12 fire a passive child's `LISTEN -> SYN_RECV`
//! before the child is filled in; [`state`] reports its birth at its next
//! transition there (`state::late_child`). Kernels before 5.12 keep the
//! socket cookie from tracing programs; [`ident`] says what stands in.
//!
//! The BTF variants of the TCP tracepoints are used because they need no
//! tracefs and cost a fraction of a classic tracepoint (no record is built);
//! the struct fields they point at are read at offsets the agent resolves
//! from the running kernel's BTF ([`netwatch_common::KernelOffsets`]).
//! Syscall tracepoints have no BTF variant, hence the classic ones for accept.
#![no_std]
#![no_main]
// `atomic_xadd` for the traffic counters (see traffic::add); netwatch/build.rs
// enables it for this crate with RUSTC_BOOTSTRAP on a stable compiler.
#![feature(core_intrinsics)]
#![allow(internal_features)]
// Every unsafe block says why it is sound (checked by clippy with the BPF
// target: see the crate's Cargo.toml).
#![warn(clippy::undocumented_unsafe_blocks)]

mod accept;
mod connect;
mod cookies;
// DNS answers for the agent's address-to-name map.
mod dns;
// Packets dropped per socket, with the kernel's reason.
mod drops;
mod emit;
mod ident;
mod iter;
mod maps;
// Process lifecycle (exec, exit, fork) for the agent's socket holders.
mod process;
mod sock;
mod state;
mod teardown;
mod totals;
// Traffic counters (bytes, packets, retransmits, resets per socket).
mod release;
mod tcp_events;
mod traffic;

use netwatch_common::SockEvent;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects any path that
    // could get here, so a reachable panic shows up as a load failure.
    loop {}
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// Keeps `SockEvent` in the object's BTF for tools such as `bpftool`.
#[unsafe(no_mangle)]
pub static SOCK_EVENT_LAYOUT: Option<&SockEvent> = None;
