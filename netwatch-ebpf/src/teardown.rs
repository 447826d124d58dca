//! `tp_btf/tcp_destroy_sock(struct sock *sk)`

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::btf_tracepoint, programs::BtfTracePointContext};
use netwatch_common::EventKind;

use crate::{
    emit::{Draft, Slot, Who},
    maps::{offsets, teardown_events},
    sock::{tcp_tuple, Direct},
};

#[btf_tracepoint(function = "tcp_destroy_sock")]
pub fn nw_destroy_sock(ctx: BtfTracePointContext) -> i32 {
    if !crate::maps::others_hollow() {
        let _ = try_destroy_sock(&ctx);
    }
    0
}

fn try_destroy_sock(ctx: &BtfTracePointContext) -> Result<(), i64> {
    let sk: u64 = ctx.arg::<u64>(0);
    if crate::ident::own_ids() {
        return destroy_own_id(sk);
    }
    // Two of the twelve runs per connection: without anyone asking for
    // teardown events, and with no traffic row to free (so no reset after
    // the close to report), there is nothing to do.
    if !teardown_events() && crate::traffic::no_rows() {
        return Ok(());
    }
    let off = offsets();
    let cookie = crate::sock::cookie(sk, off);
    destroyed(sk, cookie)
}

/// Where netwatch keeps its own socket ids (`ident`), the socket's row goes
/// on every destroy.
#[inline(always)]
fn destroy_own_id(sk: u64) -> Result<(), i64> {
    let off = offsets();
    let kernel = crate::sock::kernel_cookie(sk, off);
    let cookie = crate::ident::known(sk, kernel);
    crate::ident::forget(sk);
    if kernel != 0 && kernel != cookie {
        // The per-packet counters key the socket by the kernel's cookie,
        // made on its first packet: that row goes too.
        crate::traffic::forget(kernel);
    }
    if !teardown_events() && crate::traffic::no_rows() {
        return Ok(());
    }
    destroyed(sk, cookie)
}

#[inline(always)]
fn destroyed(sk: u64, cookie: u64) -> Result<(), i64> {
    let off = offsets();
    // The traffic row goes in every case; its final totals ride on this
    // event when there is one (the cookie is never reused).
    let mut totals = crate::traffic::zero();
    crate::traffic::totals_into(cookie, &mut totals);
    crate::traffic::forget(cookie);
    // An abortive close (SO_LINGER 0, unread data) that sent its RST after
    // the `-> CLOSE` event left: only this event has the final totals.
    if !teardown_events() && totals.resets_sent == 0 {
        return Ok(());
    }
    let t = tcp_tuple::<Direct>(sk, off)?;
    // SAFETY: no arguments, no side effects.
    let now = unsafe { bpf_ktime_get_ns() };
    let state = netwatch_common::tcp::CLOSE;
    // No owner: the agent knows it from the socket's birth. The map row
    // only: an abortive close has already zeroed the socket's own counters
    // (tcp_disconnect), which the close event carried.
    let mut e = Draft::scratch(Slot::Teardown)?;
    e.head(EventKind::Destroy, now, cookie, &t, Who::Nobody, 0, state, state);
    e.send_with_totals(|t| *t = totals);
    Ok(())
}
