//! Reading a `struct sock` at the offsets the agent resolved from BTF.
//!
//! One small `bpf_probe_read_kernel` per field (~6 ns each here) rather than
//! one copy of the struct's head: a stack buffer that size has to be zeroed
//! first, and that memset, a byte loop in BPF, cost 40x more than the reads.

use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_get_socket_cookie};
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
}

#[inline(always)]
pub fn read_kernel<T>(addr: u64) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_kernel validates the address and fails cleanly.
    unsafe { bpf_probe_read_kernel(addr as *const T) }.map_err(i64::from)
}

/// A zeroed [`Bytes16`] without a `memset` call (see `Bytes16`): made of
/// zeros LLVM cannot see (volatile loads). Volatile stores were not enough:
/// the value copied on into a record was still known to be zero, and that
/// copy became a memset.
#[inline(always)]
pub fn zero16() -> Bytes16 {
    from_words(crate::emit::opaque_zero(), crate::emit::opaque_zero())
}

/// A [`Bytes16`] from its two 64-bit words, in memory order.
#[inline(always)]
pub fn from_words(lo: u64, hi: u64) -> Bytes16 {
    let mut out = core::mem::MaybeUninit::<Bytes16>::uninit();
    let words = out.as_mut_ptr().cast::<u64>();
    // SAFETY: both words of our own Bytes16 are written.
    unsafe {
        words.write(lo);
        words.add(1).write(hi);
        out.assume_init()
    }
}

/// An IPv4 address, bytes as the kernel stores them, in the first 4 bytes
/// (the rest zero): one word, as the kernel's `__be32` is read. On this
/// little-endian target the address's bytes land first, in order.
#[inline(always)]
fn v4(addr: u32) -> Bytes16 {
    from_words(u64::from(addr), crate::emit::opaque_zero())
}

/// An IPv6 address read as two words: read as a 16-byte array it became
/// sixteen byte loads and the shifts to put them together.
#[inline(always)]
fn v6<R: Fields>(sk: u64, off: u32) -> Result<Bytes16, i64> {
    Ok(from_words(R::at(sk, off)?, R::at(sk, off + 8)?))
}

/// How fields are read from a socket pointer.
pub trait Fields {
    fn at<T>(base: u64, off: u32) -> Result<T, i64>;
}

/// `bpf_probe_read_kernel`, for pointers the verifier knows only as numbers
/// (the accept hook finds its socket by walking the fd table).
pub struct Probe;

impl Fields for Probe {
    #[inline(always)]
    fn at<T>(base: u64, off: u32) -> Result<T, i64> {
        read_kernel(base + u64::from(off))
    }
}

/// Plain loads, for the `struct sock *` a BTF tracepoint hands over: the
/// verifier knows its type, sees the offsets (read-only globals) as
/// constants, checks each access against the kernel's BTF and turns it into
/// a fault-safe load, about a nanosecond instead of a ~6 ns helper call.
/// Only for fields inside `struct sock` and the structs its pointers name.
pub struct Direct;

impl Fields for Direct {
    #[inline(always)]
    fn at<T>(base: u64, off: u32) -> Result<T, i64> {
        // SAFETY: see above: the verifier checks the access, and a faulting
        // load reads as zero instead of crashing.
        Ok(unsafe { core::ptr::read_volatile((base + u64::from(off)) as *const T) })
    }
}

/// Reads the tuple of a TCP socket; `Err` for other protocols (the
/// tracepoint also fires for SCTP, MPTCP and DCCP: docs/design.md#tcp-only) and
/// for families other than IPv4/IPv6.
#[inline(always)]
pub fn tcp_tuple<R: Fields>(sk: u64, off: &KernelOffsets) -> Result<Tuple, i64> {
    let protocol: u16 = R::at(sk, off.sk_protocol)?;
    if protocol != IPPROTO_TCP {
        return Err(0);
    }
    inet_tuple::<R>(sk, off)
}

/// Reads the tuple of an IPv4/IPv6 socket of any protocol.
#[inline(always)]
pub fn inet_tuple<R: Fields>(sk: u64, off: &KernelOffsets) -> Result<Tuple, i64> {
    let family: u16 = R::at(sk, off.skc_family)?;
    let (saddr, daddr) = match family {
        AF_INET => (v4(R::at(sk, off.skc_rcv_saddr)?), v4(R::at(sk, off.skc_daddr)?)),
        AF_INET6 => (v6::<R>(sk, off.skc_v6_rcv_saddr)?, v6::<R>(sk, off.skc_v6_daddr)?),
        _ => return Err(0),
    };
    let net: u64 = R::at(sk, off.skc_net)?;
    Ok(Tuple {
        saddr,
        daddr,
        // skc_num is host order, skc_dport network order.
        sport: R::at(sk, off.skc_num)?,
        dport: u16::from_be(R::at(sk, off.skc_dport)?),
        family,
        netns: if net == 0 { 0 } else { R::at(net, off.net_inum).unwrap_or(0) },
    })
}

/// Inode number of the socket's file; 0 while no file holds it.
#[inline(always)]
pub fn inode<R: Fields>(sk: u64, off: &KernelOffsets) -> u64 {
    let socket: u64 = R::at(sk, off.sk_socket).unwrap_or(0);
    // The inode lies beyond `struct socket`, in the `socket_alloc` around
    // it, where the verifier would refuse a direct load.
    if socket == 0 {
        0
    } else {
        Probe::at(socket, off.socket_ino).unwrap_or(0)
    }
}

/// The socket's cookie, for a BTF tracepoint's `struct sock *`. Read where
/// the kernel keeps it once made (`skc_cookie`, never changed after): the
/// helper that makes it is called only while it is 0, on a socket's first
/// event, where it was a call on every one of a connection's twelve.
#[inline(always)]
pub fn cookie(sk: u64, off: &KernelOffsets) -> u64 {
    match kernel_cookie(sk, off) {
        0 => {
            // SAFETY: sk is the tracepoint's own socket argument.
            unsafe { bpf_get_socket_cookie(sk as *mut core::ffi::c_void) }
        }
        c => c,
    }
}

/// The cookie the kernel keeps for a BTF tracepoint's `struct sock *`; 0
/// while none was made.
#[inline(always)]
pub fn kernel_cookie(sk: u64, off: &KernelOffsets) -> u64 {
    Direct::at::<u64>(sk, off.skc_cookie).unwrap_or(0)
}

/// [`cookie`] for the programs other than `nw_set_state`, which also run
/// where tracing programs cannot make cookies (`ident`): the frozen global
/// that says so is a branch the verifier removes.
#[inline(always)]
pub fn any_cookie(sk: u64, off: &KernelOffsets) -> u64 {
    if crate::ident::own_ids() {
        crate::ident::id(sk, kernel_cookie(sk, off), false)
    } else {
        cookie(sk, off)
    }
}
