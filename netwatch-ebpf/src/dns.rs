//! `cgroup_skb/ingress` on the cgroup v2 root: DNS answers, for the
//! agent's address-to-name map (`rhost` on events).
//!
//! The receive hook runs from `sk_filter()` in `udp_queue_rcv_one_skb()`
//! (and its IPv6 twin) after the socket lookup, so it sees every UDP
//! datagram delivered to a socket, in every network namespace, starting at
//! its IP header, with `skb->sk` the receiving socket. A datagram from
//! port 53 has its payload (up to [`DNS_PAYLOAD_MAX`] bytes) copied into
//! `DNS_EVENTS` with the socket's namespace; everything else leaves after
//! two or three header bytes are read from the linear data, so a busy data
//! path pays a few instructions per packet. Parsing is the agent's: a
//! message is untrusted input, and a parser is far easier to get right
//! (and test) in userspace than under the verifier.
//!
//! TCP DNS (port 53 over TCP, DoT, DoH) is not seen: a TCP segment need not
//! start at a message boundary.
//!
//! Always returns 1 (pass): it only looks.

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_get_socket_cookie, bpf_skb_load_bytes},
    },
    macros::{cgroup_skb, map},
    maps::RingBuf,
    programs::SkBuffContext,
};
use netwatch_common::dns::{DnsEvent, DNS_PAYLOAD_MAX};

use crate::{maps::offsets, sock::read_kernel, traffic::pkt_byte};

const BPF_RB_NO_WAKEUP: u64 = 1;
const IPPROTO_UDP: u8 = 17;
const UDP_HEADER: u32 = 8;
/// A DNS message's fixed header: anything shorter is not one.
const DNS_HEADER: u32 = 12;
const DNS_PORT: u8 = 53;

/// 1 MiB: about 1,900 answers of 536 bytes with the ring's header, what a
/// resolver loop of 38,000 queries a second brings in the 50 ms between
/// the reader's drains. Records are submitted without a wakeup: the reader
/// takes them with the socket events they come before.
#[map]
pub static DNS_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

#[cgroup_skb(ingress)]
pub fn nw_dns_in(ctx: SkBuffContext) -> i32 {
    if !crate::maps::others_hollow() {
        let _ = try_dns(&ctx);
    }
    1
}

#[inline(always)]
fn try_dns(ctx: &SkBuffContext) -> Result<(), i64> {
    let vihl = pkt_byte(ctx, 0)?;
    let (version, ip_len, proto) = match vihl >> 4 {
        4 => (4u16, u32::from(vihl & 0xf) * 4, pkt_byte(ctx, 9)?),
        // Extension headers are not followed: the stack adds none to a
        // small UDP datagram.
        6 => (6u16, 40, pkt_byte(ctx, 6)?),
        _ => return Ok(()),
    };
    if proto != IPPROTO_UDP {
        return Ok(());
    }
    // The source port, big-endian: 0x0035.
    if pkt_byte(ctx, ip_len + 1)? != DNS_PORT || pkt_byte(ctx, ip_len)? != 0 {
        return Ok(());
    }
    let skb: *const __sk_buff = ctx.skb.skb;
    // SAFETY: fields of the program's own context.
    let (len, sk) = unsafe { ((*skb).len, (*skb).__bindgen_anon_2.sk) };
    if sk.is_null() {
        return Ok(());
    }
    let start = ip_len + UDP_HEADER;
    let Some(payload) = len.checked_sub(start).filter(|n| *n >= DNS_HEADER) else {
        return Ok(());
    };
    let n = if payload > DNS_PAYLOAD_MAX as u32 { DNS_PAYLOAD_MAX as u32 } else { payload };
    let Some(mut entry) = DNS_EVENTS.reserve::<DnsEvent>(0) else {
        return Ok(());
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is the reserved record; the helper writes at most `n`
    // (<= DNS_PAYLOAD_MAX) bytes into its payload or fails.
    let r = unsafe { bpf_skb_load_bytes(skb.cast(), start, (&raw mut (*rec).payload).cast(), n) };
    if r < 0 {
        entry.discard(0);
        return Ok(());
    }
    // Before the time: `netns` passes the socket pointer through `ts_ns`.
    let netns = netns(rec, sk as u64);
    // SAFETY: writing fields of the reserved record; any skb may be asked
    // for its socket's cookie.
    unsafe {
        (&raw mut (*rec).ts_ns).write(bpf_ktime_get_ns());
        (&raw mut (*rec).cookie).write(bpf_get_socket_cookie(skb as *mut _));
        (&raw mut (*rec).netns).write(netns);
        (&raw mut (*rec).len).write(n as u16);
        (&raw mut (*rec).ip_version).write(version);
    }
    entry.submit(BPF_RB_NO_WAKEUP);
    Ok(())
}

/// The namespace inode of the receiving socket. The verifier allows no
/// arithmetic on the `bpf_sock` pointer the context gives, so its value is
/// first passed through the record (a privileged program may store a
/// pointer in memory, and reads it back as a plain number), then the
/// fields are read with `bpf_probe_read_kernel` at the offsets resolved
/// from BTF, as `release` reads its socket.
#[inline(always)]
fn netns(rec: *mut DnsEvent, sk: u64) -> u32 {
    // SAFETY: a field of the reserved record; the caller writes ts_ns after.
    let sk = unsafe {
        let slot = &raw mut (*rec).ts_ns;
        core::ptr::write_volatile(slot, sk);
        core::ptr::read_volatile(slot)
    };
    let off = offsets();
    let net: u64 = read_kernel(sk + u64::from(off.skc_net)).unwrap_or(0);
    if net == 0 {
        return 0;
    }
    read_kernel(net + u64::from(off.net_inum)).unwrap_or(0)
}
