//! `tp_btf/kfree_skb`: packets the kernel dropped, counted on the socket
//! they belonged to, with the reason of the last one, in its `TRAFFIC` row
//! (so a close event carries them with its other totals).
//!
//! `kfree_skb_reason()` (net/core/skbuff.c) fires this tracepoint with an
//! `enum skb_drop_reason` since 5.17: `(struct sk_buff *skb, void *location,
//! enum skb_drop_reason reason[, struct sock *rx_sk])`. A packet freed as
//! consumed goes to `skb:consume_skb` instead, so every hit here is a drop.
//! The socket is `skb->sk`: set on everything a socket sends (its owner)
//! and on what it receives once the socket is known (early demux of an
//! established connection, or after the lookup); a packet dropped before
//! any socket was found belongs to none and is not counted. Only IPv4/IPv6
//! TCP and UDP sockets: their rows are freed at their teardown or release,
//! other families' would stay in the map.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use netwatch_common::tcp;

use crate::{
    maps::offsets,
    sock::{any_cookie, kernel_cookie, Direct, Fields},
    traffic::{add32, is_minisock, row},
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;
/// `SKB_NOT_DROPPED_YET`, never a reason a drop is traced with.
const NOT_DROPPED: u32 = 0;

#[btf_tracepoint(function = "kfree_skb")]
pub fn nw_kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let _ = try_drop(&ctx);
    0
}

#[inline(always)]
fn try_drop(ctx: &BtfTracePointContext) -> Result<(), i64> {
    let skb: u64 = ctx.arg::<u64>(0);
    let reason: u32 = ctx.arg::<u64>(2) as u32;
    if skb == 0 || reason == NOT_DROPPED || crate::maps::others_hollow() {
        return Ok(());
    }
    let off = offsets();
    let sk: u64 = Direct::at(skb, off.skb_sk)?;
    if sk == 0 {
        return Ok(());
    }
    let family: u16 = Direct::at(sk, off.skc_family)?;
    let protocol: u16 = Direct::at(sk, off.sk_protocol)?;
    if (family != AF_INET && family != AF_INET6) || (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP) {
        return Ok(());
    }
    let state: u8 = Direct::at(sk, off.skc_state).unwrap_or(tcp::TIME_WAIT);
    if is_minisock(u32::from(state)) {
        return Ok(());
    }
    // The cookie as the socket holds it: the helper that makes one refuses
    // a pointer read out of an skb, and a socket netwatch tracks has had
    // its cookie made at its first transition (0: not one of those).
    let cookie = if crate::ident::own_ids() { any_cookie(sk, off) } else { kernel_cookie(sk, off) };
    if cookie == 0 {
        return Ok(());
    }
    let Some(t) = row(cookie) else { return Ok(()) };
    // SAFETY: `t` points into a map value. The reason is a plain store:
    // the last writer's reason stands, which is what it says.
    unsafe {
        add32(&raw mut (*t).drops, 1);
        core::ptr::write_volatile(&raw mut (*t).drop_reason, reason);
    }
    Ok(())
}
