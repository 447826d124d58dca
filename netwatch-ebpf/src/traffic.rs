//! `cgroup_skb/{ingress,egress}` on the cgroup v2 root: bytes and packets
//! per socket, in `TRAFFIC`.
//!
//! The programs see each IP packet starting at its IP header, with
//! `skb->sk` set to the socket that sends or receives it (the receive hook
//! runs from `sk_filter()` in `tcp_v4_rcv`/`udp_queue_rcv_one_skb` and their
//! IPv6 twins, after the socket lookup). Headers are parsed with
//! network-types' layouts, so no kernel struct offset is involved. Loopback
//! passes whole GSO aggregates (up to 64 KiB and more) through both hooks,
//! so payload is always the skb's length minus the headers, never a
//! per-segment guess; `gso_segs` says how many packets it stands for.
//!
//! Both programs always return 1 (pass): counting must never drop a packet.

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::generated::{bpf_get_socket_cookie, bpf_skb_load_bytes},
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use core::{
    intrinsics::{atomic_xadd, AtomicOrdering::Relaxed},
    mem::{offset_of, MaybeUninit},
};
use netwatch_common::{tcp, Counter, Traffic};
use network_types::{
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
    udp::UdpHdr,
};

use crate::{
    emit::count,
    maps::{TRAFFIC, TRAFFIC_ROWS},
};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const BPF_NOEXIST: u64 = 1;

#[cgroup_skb(ingress)]
pub fn nw_skb_ingress(ctx: SkBuffContext) -> i32 {
    if !crate::maps::others_hollow() {
        let _ = try_count(&ctx, Dir::Rx);
    }
    1
}

#[cgroup_skb(egress)]
pub fn nw_skb_egress(ctx: SkBuffContext) -> i32 {
    if !crate::maps::others_hollow() {
        let _ = try_count(&ctx, Dir::Tx);
    }
    1
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Tx,
    Rx,
}

/// One packet (or GSO aggregate) as counted.
struct Packet {
    payload: u64,
    headers: u64,
    segs: u64,
}

#[inline(always)]
fn try_count(ctx: &SkBuffContext, dir: Dir) -> Result<(), i64> {
    // SAFETY: the context's own skb; `sk` is checked for NULL before use.
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return Ok(());
    }
    // SAFETY: `state` is one of the fields every socket kind has.
    if is_minisock(unsafe { (*sk).state }) {
        return Ok(());
    }
    let p = parse(ctx)?;
    // SAFETY: cgroup_skb programs always have a socket behind the skb.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) };
    // Where the tracepoints named the socket themselves (`ident`), its row
    // goes under that name, which its events and table row carry. The
    // frozen global's test is all the newer kernels pay.
    let cookie = if crate::ident::own_ids() { crate::ident::known(sk as u64, cookie) } else { cookie };
    let t = match row(cookie) {
        Some(t) => t,
        None => return Ok(()),
    };
    let (bytes, packets, ip_bytes) = match dir {
        // SAFETY: `t` points into a map value, valid and 8-aligned.
        Dir::Tx => unsafe { (&raw mut (*t).tx_bytes, &raw mut (*t).tx_packets, &raw mut (*t).tx_ip_bytes) },
        // SAFETY: as above.
        Dir::Rx => unsafe { (&raw mut (*t).rx_bytes, &raw mut (*t).rx_packets, &raw mut (*t).rx_ip_bytes) },
    };
    add(bytes, p.payload);
    add(packets, p.segs);
    add(ip_bytes, p.payload + p.headers * p.segs);
    Ok(())
}

/// Whether a socket in `state` is a TIME_WAIT or request minisocket,
/// which must never get a row: minisockets are not freed through
/// `tcp_destroy_sock`, so the row would stay in the map for good. A
/// TIME_WAIT socket (same cookie as the full socket whose row was freed at
/// its teardown) gets the last ACKs, a request socket the SYN-ACK; at tens
/// of thousands of connections a second that filled the map within seconds.
#[inline(always)]
pub fn is_minisock(state: u32) -> bool {
    state == u32::from(tcp::TIME_WAIT) || state == u32::from(tcp::NEW_SYN_RECV)
}

