//! Why a connection failed and how fast it opened (issue 18): read off an
//! event, from what the kernel put in its totals (`sk_err`, `srtt_us`,
//! `total_retrans`: `netwatch_common::Traffic`) and its transition.
//!
//! Where each failure's errno comes from (net/ipv4/tcp_input.c, tcp.c,
//! tcp_timer.c, tcp_ipv4.c), always stored before `tcp_done()` moves the
//! socket to `CLOSE`, where the kernel program reads it:
//! - an RST: `tcp_reset()` stores `ECONNREFUSED` in `SYN_SENT`, `EPIPE` in
//!   `CLOSE_WAIT`, `ECONNRESET` otherwise;
//! - retransmits exhausted (SYN or data): `tcp_write_err()` stores the soft
//!   error an ICMP left while retrying, or `ETIMEDOUT`;
//! - an ICMP error during the handshake: `tcp_v4_err()` / `tcp_v6_err()`
//!   store it (`EHOSTUNREACH`, `ENETUNREACH`, `EACCES` for "prohibited"...).
//!
//! A local abort (`close()` with unread data, `SO_LINGER` 0,
//! `tcp_disconnect()`) moves an open connection straight to `CLOSE` with no
//! FIN states and no error: `tcp_disconnect()` stores its `ECONNRESET` only
//! after the transition. So `ESTABLISHED`/`CLOSE_WAIT -> CLOSE` with no error
//! is a reset sent from here, and `SYN_SENT -> CLOSE` with no error a
//! connect given up by its own process.
//!
//! The accept-queue wait (handshake to `accept()`) belongs with the accept
//! event (issue 17); it is not derived here.

use netwatch_common::{
    tcp::{IPPROTO_TCP, IPPROTO_UDP},
    EventKind,
};

use crate::{event::Event, socket::TcpState};

#[cfg(test)]
mod tests;

/// Why a connection (or a connect) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The peer answered the SYN with an RST (`ECONNREFUSED`).
    Refused,
    /// Retransmits ran out (`ETIMEDOUT`).
    TimedOut,
    /// `EHOSTUNREACH`: an ICMP host unreachable, or an `unreachable` route.
    Unreachable,
    /// `ENETUNREACH`: no route to the network.
    NoRoute,
    /// `EACCES` / `EPERM`: a route, firewall or hook said no.
    Permission,
    /// `ECONNRESET` / `EPIPE`: the peer sent an RST.
    ResetByPeer,
    /// An abortive close from this end (an RST went out, or would have).
    ResetLocally,
    /// A connect given up by its own process before it completed
    /// (`close()` in `SYN_SENT`), or `ECONNABORTED`.
    Aborted,
    /// `EADDRNOTAVAIL`: no local address or port to connect from.
    AddressUnavailable,
    /// Any other error: see the errno.
    Error,
}

impl Reason {
    pub const ALL: [Self; 10] = [
        Self::Refused,
        Self::TimedOut,
        Self::Unreachable,
        Self::NoRoute,
        Self::Permission,
        Self::ResetByPeer,
        Self::ResetLocally,
        Self::Aborted,
        Self::AddressUnavailable,
        Self::Error,
    ];

    /// The JSON `reason`, the text and metric label.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::TimedOut => "timed_out",
            Self::Unreachable => "unreachable",
            Self::NoRoute => "no_route",
            Self::Permission => "permission",
            Self::ResetByPeer => "reset_by_peer",
            Self::ResetLocally => "reset_locally",
            Self::Aborted => "aborted",
            Self::AddressUnavailable => "address_unavailable",
            Self::Error => "error",
        }
    }

    pub const fn of_errno(errno: u32) -> Self {
        match errno {
            ECONNREFUSED => Self::Refused,
            ETIMEDOUT => Self::TimedOut,
            EHOSTUNREACH | EHOSTDOWN => Self::Unreachable,
            ENETUNREACH | ENETDOWN => Self::NoRoute,
            EACCES | EPERM => Self::Permission,
            ECONNRESET | EPIPE => Self::ResetByPeer,
            ECONNABORTED => Self::Aborted,
            EADDRNOTAVAIL => Self::AddressUnavailable,
            _ => Self::Error,
        }
    }
}

const EPERM: u32 = 1;
const EACCES: u32 = 13;
const EPIPE: u32 = 32;
const EADDRNOTAVAIL: u32 = 99;
const ENETDOWN: u32 = 100;
const ENETUNREACH: u32 = 101;
const ECONNABORTED: u32 = 103;
const ECONNRESET: u32 = 104;
const ETIMEDOUT: u32 = 110;
const ECONNREFUSED: u32 = 111;
const EHOSTDOWN: u32 = 112;
const EHOSTUNREACH: u32 = 113;

