//! `tp_btf/tcp_retransmit_skb`, `tp_btf/tcp_send_reset`,
//! `tp_btf/tcp_receive_reset`: retransmits and resets per socket, in the
//! socket's `TRAFFIC` row (the BTF variants need no tracefs).
//!
//! A row is created if the socket has none (without the per-packet
//! counters nothing else creates it), but never for a minisocket (see
//! `traffic::is_minisock`; a reset sent for a TIME_WAIT socket carries the
//! cookie of the full socket whose row was deleted at its teardown).

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use netwatch_common::tcp;

use crate::{
    maps::offsets,
    sock::{any_cookie, Direct, Fields},
    traffic::{add32, is_minisock, row},
};

#[derive(Clone, Copy)]
enum What {
    Retransmit,
    ResetSent,
    ResetReceived,
}

/// `(const struct sock *sk, const struct sk_buff *skb, int err)`
#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn nw_retransmit(ctx: BtfTracePointContext) -> i32 {
    bump(&ctx, What::Retransmit);
    0
}

/// `(const struct sock *sk, const struct sk_buff *skb, enum sk_rst_reason)`;
/// `sk` is NULL for a reset answering a packet no socket wanted.
#[btf_tracepoint(function = "tcp_send_reset")]
pub fn nw_send_reset(ctx: BtfTracePointContext) -> i32 {
    bump(&ctx, What::ResetSent);
    0
}

/// `(struct sock *sk)`
#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn nw_recv_reset(ctx: BtfTracePointContext) -> i32 {
    bump(&ctx, What::ResetReceived);
    0
}

#[inline(always)]
fn bump(ctx: &BtfTracePointContext, what: What) {
    let sk: u64 = ctx.arg::<u64>(0);
    if sk == 0 || crate::maps::others_hollow() {
        return;
    }
    let off = offsets();
    let state: u8 = Direct::at(sk, off.skc_state).unwrap_or(tcp::TIME_WAIT);
    if is_minisock(u32::from(state)) {
        return;
    }
    let Some(t) = row(any_cookie(sk, off)) else { return };
    // SAFETY: `t` points into a map value.
    let field = unsafe {
        match what {
            What::Retransmit => &raw mut (*t).retransmits,
            What::ResetSent => &raw mut (*t).resets_sent,
            What::ResetReceived => &raw mut (*t).resets_received,
        }
    };
    add32(field, 1);
}
