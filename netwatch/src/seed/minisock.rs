//! What no tracepoint reports, re-read periodically by the live model so
//! its table matches what `ss` shows: TIME_WAIT and request sockets
//! (SYN_RECV; docs/design.md#time-wait, #syn-recv), and UDP sockets, which have no
//! state machine to trace (docs/design.md#udp).
//!
//! Only netwatch's own network namespace: a filtered sock_diag dump there
//! costs a syscall or two; other namespaces keep what the seed and the
//! events gave them, except for the live view's figures ([`figures_in`]).

use anyhow::{Context as _, Result};
use netwatch_common::tcp;

use super::{diag::DiagSocket, netns::own_netns, Family, OtherNamespaces, Proto, SeedSocket};

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
    /// Connected TCP sockets with their `tcp_info` RTT, only when asked
    /// for (the live view's RTT column): this dump walks every connection.
    pub connected: Vec<SeedSocket>,
}

/// The states whose sockets carry a live smoothed RTT: a full socket past
/// its handshake (`SYN_SENT` has no sample yet; a full `FIN_WAIT2` is
/// left out, since the bit also brings every TIME_WAIT minisocket in that
/// substate, which carry no `tcp_info`).
const CONNECTED: u32 = (1 << tcp::ESTABLISHED)
    | (1 << tcp::FIN_WAIT1)
    | (1 << tcp::CLOSE_WAIT)
    | (1 << tcp::LAST_ACK)
    | (1 << tcp::CLOSING);

/// Re-reads the calling thread's network namespace; `rtt`: also the
/// connected sockets' RTT ([`Minisocks::connected`]).
pub fn minisocks(rtt: bool) -> Result<Minisocks> {
    let netns = own_netns().context("reading /proc/self/ns/net")?;
    let diag = DiagSocket::open().context("opening a sock_diag socket")?;
    // sock_diag filters TIME_WAIT minisockets by their substate, so an
    // orphan's FIN_WAIT2 one needs its own bit (that also returns full
    // FIN_WAIT2 sockets, which the table tracks by events and skips).
    let states = (1 << tcp::TIME_WAIT) | (1 << tcp::FIN_WAIT2) | (1 << tcp::NEW_SYN_RECV);
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    // One walk of the TCP tables for both families, where the kernel
    // offers it: this runs every second beside however many sockets exist.
    diag.dump_tcp_any(states, netns, &mut tcp).context("dumping TIME_WAIT and SYN_RECV sockets")?;
    for family in [Family::V4, Family::V6] {
        diag.dump(Proto::Udp, family, netns, &mut udp).with_context(|| format!("dumping UDP sockets ({family:?})"))?;
    }
    let mut listeners = Vec::new();
    let figures = DiagSocket::open().context("opening a sock_diag socket")?.with_figures();
    figures.dump_tcp_each(1 << tcp::LISTEN, netns, &mut listeners).context("dumping listeners")?;
    let mut connected = Vec::new();
    if rtt {
        figures.dump_tcp_any(CONNECTED, netns, &mut connected).context("dumping connected TCP sockets")?;
    }
    Ok(Minisocks { netns, tcp, udp, listeners, connected })
}

/// The live view's figures in every namespace of `others` (through the
/// sockets it keeps there, which ask for them): each listener's drop
/// counter and each connected socket's RTT, as [`minisocks`] reads them in
/// netwatch's own. Namespaces whose dump failed are named in the error list.
pub fn figures_in(others: &OtherNamespaces) -> (Minisocks, Vec<String>) {
    let (mut found, mut failed) = (Minisocks::default(), Vec::new());
    for (ns, diag) in others.sockets() {
        let (listeners, connected) = (found.listeners.len(), found.connected.len());
        let read = diag
            .dump_tcp_each(1 << tcp::LISTEN, ns, &mut found.listeners)
            .and_then(|()| diag.dump_tcp_any(CONNECTED, ns, &mut found.connected));
        if let Err(e) = read {
            found.listeners.truncate(listeners);
            found.connected.truncate(connected);
            failed.push(format!("reading RTTs and listener drops of network namespace {ns}: {e}"));
        }
    }
    (found, failed)
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read as _, Write as _},
        net::{TcpListener, TcpStream},
    };

    use super::*;
    use crate::socket::TcpState;

    #[test]
    fn connected_sockets_come_with_their_rtt_only_when_asked() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        // A round trip acknowledged gives the client its first RTT sample.
        client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).unwrap();
        server.write_all(b"pong").unwrap();
        client.read_exact(&mut buf).unwrap();
        let local = client.local_addr().unwrap();

        let m = minisocks(true).unwrap();
        let ours: Vec<&SeedSocket> = m.connected.iter().filter(|s| s.local == local).collect();
        assert_eq!(ours.len(), 1, "{:?}", m.connected);
        assert_eq!((ours[0].state, ours[0].remote), (TcpState::Established, listener.local_addr().unwrap()));
        let rtt = ours[0].figures.and_then(|f| f.rtt).expect("tcp_info");
        // Loopback: tens of microseconds, never zero once sampled, and far
        // below a second even on a loaded machine.
        assert!(rtt.srtt_us > 0 && rtt.srtt_us < 1_000_000, "{rtt:?}");
        assert!(m.connected.iter().all(|s| s.state != TcpState::Listen), "listeners are in `listeners`");

        assert!(minisocks(false).unwrap().connected.is_empty());
    }
}
