//! Reading a `struct sock` at the offsets the agent resolved from BTF.
//!
//! One small `bpf_probe_read_kernel` per field (~6 ns each here) rather than
//! one copy of the struct's head: a stack buffer that size has to be zeroed
//! first, and that memset, a byte loop in BPF, cost 40x more than the reads.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use netwatch_common::{
    tcp::{AF_INET, AF_INET6, IPPROTO_TCP},
    Bytes16, KernelOffsets,
};

/// The addressing half of a socket, as the event record carries it.
pub struct Tuple {
    pub saddr: Bytes16,
    pub daddr: Bytes16,
    pub sport: u16,
    pub dport: u16,
    pub family: u16,
    pub netns: u32,
    pub inode: u64,
}

#[inline(always)]
pub fn read_kernel<T>(addr: u64) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_kernel validates the address and fails cleanly.
    unsafe { bpf_probe_read_kernel(addr as *const T) }.map_err(i64::from)
}

/// A zeroed [`Bytes16`] without a `memset` call (see `Bytes16`): volatile
/// word stores are not merged into one.
#[inline(always)]
pub fn zero16() -> Bytes16 {
    let mut out = core::mem::MaybeUninit::<Bytes16>::uninit();
    // SAFETY: zero_words initialises all 16 bytes.
    unsafe {
        zero_words(out.as_mut_ptr());
        out.assume_init()
    }
}

/// Zeroes `b` in place with two volatile 64-bit stores.
#[inline(always)]
pub fn zero_in_place(b: &mut Bytes16) {
    // SAFETY: a valid, aligned Bytes16.
    unsafe { zero_words(b) }
}

#[inline(always)]
unsafe fn zero_words(b: *mut Bytes16) {
    let words = b.cast::<u64>();
    // SAFETY: the caller passes 16 writable bytes aligned to 8.
    unsafe {
        core::ptr::write_volatile(words, 0);
        core::ptr::write_volatile(words.add(1), 0);
    }
}

/// An IPv4 address, bytes as the kernel stores them, in the first 4 bytes.
#[inline(always)]
fn v4(addr: [u8; 4]) -> Bytes16 {
    let mut out = zero16();
    out.0[..4].copy_from_slice(&addr);
    out
}

#[inline(always)]
fn at<T>(base: u64, off: u32) -> Result<T, i64> {
    read_kernel(base + u64::from(off))
}

/// Reads the tuple of a TCP socket; `Err` for other protocols (the
/// tracepoint also fires for SCTP, MPTCP and DCCP, KERNEL-NOTES point 7) and
/// for families other than IPv4/IPv6.
#[inline(always)]
pub fn tcp_tuple(sk: u64, off: &KernelOffsets) -> Result<Tuple, i64> {
    let protocol: u16 = at(sk, off.sk_protocol)?;
    if protocol != IPPROTO_TCP {
        return Err(0);
    }
    inet_tuple(sk, off)
}

/// Reads the tuple of an IPv4/IPv6 socket of any protocol.
#[inline(always)]
pub fn inet_tuple(sk: u64, off: &KernelOffsets) -> Result<Tuple, i64> {
    let family: u16 = at(sk, off.skc_family)?;
    let (saddr, daddr) = match family {
        AF_INET => (v4(at(sk, off.skc_rcv_saddr)?), v4(at(sk, off.skc_daddr)?)),
        AF_INET6 => (at(sk, off.skc_v6_rcv_saddr)?, at(sk, off.skc_v6_daddr)?),
        _ => return Err(0),
    };
    let net: u64 = at(sk, off.skc_net)?;
    let socket: u64 = at(sk, off.sk_socket)?;
    Ok(Tuple {
        saddr,
        daddr,
        // skc_num is host order, skc_dport network order.
        sport: at(sk, off.skc_num)?,
        dport: u16::from_be(at(sk, off.skc_dport)?),
        family,
        netns: if net == 0 { 0 } else { at(net, off.net_inum).unwrap_or(0) },
        inode: if socket == 0 { 0 } else { at(socket, off.socket_ino).unwrap_or(0) },
    })
}
