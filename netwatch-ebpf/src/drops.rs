//! `tp_btf/kfree_skb`: packets the kernel dropped, counted on the socket
//! they belonged to, with the reason of the last one, in its `TRAFFIC` row
//! (so a close event carries them with its other totals).
//!
//! `kfree_skb_reason()` (net/core/skbuff.c) fires this tracepoint with an
//! `enum skb_drop_reason` since 5.17: `(struct sk_buff *skb, void *location,
//! enum skb_drop_reason reason[, struct sock *rx_sk])`. A packet freed as
//! consumed goes to `skb:consume_skb` instead, so every hit here is a drop.
//! The socket is `skb->sk`: set on everything a socket sends (its owner)
//! and on what it receives once the socket owns it (early demux of an
//! established connection, or once queued). A receive-side drop after the
//! socket lookup but before that (a full receive buffer, a socket filter,
//! TCP's sequence checks) has no `skb->sk`: since Linux 6.11 the
//! tracepoint names that socket in its fourth argument, `rx_sk`
//! (`sk_skb_reason_drop()`), which `nw_kfree_skb` reads; on older kernels,
//! whose verifier refuses reading an argument the tracepoint lacks,
//! `nw_kfree_skb_sk` counts `skb->sk`'s only. A packet dropped before any
//! socket was found belongs to none and is not counted. Only IPv4/IPv6
//! TCP and UDP sockets: their rows are freed at their teardown or release,
//! other families' would stay in the map.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use core::intrinsics::{atomic_cxchg, AtomicOrdering::SeqCst};
use netwatch_common::{tcp, Traffic, DROP_SLOTS};

use crate::{
    maps::offsets,
    sock::{any_cookie, kernel_cookie, Direct, Fields},
    traffic::{add32, is_minisock, row},
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;
/// `enum sock_flags`: set by `sock_orphan()` when the socket's file goes.
const SOCK_DEAD: u64 = 0;
/// `SKB_NOT_DROPPED_YET`, never a reason a drop is traced with.
const NOT_DROPPED: u32 = 0;

#[btf_tracepoint(function = "kfree_skb")]
pub fn nw_kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let _ = try_drop(&ctx, true);
    0
}

#[btf_tracepoint(function = "kfree_skb")]
pub fn nw_kfree_skb_sk(ctx: BtfTracePointContext) -> i32 {
    let _ = try_drop(&ctx, false);
    0
}

#[inline(always)]
fn try_drop(ctx: &BtfTracePointContext, rx_sk: bool) -> Result<(), i64> {
    let skb: u64 = ctx.arg::<u64>(0);
    let reason: u32 = ctx.arg::<u64>(2) as u32;
    if skb == 0 || reason == NOT_DROPPED || crate::maps::others_hollow() {
        return Ok(());
    }
    let off = offsets();
    let mut sk: u64 = Direct::at(skb, off.skb_sk)?;
    if sk == 0 && rx_sk {
        sk = ctx.arg::<u64>(3);
    }
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
    // A socket whose row is already freed, its totals already sent, must
    // not get a new one: nothing would free it, and what its destructor
    // frees unread (`QUEUE_PURGE`) comes after that. A released UDP socket
    // (`sock_orphan()` set SOCK_DEAD) is one. A TCP socket is orphaned at
    // close() but lives on to its teardown, which frees its row; it is in
    // CLOSE and orphaned from just before that teardown to its end, when
    // the kernel purges its queues. An actively closed connection's last
    // FIN waits in its receive queue until then: one dropped skb per
    // connection, which at 10,000 connections a second filled the map in
    // seconds and made every read of it slow.
    // (The flags are read only where they decide: not for every drop of a
    // live TCP connection.)
    if (protocol == IPPROTO_UDP || state == tcp::CLOSE)
        && Direct::at::<u64>(sk, off.sk_flags).unwrap_or(0) & (1 << SOCK_DEAD) != 0
    {
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
    // the last writer's reason stands, which is what it says. The slot's
    // count goes up before the total, so a reader never sees more slotted
    // drops than drops (it may see one "other" drop for a moment).
    unsafe {
        by_reason(t, reason);
        add32(&raw mut (*t).drops, 1);
        core::ptr::write_volatile(&raw mut (*t).drop_reason, reason);
    }
    Ok(())
}

/// Adds one to `reason`'s slot, claiming a free lane of `drop_slots` for
/// it first if it has none. Drops of one socket happen on several CPUs at
/// once (a send-side netfilter drop beside a receive softirq's), so a free
/// lane is claimed with a compare-and-swap of the whole word (BPF atomics,
/// Linux 5.12, older than this tracepoint's reason): two new reasons never
/// share a lane. A failed swap means another reason took a lane meanwhile:
/// look again, a bounded number of times (each failure fills a lane).
///
/// # Safety
/// `t` points into a `TRAFFIC` map value.
#[inline(always)]
unsafe fn by_reason(t: *mut Traffic, reason: u32) {
    if reason > 0xffff {
        return; // no lane holds it: counted as "other"
    }
    let reason = u64::from(reason);
    // SAFETY: fields of the map value `t` points to (the caller's promise).
    unsafe {
        let slots = &raw mut (*t).drop_slots;
        for _ in 0..=DROP_SLOTS {
            let word = core::ptr::read_volatile(slots);
            let mut free = None;
            for i in 0..DROP_SLOTS {
                let lane = (word >> (16 * i)) & 0xffff;
                if lane == reason {
                    add32(&raw mut (*t).drop_counts[i], 1);
                    return;
                }
                if lane == 0 && free.is_none() {
                    free = Some(i);
                }
            }
            let Some(i) = free else { return };
            let (_, claimed) = atomic_cxchg::<u64, { SeqCst }, { SeqCst }>(slots, word, word | (reason << (16 * i)));
            if claimed {
                add32(&raw mut (*t).drop_counts[i], 1);
                return;
            }
        }
    }
}
