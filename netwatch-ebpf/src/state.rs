//! `tp_btf/inet_sock_set_state(const struct sock *sk, int oldstate, int newstate)`

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, generated::bpf_get_socket_cookie},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use netwatch_common::{
    tcp::{CLOSE, ESTABLISHED, LISTEN, SYN_RECV, SYN_SENT},
    EventKind, Owner, OwnerSource, SockEvent,
};

use crate::{
    emit::submit,
    maps::offsets,
    owner,
    sock::{tcp_tuple, Direct, Tuple},
};

#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn nw_set_state(ctx: BtfTracePointContext) -> i32 {
    let _ = try_set_state(&ctx);
    0
}

/// Classifies a transition; the one place that decides what an event means.
#[inline(always)]
pub const fn classify(old: u8, new: u8) -> EventKind {
    match (old, new) {
        (_, LISTEN) => EventKind::Listen,
        (CLOSE, SYN_SENT) => EventKind::Connect,
        (SYN_SENT, ESTABLISHED) => EventKind::Established,
        (SYN_RECV, ESTABLISHED) => EventKind::Accept,
        (SYN_SENT, CLOSE) => EventKind::ConnectFailed,
        (_, CLOSE) => EventKind::Close,
        _ => EventKind::State,
    }
}

fn try_set_state(ctx: &BtfTracePointContext) -> Result<(), i64> {
    let sk: u64 = ctx.arg::<u64>(0);
    let old = ctx.arg::<i32>(1) as u8;
    let new = ctx.arg::<i32>(2) as u8;
    let off = offsets();
    let t = tcp_tuple::<Direct>(sk, &off)?;
    let now = unsafe { bpf_ktime_get_ns() };
    let owner = owner_for(sk, old, new, &t, now);
    if old == LISTEN && new == CLOSE {
        owner::forget_listener(&t, owner.start_ns);
    }
    // SAFETY: sk is the tracepoint's own `struct sock *` argument.
    let cookie = unsafe { bpf_get_socket_cookie(sk as *mut core::ffi::c_void) };
    let mut e = event(classify(old, new), now, cookie, &t, &owner, old, new);
    if new == CLOSE {
        // tcplife's TX_KB/RX_KB: the final totals ride on the close event.
        e.traffic = crate::totals::tcp(sk, &off, crate::traffic::totals(cookie));
    }
    submit(&e);
    Ok(())
}

/// Who owns `sk` at this transition. Only the two transitions that run in
/// the caller's own system call take `current`; everything else is looked up.
#[inline(always)]
fn owner_for(sk: u64, old: u8, new: u8, t: &Tuple, now: u64) -> Owner {
    if old == CLOSE && (new == SYN_SENT || new == LISTEN) {
        let o = owner::current(now, OwnerSource::Current);
        owner::remember(sk, &o);
        if new == LISTEN {
            owner::remember_listener(t, &o);
        }
        return o;
    }
    if let Some(o) = owner::lookup(sk) {
        return o;
    }
    // A passive child: created in softirq by the listener, not yet accepted.
    if new == SYN_RECV || old == SYN_RECV {
        if let Some(o) = owner::of_listener(t, now) {
            owner::remember(sk, &o);
            return o;
        }
    }
    owner::unknown()
}

#[inline(always)]
pub fn event(kind: EventKind, now: u64, cookie: u64, t: &Tuple, o: &Owner, old: u8, new: u8) -> SockEvent {
    SockEvent {
        ts_ns: now,
        start_ns: o.start_ns,
        cookie,
        inode: t.inode,
        saddr: t.saddr,
        daddr: t.daddr,
        comm: o.comm,
        pid: o.pid,
        uid: o.uid,
        netns: t.netns,
        sport: t.sport,
        dport: t.dport,
        family: t.family,
        kind: kind as u8,
        old_state: old,
        new_state: new,
        owner_source: o.source as u8,
        _pad: 0,
        traffic: crate::traffic::zero(),
    }
}