/// The socket's row, created on its first packet.
#[inline(always)]
pub fn row(cookie: u64) -> Option<*mut Traffic> {
    if let Some(t) = TRAFFIC.get_ptr_mut(cookie) {
        return Some(t);
    }
    // NOEXIST: a packet on another CPU may have created it meanwhile, and
    // its counts must not be overwritten.
    if TRAFFIC.insert(cookie, zero(), BPF_NOEXIST).is_ok() {
        rows_add(1);
    } else if TRAFFIC.get_ptr_mut(cookie).is_none() {
        count(Counter::TrafficFull);
        return None;
    }
    TRAFFIC.get_ptr_mut(cookie)
}

/// Packets of one socket are counted on several CPUs at once (threads
/// sharing a UDP socket, receive softirqs on two CPUs), hence atomic adds on
/// the shared row: BPF's `lock xadd`. The intrinsic, because the BPF target
/// has no compare-and-swap, so core's `AtomicU64::fetch_add` does not exist
/// for it; the result is unused, which is what makes LLVM emit the plain add.
#[inline(always)]
pub fn add(field: *mut u64, n: u64) {
    // SAFETY: `field` is an aligned u64 inside a map value.
    unsafe { atomic_xadd::<u64, u64, { Relaxed }>(field, n) };
}

#[inline(always)]
pub fn add32(field: *mut u32, n: u32) {
    // SAFETY: `field` is an aligned u32 inside a map value.
    unsafe { atomic_xadd::<u32, u32, { Relaxed }>(field, n) };
}

/// Reads `T` at `off` into uninitialised stack memory (no zero-fill, which
/// the BPF backend turns into a byte-loop memset call).
#[inline(always)]
fn load<T>(ctx: &SkBuffContext, off: u32) -> Result<MaybeUninit<T>, i64> {
    let mut out = MaybeUninit::<T>::uninit();
    // SAFETY: the helper writes exactly size_of::<T>() bytes or fails.
    let r = unsafe { bpf_skb_load_bytes(ctx.skb.skb as *const _, off, out.as_mut_ptr().cast(), size_of::<T>() as u32) };
    if r < 0 {
        return Err(r);
    }
    Ok(out)
}

