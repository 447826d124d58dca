//! DNS answers as the kernel hands them over: the payload of a UDP datagram
//! from port 53 that a socket received, with the receiving socket's network
//! namespace, for the agent's address-to-name map. They travel on a ring of
//! their own ([`crate::names::MAP_DNS_EVENTS`]), so the socket event record
//! and its hot path are untouched.

use core::mem::size_of;

/// Bytes of a DNS message copied at most: the classic UDP DNS limit. A
/// longer answer (EDNS0) is cut here; the agent parses what it has and
/// skips records that run past the end.
pub const DNS_PAYLOAD_MAX: usize = 512;

/// One DNS datagram as received. Integers in host byte order; `payload`
/// is the message as on the wire (network byte order inside).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsEvent {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) at delivery.
    pub ts_ns: u64,
    /// Cookie of the socket that received it.
    pub cookie: u64,
    /// Inode of the receiving socket's network namespace (0 if unread).
    pub netns: u32,
    /// Bytes of `payload` that hold the message (at most [`DNS_PAYLOAD_MAX`]).
    pub len: u16,
    /// 4 or 6: the IP version it came over.
    pub ip_version: u16,
    pub payload: [u8; DNS_PAYLOAD_MAX],
}

const _: () = assert!(size_of::<DnsEvent>() == 24 + DNS_PAYLOAD_MAX);

#[cfg(feature = "user")]
// SAFETY: plain integers and bytes, no padding.
unsafe impl aya::Pod for DnsEvent {}
