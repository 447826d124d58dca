//! `tp_btf/tcp_destroy_sock(struct sock *sk)`

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, generated::bpf_get_socket_cookie},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use netwatch_common::EventKind;

use crate::{emit::submit, maps::offsets, owner, sock::tcp_tuple, state::event};

#[btf_tracepoint(function = "tcp_destroy_sock")]
pub fn nw_destroy_sock(ctx: BtfTracePointContext) -> i32 {
    let _ = try_destroy_sock(&ctx);
    0
}

fn try_destroy_sock(ctx: &BtfTracePointContext) -> Result<(), i64> {
    let sk: u64 = ctx.arg::<u64>(0);
    let o = owner::lookup(sk).unwrap_or_else(owner::unknown);
    // Forget first: whatever happens below, the address may be reused now.
    owner::forget(sk);
    let t = tcp_tuple(sk, &offsets())?;
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: sk is the tracepoint's own `struct sock *` argument.
    let cookie = unsafe { bpf_get_socket_cookie(sk as *mut core::ffi::c_void) };
    // Final totals: an abortive close (SO_LINGER 0, unread data) sends its
    // RST after the `-> CLOSE` event left, so only this event has it.
    let totals = crate::traffic::totals(cookie);
    crate::traffic::forget(cookie);
    let state = netwatch_common::tcp::CLOSE;
    let mut e = event(EventKind::Destroy, now, cookie, &t, &o, state, state);
    e.traffic = totals;
    submit(&e);
    Ok(())
}