/// The packet's byte at `off` (from the IP header): read in place when the
/// skb's linear part holds it, as it holds the headers of every packet the
/// local stack builds and of what loopback and GRO deliver; otherwise
/// copied out with `bpf_skb_load_bytes`, which reaches into fragments.
/// One byte at a time, because some network-types fields are enums that do
/// not cover every value a packet may hold, so they are never read as such.
#[inline(always)]
pub fn pkt_byte(ctx: &SkBuffContext, off: u32) -> Result<u8, i64> {
    let skb: *const __sk_buff = ctx.skb.skb;
    // SAFETY: fields of the program's own context.
    let (data, end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    let at = data + off as usize;
    // Two bytes, where one is read: LLVM rewrites `at + 1 <= end` into
    // `at < end`, from which the verifier learns no readable range. Every
    // byte read here has another header byte after it.
    if at + 2 <= end {
        // SAFETY: bounds checked against data_end just above.
        return Ok(unsafe { *(at as *const u8) });
    }
    let b: MaybeUninit<u8> = load(ctx, off)?;
    // SAFETY: initialised by load.
    Ok(unsafe { b.assume_init() })
}

#[inline(always)]
fn parse(ctx: &SkBuffContext) -> Result<Packet, i64> {
    // SAFETY: reading fields of the program's own context.
    let (len, segs) = unsafe {
        let skb: *const __sk_buff = ctx.skb.skb;
        (u64::from((*skb).len), u64::from((*skb).gso_segs))
    };
    let vihl = pkt_byte(ctx, offset_of!(Ipv4Hdr, vihl) as u32)?;
    let (proto, ip_len) = match vihl >> 4 {
        4 => (pkt_byte(ctx, offset_of!(Ipv4Hdr, proto) as u32)?, u32::from(vihl & 0xf) * 4),
        6 => skip_extensions(ctx, pkt_byte(ctx, offset_of!(Ipv6Hdr, next_hdr) as u32)?, Ipv6Hdr::LEN as u32)?,
        _ => return Err(0),
    };
    let l4_len = match proto {
        // doff: the high nibble of the byte after ack_seq, in 32-bit words.
        IPPROTO_TCP => u32::from(pkt_byte(ctx, ip_len + offset_of!(TcpHdr, _bitfield_1) as u32)? >> 4) * 4,
        IPPROTO_UDP => UdpHdr::LEN as u32,
        _ => return Err(0),
    };
    let headers = u64::from(ip_len + l4_len);
    Ok(Packet { payload: len.saturating_sub(headers), headers, segs: if segs == 0 { 1 } else { segs } })
}

/// IPv6 extension headers the stack itself adds: hop-by-hop options (a
/// loopback GSO aggregate of a 1 MB write carries one, verified here),
/// routing and destination options. Returns the transport protocol and
/// its offset; fragments and anything unexpected are not counted.
#[inline(always)]
fn skip_extensions(ctx: &SkBuffContext, mut next: u8, mut off: u32) -> Result<(u8, u32), i64> {
    const HOP_BY_HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const DEST_OPTS: u8 = 60;
    for _ in 0..4 {
        if next != HOP_BY_HOP && next != ROUTING && next != DEST_OPTS {
            return Ok((next, off));
        }
        // Every one of these starts with: next header, length in 8-byte
        // units not counting the first 8.
        let len = pkt_byte(ctx, off + 1)?;
        next = pkt_byte(ctx, off)?;
        off += (u32::from(len) + 1) * 8;
    }
    Err(0)
}

/// Copies the totals of `cookie` into `out` for its closing event; leaves
/// `out` alone if the socket never had a row.
#[inline(always)]
pub fn totals_into(cookie: u64, out: &mut Traffic) {
    if no_rows() {
        return;
    }
    // SAFETY: copied out at once; a concurrent add is at worst not seen.
    if let Some(t) = unsafe { TRAFFIC.get(cookie) } {
        *out = *t;
    }
}

/// Whether `TRAFFIC` is empty. A socket's row is made (and counted) before
/// its own teardown looks, by programs that hold the socket, so a zero
/// never hides the row of the socket asking.
#[inline(always)]
pub fn no_rows() -> bool {
    // SAFETY: a plain read of the one slot.
    TRAFFIC_ROWS.get(0).is_none_or(|n| *n == 0)
}

#[inline(always)]
fn rows_add(n: u64) {
    if let Some(slot) = TRAFFIC_ROWS.get_ptr_mut(0) {
        add(slot, n);
    }
}

/// A zero [`Traffic`] built from a zero LLVM cannot see through (a
/// volatile load): constant zero stores, even volatile ones, end up merged
/// into a call to the BPF backend's byte-loop `memset` (see `Bytes16`).
#[inline(always)]
pub fn zero() -> Traffic {
    let z = crate::emit::opaque_zero();
    Traffic {
        tx_bytes: z,
        rx_bytes: z,
        tx_packets: z,
        rx_packets: z,
        tx_ip_bytes: z,
        rx_ip_bytes: z,
        retransmits: z as u32,
        resets_sent: z as u32,
        resets_received: z as u32,
        drops: z as u32,
        srtt_us: z as u32,
        total_retrans: z as u32,
        sk_err: z as u32,
        sk_err_soft: z as u16,
        protocol: z as u16,
        drop_reason: z as u32,
        drop_counts: [z as u32; netwatch_common::DROP_SLOTS],
        drop_slots: z,
    }
}

#[inline(always)]
pub fn forget(cookie: u64) {
    if !no_rows() && TRAFFIC.remove(cookie).is_ok() {
        rows_add(u64::MAX); // -1, wrapping
    }
}
