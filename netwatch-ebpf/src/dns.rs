//! `cgroup_skb/ingress` on the cgroup v2 root: DNS answers, for the
//! agent's address-to-name map (`rhost` on events).
//!
//! The receive hook runs from `sk_filter()` after the socket lookup: in
//! `udp_queue_rcv_one_skb()` for UDP and `tcp_filter()` (from
//! `tcp_v4_rcv()`) for TCP, and their IPv6 twins. So it sees every
//! datagram and every segment delivered to a socket, in every network
//! namespace, starting at its IP header, with `skb->sk` the receiving
//! socket. What comes from source port 53 is copied into `DNS_EVENTS` with
//! the socket's namespace:
//!
//! - a UDP datagram: its payload, the DNS message, up to
//!   [`DNS_PAYLOAD_MAX`] bytes;
//! - a TCP segment whose payload begins with a whole DNS message (its
//!   2-byte length prefix, RFC 1035 4.2.2, says no more than the segment
//!   holds): the payload from that prefix on, up to [`DNS_PAYLOAD_MAX`]
//!   bytes, where the agent splits the messages it holds (a server may
//!   write two answers in one segment). A message longer than its segment
//!   is not reassembled from the segments that follow: the segment is
//!   skipped, as is any segment that does not start at a message.
//!
//! Everything else leaves after two header bytes (neither UDP nor TCP) or
//! three or four (another source port) are read from the linear data, so a
//! busy data path pays a few instructions per packet.
//! Parsing is the agent's: a message is untrusted input, and a parser is
//! far easier to get right (and test) in userspace than under the
//! verifier. A record that finds the ring full is counted in `DNS_LOST`.
//!
//! DNS over TLS or HTTPS is not seen: it is encrypted.
//!
//! Always returns 1 (pass): it only looks.

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_get_socket_cookie, bpf_skb_load_bytes},
    },
    macros::{cgroup_skb, map},
    maps::{PerCpuArray, RingBuf},
    programs::SkBuffContext,
};
use netwatch_common::dns::{DnsEvent, DNS_PAYLOAD_MAX, PROTO_TCP, PROTO_UDP};

use crate::{maps::offsets, sock::read_kernel, traffic::pkt_byte};

const BPF_RB_NO_WAKEUP: u64 = 1;
const IPPROTO_TCP: u8 = PROTO_TCP;
const IPPROTO_UDP: u8 = PROTO_UDP;
const UDP_HEADER: u32 = 8;
/// Offset of the TCP header's data offset (its high nibble, in 32-bit words).
const TCP_DOFF: u32 = 12;
/// The length prefix of a DNS message over TCP.
const TCP_PREFIX: u32 = 2;
/// A DNS message's fixed header: anything shorter is not one.
const DNS_HEADER: u32 = 12;
const DNS_PORT: u8 = 53;

/// 1 MiB: about 1,900 answers of 536 bytes with the ring's header, what a
/// resolver loop of 38,000 queries a second brings in the 50 ms between
/// the reader's drains. Records are submitted without a wakeup: the reader
/// takes them with the socket events they come before.
#[map]
pub static DNS_EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Answers that found `DNS_EVENTS` full, per CPU (one slot): names the
/// agent never learnt, which it reports (`netwatch_dns_lost_total`).
#[map]
pub static DNS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

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
        4 => (4u8, u32::from(vihl & 0xf) * 4, pkt_byte(ctx, 9)?),
        // Extension headers are not followed: the stack adds none to a
        // DNS answer.
        6 => (6u8, 40, pkt_byte(ctx, 6)?),
        _ => return Ok(()),
    };
    if proto != IPPROTO_UDP && proto != IPPROTO_TCP {
        return Ok(());
    }
    // The source port, big-endian: 0x0035 (the same place in both headers).
    if pkt_byte(ctx, ip_len + 1)? != DNS_PORT || pkt_byte(ctx, ip_len)? != 0 {
        return Ok(());
    }
    let skb: *const __sk_buff = ctx.skb.skb;
    // SAFETY: fields of the program's own context.
    let (len, sk) = unsafe { ((*skb).len, (*skb).__bindgen_anon_2.sk) };
    if sk.is_null() {
        return Ok(());
    }
    let start = if proto == IPPROTO_UDP {
        ip_len + UDP_HEADER
    } else {
        ip_len + u32::from(pkt_byte(ctx, ip_len + TCP_DOFF)? >> 4) * 4
    };
    let Some(payload) = len.checked_sub(start).filter(|n| *n >= DNS_HEADER) else {
        return Ok(());
    };
    if proto == IPPROTO_TCP {
        // Only a segment that starts with a whole message (so at least a
        // prefix and a header).
        let message = u32::from(pkt_byte(ctx, start)?) << 8 | u32::from(pkt_byte(ctx, start + 1)?);
        if message < DNS_HEADER || message + TCP_PREFIX > payload {
            return Ok(());
        }
    }
    // The length checked again where the verifier sees it. The compiler
    // knows `payload >= DNS_HEADER` and would drop a second check, and
    // with the TCP branch between, it derives the copy's length from
    // another zero-extended copy of the difference than the one checked
    // above, whose lower bound the verifier (which learns bounds per
    // register) never learnt: a length that may be 0 is refused. Read back
    // through memory, `payload` is a value the compiler knows nothing
    // about, so this check stays, on the register the length comes from.
    // SAFETY: a read of a local.
    let payload = unsafe { core::ptr::read_volatile(&payload) };
    if payload < DNS_HEADER {
        return Ok(());
    }
    let n = if payload > DNS_PAYLOAD_MAX as u32 { DNS_PAYLOAD_MAX as u32 } else { payload };
    let Some(mut entry) = DNS_EVENTS.reserve::<DnsEvent>(0) else {
        lost();
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
        (&raw mut (*rec).protocol).write(proto);
    }
    entry.submit(BPF_RB_NO_WAKEUP);
    Ok(())
}

/// Counts an answer that found the ring full.
#[inline(always)]
fn lost() {
    if let Some(slot) = DNS_LOST.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot, and this hook runs in softirq, which
        // does not nest on one CPU: the increment cannot race.
        unsafe { *slot += 1 };
    }
}

/// The namespace inode of the receiving socket. The verifier allows no
/// arithmetic on the `bpf_sock` pointer the context gives, so its value is
/// first passed through the record (a privileged program may store a
/// pointer in memory, and reads it back as a plain number), then the
/// fields are read with `bpf_probe_read_kernel` at the offsets resolved
/// from BTF, as `release` reads its socket.
///
/// No typed read does it on every kernel netwatch runs on. On 5.10 (probed
/// with `bpftool feature probe` in its guest) a cgroup_skb program may call
/// `bpf_skc_to_tcp_sock`, `_tcp6_sock`, `_tcp_timewait_sock`,
/// `_tcp_request_sock` and `_udp6_sock`, but none of them casts an IPv4
/// UDP socket, the usual resolver's; and `bpf_get_netns_cookie`, offered
/// to cgroup_skb on 6.18, is not there, and gives a cookie where netwatch
/// keys namespaces by inode everywhere else.
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
