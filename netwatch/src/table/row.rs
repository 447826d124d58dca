//! One socket in the table, and one connection in the closed history.

use std::net::SocketAddr;

use crate::{
    seed::Timer,
    socket::{Family, Owner, Owners, Proto, TcpState},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub proto: Proto,
    pub family: Family,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The kernel's state; UDP rows use `Established` (connected) and
    /// `Close` (unconnected), as the kernel itself does for UDP sockets.
    pub state: TcpState,
    pub netns: u32,
    /// The socket cookie; `None` only for rows seeded from /proc text.
    pub cookie: Option<u64>,
    /// 0 when unknown (TIME_WAIT, request sockets, rows born from events).
    pub inode: u64,
    pub uid: u32,
    /// Every process holding it; empty for TIME_WAIT and SYN_RECV rows.
    pub owners: Owners,
    /// How the first owner was learnt (lent to the socket's events that
    /// carry none, see [`super::Table::complete_and_apply`]).
    pub owner_source: netwatch_common::OwnerSource,
    /// CLOCK_MONOTONIC ns when the connection began, when known (the
    /// kernel's record of its connect, listen or handshake).
    pub opened_ns: Option<u64>,
    /// When netwatch first had this row (seed or first event).
    pub seen_ns: u64,
    /// For TIME_WAIT rows netwatch made from an active close: when the
    /// kernel will have dropped it.
    pub expires_ns: Option<u64>,
    pub timer: Option<Timer>,
    pub rx_queue: u32,
    pub tx_queue: u32,
    /// Bytes, packets, retransmits and resets, with the current rates.
    pub traffic: super::traffic::RowTraffic,
}

#[cfg(test)]
impl Row {
    /// A test row as the table seeds [`crate::seed::SeedSocket::fixture`]:
    /// TCP in namespace 7, no owner, seen at 0. Tests set the rest with
    /// struct update syntax.
    pub(crate) fn fixture(state: TcpState, local: &str, remote: &str) -> Self {
        super::seeded_row(crate::seed::SeedSocket::fixture(state, local, remote), 0)
    }
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The normal FIN handshake.
    Closed,
    /// `SYN_SENT -> CLOSE`: refused, timed out or unreachable.
    Failed,
    /// Torn down without the FIN handshake (RST, abort, or SO_LINGER 0).
    Reset,
}

impl Ending {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Failed => "failed",
            Self::Reset => "reset",
        }
    }
}

/// A connection that is over, kept for the "recently closed" history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    pub proto: Proto,
    pub family: Family,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub netns: u32,
    pub cookie: Option<u64>,
    pub owner: Option<Owner>,
    /// The last state before CLOSE.
    pub last_state: TcpState,
    pub ending: Ending,
    pub closed_ns: u64,
    /// Lifetime, when its start is known.
    pub duration_ns: Option<u64>,
    /// Final totals, from the kernel's closing event.
    pub traffic: netwatch_common::Traffic,
}
