//! Reading a `struct sock` at the offsets the agent resolved from BTF.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use netwatch_common::{
    offsets::SOCK_READ_MAX,
    tcp::{AF_INET, AF_INET6, IPPROTO_TCP},
    KernelOffsets,
};

const BUF: usize = SOCK_READ_MAX as usize;

/// The addressing half of a socket, as the event record carries it.
pub struct Tuple {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub family: u16,
    pub netns: u32,
}

#[inline(always)]
fn field<const N: usize>(buf: &[u8; BUF], off: u32) -> [u8; N] {
    let off = off as usize;
    let mut out = [0u8; N];
    // One explicit bound the verifier can follow; the loader guarantees it.
    if off <= BUF - N {
        // SAFETY: off + N <= BUF was checked just above.
        out = unsafe { core::ptr::read_unaligned(buf.as_ptr().add(off).cast::<[u8; N]>()) };
    }
    out
}

#[inline(always)]
pub fn read_kernel<T>(addr: u64) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_kernel validates the address and fails cleanly.
    unsafe { bpf_probe_read_kernel(addr as *const T) }.map_err(i64::from)
}

/// Reads the tuple of a TCP socket; `Err` for other protocols (the
/// tracepoint also fires for SCTP, MPTCP and DCCP, KERNEL-NOTES point 7) and
/// for families other than IPv4/IPv6.
#[inline(always)]
pub fn tcp_tuple(sk: u64, off: &KernelOffsets) -> Result<Tuple, i64> {
    let protocol: u16 = read_kernel(sk + off.sk_protocol as u64)?;
    if protocol != IPPROTO_TCP {
        return Err(0);
    }
    let mut buf = [0u8; BUF];
    let len = off.sock_read_len;
    if len == 0 || len > SOCK_READ_MAX {
        return Err(0);
    }
    // SAFETY: buf holds BUF >= len bytes; the helper checks the source.
    let rc = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            buf.as_mut_ptr().cast(),
            len,
            sk as *const core::ffi::c_void,
        )
    };
    if rc < 0 {
        return Err(rc);
    }
    let family = u16::from_ne_bytes(field(&buf, off.skc_family));
    let mut t = Tuple {
        saddr: [0; 16],
        daddr: [0; 16],
        // skc_num is host order, skc_dport network order.
        sport: u16::from_ne_bytes(field(&buf, off.skc_num)),
        dport: u16::from_be_bytes(field(&buf, off.skc_dport)),
        family,
        netns: 0,
    };
    match family {
        AF_INET => {
            let s: [u8; 4] = field(&buf, off.skc_rcv_saddr);
            let d: [u8; 4] = field(&buf, off.skc_daddr);
            t.saddr[..4].copy_from_slice(&s);
            t.daddr[..4].copy_from_slice(&d);
        }
        AF_INET6 => {
            t.saddr = field(&buf, off.skc_v6_rcv_saddr);
            t.daddr = field(&buf, off.skc_v6_daddr);
        }
        _ => return Err(0),
    }
    let net = u64::from_ne_bytes(field(&buf, off.skc_net));
    if net != 0 {
        t.netns = read_kernel(net + off.net_inum as u64).unwrap_or(0);
    }
    Ok(t)
}
