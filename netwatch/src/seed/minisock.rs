//! What no tracepoint reports, re-read periodically by the live model so
//! its table matches what `ss` shows: TIME_WAIT and request sockets
//! (SYN_RECV; docs/design.md#time-wait, #syn-recv), and UDP sockets, which have no
//! state machine to trace (docs/design.md#udp).
//!
//! Only netwatch's own network namespace: a filtered sock_diag dump there
//! costs a syscall or two; other namespaces keep what the seed and the
//! events gave them.

use std::os::unix::fs::MetadataExt as _;

use anyhow::{Context as _, Result};
use netwatch_common::tcp;

use super::{diag::DiagSocket, Family, Proto, SeedSocket};

/// The re-read: which namespace it covers, and what it found there.
#[derive(Debug, Default)]
pub struct Minisocks {
    pub netns: u32,
    /// TIME_WAIT minisockets (also in their FIN_WAIT2 substate), request
    /// sockets, and full FIN_WAIT2 sockets, IPv4 and IPv6.
    pub tcp: Vec<SeedSocket>,
    /// Every UDP socket, IPv4 and IPv6, without owners (see
    /// [`super::attach_owners`]).
    pub udp: Vec<SeedSocket>,
    /// TCP listeners with their drop counters ([`super::diag::Figures`]):
    /// a LISTEN-only dump walks the listener hash alone.
    pub listeners: Vec<SeedSocket>,
}

/// Re-reads the calling thread's network namespace.
pub fn minisocks() -> Result<Minisocks> {
    let netns = std::fs::metadata("/proc/self/ns/net").context("reading /proc/self/ns/net")?.ino() as u32;
    let diag = DiagSocket::open().context("opening a sock_diag socket")?;
    // sock_diag filters TIME_WAIT minisockets by their substate, so an
    // orphan's FIN_WAIT2 one needs its own bit (that also returns full
    // FIN_WAIT2 sockets, which the table tracks by events and skips).
    let states = (1 << tcp::TIME_WAIT) | (1 << tcp::FIN_WAIT2) | (1 << tcp::NEW_SYN_RECV);
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    // One walk of the TCP tables for both families, where the kernel
    // offers it: this runs every second beside however many sockets exist.
    let tcp_done = diag.dump_tcp(states, netns, &mut tcp).is_ok();
    for family in [Family::V4, Family::V6] {
        if !tcp_done {
            diag.dump_states(Proto::Tcp, family, states, netns, &mut tcp)
                .with_context(|| format!("dumping TIME_WAIT and SYN_RECV sockets ({family:?})"))?;
        }
        diag.dump(Proto::Udp, family, netns, &mut udp).with_context(|| format!("dumping UDP sockets ({family:?})"))?;
    }
    let mut listeners = Vec::new();
    let figures = DiagSocket::open().context("opening a sock_diag socket")?.with_figures();
    for family in [Family::V4, Family::V6] {
        figures
            .dump_states(Proto::Tcp, family, 1 << tcp::LISTEN, netns, &mut listeners)
            .with_context(|| format!("dumping listeners ({family:?})"))?;
    }
    Ok(Minisocks { netns, tcp, udp, listeners })
}
