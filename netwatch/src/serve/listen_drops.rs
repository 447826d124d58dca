//! SYNs and handshakes dropped per TCP listener, from the kernel: each
//! listener's own drop counter (`sk->sk_drops`), which sock_diag reports in
//! `INET_DIAG_SKMEMINFO` (`ss -tlm` prints it as `d<N>`).
//!
//! `tcp_listendrop()` (include/net/tcp.h) adds one there for every SYN or
//! completed handshake a listener drops (accept queue full, SYN queue
//! full without syncookies, no memory for the request or the child), at
//! the same place it counts TcpExt ListenDrops for the namespace. No drop
//! reason tracepoint covers the common case: a SYN refused by a full accept
//! queue is freed by `consume_skb`, not `kfree_skb`. Read once a check
//! interval (a dump of LISTEN sockets only: the kernel walks the listener
//! hash, not the connections) for netwatch's namespace and every other
//! namespace whose request sockets serve already re-reads
//! ([`super::netns_minisocks`]).

use std::{io, net::SocketAddr, os::unix::fs::MetadataExt as _};

use netwatch_common::tcp;

use super::netns_minisocks::OtherNamespaces;
use crate::seed::{diag::DiagSocket, Family, Proto};

/// One listener's drop counter now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub netns: u32,
    pub local: SocketAddr,
    /// Tells a listener from a later one on the same address.
    pub cookie: u64,
    pub drops: u64,
}

#[derive(Default)]
pub struct Reader {
    own: Option<(u32, DiagSocket)>,
    failed: bool,
}

impl Reader {
    /// Every listener's counter, netwatch's namespace first; `Err` only when
    /// netwatch's own namespace cannot be read (another namespace that
    /// fails is left out: its listeners are then not in the figures).
    pub fn read(&mut self, others: &OtherNamespaces) -> io::Result<Vec<Sample>> {
        if self.own.is_none() {
            let ns = std::fs::metadata("/proc/self/ns/net")?.ino() as u32;
            self.own = Some((ns, DiagSocket::open()?.with_figures()));
        }
        let mut out = Vec::new();
        if let Some((ns, diag)) = &self.own {
            dump(diag, *ns, &mut out)?;
        }
        for (ns, diag) in others.sockets() {
            let start = out.len();
            if dump(diag, ns, &mut out).is_err() {
                out.truncate(start);
            }
        }
        Ok(out)
    }

    /// [`Self::read`], with its failure said once on stderr.
    pub fn read_or_warn(&mut self, others: &OtherNamespaces) -> Option<Vec<Sample>> {
        match self.read(others) {
            Ok(s) => Some(s),
            Err(e) => {
                if !std::mem::replace(&mut self.failed, true) {
                    eprintln!(
                        "netwatch: warning: per-listener drop counters unavailable ({e}); \
                         listen_drops counts the namespace's TcpExt counters instead"
                    );
                }
                None
            }
        }
    }
}

fn dump(diag: &DiagSocket, ns: u32, out: &mut Vec<Sample>) -> io::Result<()> {
    let mut socks = Vec::new();
    for family in [Family::V4, Family::V6] {
        diag.dump_states(Proto::Tcp, family, 1 << tcp::LISTEN, ns, &mut socks)?;
    }
    out.extend(socks.into_iter().filter_map(|s| {
        Some(Sample { netns: s.netns, local: s.local, cookie: s.cookie?, drops: u64::from(s.figures?.drops?) })
    }));
    Ok(())
}