/// The symbolic name of a Linux errno, as `errno(1)` prints it; the number
/// for the ones a socket is not expected to see.
pub fn errno_name(errno: u32) -> std::borrow::Cow<'static, str> {
    let name = match errno {
        EPERM => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        EACCES => "EACCES",
        14 => "EFAULT",
        22 => "EINVAL",
        EPIPE => "EPIPE",
        71 => "EPROTO",
        88 => "ENOTSOCK",
        90 => "EMSGSIZE",
        92 => "ENOPROTOOPT",
        93 => "EPROTONOSUPPORT",
        95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        EADDRNOTAVAIL => "EADDRNOTAVAIL",
        ENETDOWN => "ENETDOWN",
        ENETUNREACH => "ENETUNREACH",
        102 => "ENETRESET",
        ECONNABORTED => "ECONNABORTED",
        ECONNRESET => "ECONNRESET",
        105 => "ENOBUFS",
        106 => "EISCONN",
        107 => "ENOTCONN",
        ETIMEDOUT => "ETIMEDOUT",
        ECONNREFUSED => "ECONNREFUSED",
        EHOSTDOWN => "EHOSTDOWN",
        EHOSTUNREACH => "EHOSTUNREACH",
        _ => return errno.to_string().into(),
    };
    name.into()
}

/// A failure: its reason and the kernel's errno (0 where there was none,
/// a local abort).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub errno: u32,
}

impl Failure {
    /// The reason's name, then the errno's in brackets after `sep`.
    pub fn label(self, sep: &str) -> String {
        match self.errno {
            0 => self.reason.name().to_owned(),
            n => format!("{}{sep}({})", self.reason.name(), errno_name(n)),
        }
    }
}

/// Why `e` ended a connection or a connect abnormally; `None` for a normal
/// close and for events that end nothing.
pub fn failure(e: &Event) -> Option<Failure> {
    let errno = e.traffic.sk_err;
    match e.kind {
        EventKind::ConnectError => Some(Failure { reason: Reason::of_errno(errno), errno }),
        EventKind::ConnectFailed | EventKind::Close if e.new_state == TcpState::Close => {
            closed_failure(e.old_state, errno)
        }
        _ => None,
    }
}

/// Why a TCP connection whose last state was `last` ended, with the
/// `sk_err` its close carried.
pub fn closed_failure(last: TcpState, errno: u32) -> Option<Failure> {
    if errno != 0 {
        return Some(Failure { reason: Reason::of_errno(errno), errno });
    }
    let reason = match last {
        TcpState::SynSent => Reason::Aborted,
        TcpState::Established | TcpState::CloseWait => Reason::ResetLocally,
        _ => return None,
    };
    Some(Failure { reason, errno })
}

/// How fast a connection opened, from the event that says so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// `SYN_SENT -> ESTABLISHED`: from `connect()` to the handshake's end
    /// (tcpconnlat's figure), in microseconds.
    pub connect_us: Option<u64>,
    /// `SYN_RECV -> ESTABLISHED`: from the passive child's birth to the
    /// handshake's end, in microseconds. Where the kernel makes the child
    /// on the handshake's last ACK (every kernel netwatch runs on) this is
    /// only that ACK's processing; the SYN-ACK's round trip is in the
    /// connection's `srtt_us` at close.
    pub handshake_us: Option<u64>,
    /// SYNs (active) or SYN-ACKs (passive) sent again before the handshake
    /// ended, on the `ESTABLISHED` event; on a failed connect, those sent
    /// before it failed.
    pub syn_retransmits: Option<u32>,
    /// The smoothed RTT in microseconds: at close, and on an `ESTABLISHED`
    /// that carries totals; `None` where the kernel had no sample.
    pub srtt_us: Option<u32>,
}

pub fn latency(e: &Event) -> Latency {
    let t = &e.traffic;
    let srtt_us = (t.srtt_us != 0).then_some(t.srtt_us);
    let us = e.duration_ns().map(|ns| ns / 1000);
    match (e.old_state, e.new_state) {
        (TcpState::SynSent, TcpState::Established) => {
            Latency { connect_us: us, syn_retransmits: Some(t.total_retrans), srtt_us, ..Latency::default() }
        }
        (TcpState::SynRecv, TcpState::Established) => {
            Latency { handshake_us: us, syn_retransmits: Some(t.total_retrans), srtt_us, ..Latency::default() }
        }
        (TcpState::SynSent, TcpState::Close) if e.kind == EventKind::ConnectFailed => {
            Latency { syn_retransmits: Some(t.total_retrans), ..Latency::default() }
        }
        (_, TcpState::Close) if e.kind == EventKind::Close => Latency { srtt_us, ..Latency::default() },
        _ => Latency::default(),
    }
}

/// `tcp` or `udp`: the protocol of a `connect_error`'s socket.
pub const fn protocol_name(protocol: u16) -> Option<&'static str> {
    match protocol {
        IPPROTO_TCP => Some("tcp"),
        IPPROTO_UDP => Some("udp"),
        _ => None,
    }
}
