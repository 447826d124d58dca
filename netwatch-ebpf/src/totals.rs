//! What a closing TCP socket's event reads beyond `struct sock`: its
//! traffic totals, and the local port it gave back.
//!
//! Payload and segment counts come from the kernel's own per-connection
//! counters in `struct tcp_sock` (what tcplife reports), read once at the
//! close: exact to the byte whether or not the per-packet counters run,
//! retransmitted payload counted once, and free for every packet before.
//! Retransmits, resets and on-the-wire bytes come from the per-socket
//! `TRAFFIC` row where the counting programs keep one.

use aya_ebpf::helpers::generated::bpf_skc_to_tcp_sock;
use netwatch_common::{KernelOffsets, Traffic};

use crate::sock::{Direct, Fields};

/// `enum sock_flags`: set by `tcp_fin()` when the peer's FIN arrives.
const SOCK_DONE: u64 = 1;

/// The fields read here lie beyond `struct sock`; the helper hands back the
/// same socket (`sk`: a BTF tracepoint's `struct sock *`) typed as
/// `struct tcp_sock *`, `None` for any other kind, and the verifier allows
/// plain loads there too: no probe reads.
#[inline(always)]
fn tcp_sock(sk: u64) -> Option<u64> {
    // SAFETY: sk is the tracepoint's own socket argument.
    let tp = unsafe { bpf_skc_to_tcp_sock(sk as *mut core::ffi::c_void) } as u64;
    (tp != 0).then_some(tp)
}

/// `inet_sport` of a TCP socket, host order; 0 if it is not a `tcp_sock`.
#[inline(always)]
pub fn local_port(sk: u64, off: &KernelOffsets) -> u16 {
    tcp_sock(sk).map_or(0, |tp| u16::from_be(Direct::at(tp, off.inet_sport).unwrap_or(0)))
}

/// `row`: the socket's `TRAFFIC` row (zero without one); its payload and
/// segment counts are replaced.
#[inline(always)]
pub fn tcp(sk: u64, off: &KernelOffsets, row: &mut Traffic) {
    let Some(tp) = tcp_sock(sk) else { return };
    let sent: u64 = Direct::at(tp, off.tcp_bytes_sent).unwrap_or(0);
    let retrans: u64 = Direct::at(tp, off.tcp_bytes_retrans).unwrap_or(0);
    row.tx_bytes = sent.saturating_sub(retrans);
    // The peer's FIN advanced rcv_nxt, and with it bytes_received, by one.
    let received: u64 = Direct::at(tp, off.tcp_bytes_received).unwrap_or(0);
    let flags: u64 = Direct::at(sk, off.sk_flags).unwrap_or(0);
    row.rx_bytes = received.saturating_sub((flags >> SOCK_DONE) & 1);
    row.tx_packets = u64::from(Direct::at::<u32>(tp, off.tcp_segs_out).unwrap_or(0));
    row.rx_packets = u64::from(Direct::at::<u32>(tp, off.tcp_segs_in).unwrap_or(0));
}

/// Why and how fast: the socket's error, soft error, smoothed RTT and
/// retransmits, into `row` (see [`Traffic`]'s fields). `sk_err` is read at
/// the `-> CLOSE` transition, which `tcp_done()` makes after the error was
/// stored (`tcp_done_with_error()`, net/ipv4/tcp.c).
#[inline(always)]
pub fn why(sk: u64, off: &KernelOffsets, row: &mut Traffic) {
    let err: i32 = Direct::at(sk, off.sk_err).unwrap_or(0);
    let soft: i32 = Direct::at(sk, off.sk_err_soft).unwrap_or(0);
    row.sk_err = err.unsigned_abs();
    row.sk_err_soft = soft.unsigned_abs() as u16;
    handshake(sk, off, row);
}

/// The smoothed RTT and retransmits only; the retransmit count is returned.
#[inline(always)]
pub fn handshake(sk: u64, off: &KernelOffsets, row: &mut Traffic) -> u32 {
    let Some(tp) = tcp_sock(sk) else { return 0 };
    row.srtt_us = Direct::at::<u32>(tp, off.tcp_srtt_us).unwrap_or(0) >> 3;
    row.total_retrans = Direct::at::<u32>(tp, off.tcp_total_retrans).unwrap_or(0);
    row.total_retrans
}

/// `tcp_sock.total_retrans` alone: what a completed handshake checks before
/// deciding to send its totals at all.
#[inline(always)]
pub fn total_retrans(sk: u64, off: &KernelOffsets) -> u32 {
    tcp_sock(sk).map_or(0, |tp| Direct::at::<u32>(tp, off.tcp_total_retrans).unwrap_or(0))
}
