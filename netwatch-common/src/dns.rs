//! DNS answers as the kernel hands them over: the payload of a UDP datagram
//! or TCP segment from port 53 that a socket received, with the receiving
//! socket's network namespace, for the agent's address-to-name map. They travel on a ring of
//! their own ([`crate::names::MAP_DNS_EVENTS`]), so the socket event record
//! and its hot path are untouched.

use core::mem::size_of;

/// Bytes of a DNS message copied at most: the classic UDP DNS limit. A
/// longer answer (EDNS0) is cut here; the agent parses what it has and
/// skips records that run past the end.
pub const DNS_PAYLOAD_MAX: usize = 512;

/// One DNS datagram or segment as received. Integers in host byte order;
/// `payload` is as on the wire (network byte order inside): over UDP one
/// message, over TCP messages each after its 2-byte length prefix, the
/// first starting at the first byte.
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
    pub ip_version: u8,
    /// [`PROTO_UDP`] or [`PROTO_TCP`]: how the payload is framed.
    pub protocol: u8,
    pub payload: [u8; DNS_PAYLOAD_MAX],
}

/// `protocol` of an answer over UDP (IPPROTO_UDP).
pub const PROTO_UDP: u8 = 17;
/// `protocol` of an answer over TCP (IPPROTO_TCP).
pub const PROTO_TCP: u8 = 6;

const _: () = assert!(size_of::<DnsEvent>() == 24 + DNS_PAYLOAD_MAX);

#[cfg(feature = "user")]
// SAFETY: plain integers and bytes, no padding.
unsafe impl aya::Pod for DnsEvent {}
