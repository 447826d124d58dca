//! `tp_btf/inet_sock_set_state(const struct sock *sk, int oldstate, int newstate)`

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::btf_tracepoint, programs::BtfTracePointContext};
use netwatch_common::{
    tcp::{CLOSE, CLOSE_WAIT, ESTABLISHED, FIN_WAIT1, LAST_ACK, LISTEN, SYN_RECV, SYN_SENT},
    EventKind, OwnerSource,
};

use crate::{
    emit::{Draft, Slot, Who},
    maps::offsets,
    sock::{inode, tcp_tuple, Direct},
};

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn nw_set_state(ctx: BtfTracePointContext) -> i32 {
    if !crate::maps::set_state_hollow() {
        let _ = try_set_state(&ctx);
    }
    0
}

/// Classifies a transition; the one place that decides what an event means.
#[inline(always)]
pub const fn classify(old: u8, new: u8) -> EventKind {
    match (old, new) {
        (_, LISTEN) => EventKind::Listen,
        (CLOSE, SYN_SENT) => EventKind::Connect,
        (SYN_SENT, ESTABLISHED) => EventKind::Established,
        (SYN_RECV, ESTABLISHED) => EventKind::Handshake,
        (SYN_SENT, CLOSE) => EventKind::ConnectFailed,
        (_, CLOSE) => EventKind::Close,
        _ => EventKind::State,
    }
}

fn try_set_state(ctx: &BtfTracePointContext) -> Result<(), i64> {
    let sk: u64 = ctx.arg::<u64>(0);
    let old = ctx.arg::<i32>(1) as u8;
    let new = ctx.arg::<i32>(2) as u8;
    if old == new {
        // `tcp_set_state()` to the state the socket is in: a `close()`
        // after `shutdown(SHUT_WR)` (FIN_WAIT1, CLOSING), which the
        // tracepoint reports all the same. No change, no event.
        return Ok(());
    }
    let off = offsets();
    let mut t = tcp_tuple::<Direct>(sk, off)?;
    if old == LISTEN && new == SYN_RECV && t.dport == 0 {
        // See `late_child`: this event names the listener, not the child.
        crate::maps::set_late_children();
        return Ok(());
    }
    if new == CLOSE && t.sport == 0 {
        // The tracepoint fires after `tcp_set_state()` has unhashed the
        // socket and given back a port the kernel picked (`inet_put_port`
        // zeroes `inet_num`): a failed connect (docs/design.md#partial-tuples), a
        // client's close, a listener bound to port 0. The socket still
        // names the port where getsockname looks.
        t.sport = crate::totals::local_port(sk, off);
    }
    // SAFETY: no arguments, no side effects.
    let now = unsafe { bpf_ktime_get_ns() };
    let born = old == CLOSE && (new == SYN_SENT || new == LISTEN);
    // Not out of SYN_RECV (a Fast Open child closed early): a late child's
    // birth must still be sent first, below.
    let closed_by_holder = (old == ESTABLISHED && new == FIN_WAIT1) || (old == CLOSE_WAIT && new == LAST_ACK);
    let late = old == SYN_RECV && crate::maps::late_children();
    // The frozen global's test is all the newer kernels pay: the verifier
    // drops the branch it can never take (as for HOLLOW).
    let cookie = if crate::ident::own_ids() {
        // A passive child is born at its first event here.
        let first = born || (old == LISTEN && new == SYN_RECV) || late;
        crate::ident::id(sk, crate::sock::kernel_cookie(sk, off), first)
    } else {
        crate::sock::cookie(sk, off)
    };
    // The owner a socket is born with, on its first event only; later
    // events carry none and the agent lends them this one. That is why the
    // kernel keeps no per-socket owner: looking it up again on each of a
    // connection's ten transitions, and freeing it, cost more than the rest
    // of this program. Only transitions that run in a system call of the
    // socket's holder take `current`: the two births, and the two a
    // `close()` or `shutdown()` makes (`tcp_close_state()`, which no packet
    // path calls). The closer is the holder at the end, whoever accepted
    // the socket: a forked child, an exec'd program, the receiver of a
    // passed descriptor, however soon after the hand-over it closes. A
    // passive child, born in softirq (cloned from its listener: LISTEN ->
    // SYN_RECV), belongs to its listener's owner until `accept()` hands it
    // on; the agent, which saw the listener born, lends it. (A kernel map of
    // listener owners, looked up here on every handshake, cost the traced
    // workload up to 2% on its own: the map's lines were often cold by the
    // next handshake.)
    if closed_by_holder {
        // Its own path: merged into the one below, LLVM let a value die
        // across the ring buffer call and the verifier refused the program.
        let mut e = Draft::scratch(Slot::SetState)?;
        e.head(classify(old, new), now, cookie, &t, Who::Current(OwnerSource::Current, 0), 0, old, new);
        e.send();
        return Ok(());
    }
    let who = if born {
        Who::Current(OwnerSource::Current, now)
    } else if old == LISTEN && new == SYN_RECV {
        Who::Child(now)
    } else {
        if late {
            late_child(now, cookie, &t);
        }
        // An abortive close made by `close()` (RST for unread data,
        // `SO_LINGER` 0) runs in the closer's task too, but so do resets
        // received in softirq: only the release just before tells them
        // apart.
        if new == CLOSE && crate::maps::released_by_current(sk) {
            Who::Current(OwnerSource::Current, 0)
        } else {
            Who::Nobody
        }
    };
    let file = if born { inode::<Direct>(sk, off) } else { 0 };
    let mut e = Draft::scratch(Slot::SetState)?;
    e.head(classify(old, new), now, cookie, &t, who, file, old, new);
    if new == CLOSE {
        // tcplife's TX_KB/RX_KB: the final totals ride on the close event.
        e.send_with_totals(|totals| {
            crate::traffic::totals_into(cookie, totals);
            crate::totals::tcp(sk, off, totals);
            crate::totals::why(sk, off, totals);
        });
    } else if new == ESTABLISHED && crate::totals::total_retrans(sk, off) != 0 {
        // A handshake that retransmitted (rare): its SYN (or SYN-ACK)
        // retransmits, the only ones so far, ride on this event; every
        // other completed handshake sends the head alone.
        e.send_with_totals(|totals| {
            crate::totals::handshake(sk, off, totals);
        });
    } else {
        e.send();
    }
    Ok(())
}

/// A passive child's birth, sent late, just before its first transition out
/// of `SYN_RECV`, on kernels where its `LISTEN -> SYN_RECV` names the
/// listener instead.
///
/// The child is cloned from its listener in `inet_csk_clone_lock()`
/// (net/ipv4/inet_connection_sock.c), which on the kernels up to at least
/// 6.12 sets its state, and so fires this tracepoint, right after
/// `sk_clone_lock()` has copied the listener whole (`sock_copy()`): its
/// addresses, its port, and its cookie (`skc_cookie` lies outside the
/// region `sock_copy()` skips). Only after the tracepoint does it take the
/// peer's port, the request's cookie (`ir_cookie`), and, back in
/// `tcp_v4_syn_recv_sock()` / `tcp_v6_syn_recv_sock()`, the addresses. A
/// child can never have a peer port of 0, so `dport == 0` there says
/// exactly that the event is the listener's copy; newer kernels fill the
/// child first and never take this path. The child's next transition
/// (`SYN_RECV -> ESTABLISHED` in `tcp_rcv_state_process()`, or `-> CLOSE`
/// if the handshake's last step fails) follows in the same softirq, with
/// the child complete: its birth is sent then, with its own cookie and
/// tuple, so the agent lends it its listener's owner exactly as elsewhere.
/// Its start time is that of this later transition, microseconds after the
/// clone.
#[inline(always)]
fn late_child(now: u64, cookie: u64, t: &crate::sock::Tuple) {
    let Ok(mut e) = Draft::scratch(Slot::SetState) else { return };
    e.head(classify(LISTEN, SYN_RECV), now, cookie, t, Who::Child(now), 0, LISTEN, SYN_RECV);
    e.send();
}
