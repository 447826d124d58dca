//! SYNs and handshakes dropped per TCP listener, from the kernel: each
//! listener's own drop counter (`sk->sk_drops`), which sock_diag reports in
//! `INET_DIAG_SKMEMINFO` (`ss -tlm` prints it as `d<N>`).
//!
//! `tcp_listendrop()` (include/net/tcp.h) adds one there for every SYN or
//! completed handshake a listener drops (accept queue full, SYN queue
//! full without syncookies, no memory for the request or the child), at
//! the same place it counts TcpExt ListenDrops for the namespace. No drop
//! reason tracepoint covers the common case: a SYN refused by a full accept
//! queue is freed by `consume_skb`, not `kfree_skb`. For netwatch's own
//! namespace the live model's once-a-second re-read already holds them
//! (`RowTraffic::listen_drops`); every other namespace whose request sockets
//! serve re-reads ([`OtherNamespaces`]) gets a dump of its LISTEN
//! sockets once a check interval (the kernel walks the listener hash only,
//! not the connections).

use std::io;

pub use crate::event::listen_drops::Sample;
use crate::{
    event::listen_drops,
    seed::{diag::DiagSocket, own_netns, OtherNamespaces, Proto},
    socket::TcpState,
    table::Table,
};

#[derive(Default)]
pub struct Reader {
    own: Option<(u32, DiagSocket)>,
    failed: bool,
}

impl Reader {
    /// Every listener's counter, netwatch's namespace first, with the
    /// other namespaces whose read failed (their listeners are then not in
    /// the figures); `Err` only when netwatch's own namespace cannot be read.
    pub fn read(&mut self, table: &Table, others: &OtherNamespaces) -> io::Result<(Vec<Sample>, Vec<u32>)> {
        if self.own.is_none() {
            let ns = own_netns()?;
            self.own = Some((ns, DiagSocket::open()?.with_figures()));
        }
        let mut out = Vec::new();
        if let Some((ns, diag)) = &self.own {
            let listeners =
                || table.rows().filter(|r| r.proto == Proto::Tcp && r.state == TcpState::Listen && r.netns == *ns);
            if listeners().all(|r| r.traffic.listen_drops.is_some()) {
                out.extend(listeners().filter_map(|r| {
                    Some(Sample {
                        netns: *ns,
                        local: r.local,
                        cookie: r.cookie?,
                        drops: r.traffic.listen_drops?.into(),
                    })
                }));
            } else {
                // Not read yet (a listener newer than the last re-read, or
                // the re-read failed): ask the kernel now.
                listen_drops::read(diag, *ns, &mut out)?;
            }
        }
        let unread = listen_drops::read_others(others, &mut out);
        Ok((out, unread))
    }

    /// [`Self::read`], with its failure said once on stderr.
    pub fn read_or_warn(&mut self, table: &Table, others: &OtherNamespaces) -> Option<(Vec<Sample>, Vec<u32>)> {
        self.read(table, others)
            .inspect_err(|e| {
                if !std::mem::replace(&mut self.failed, true) {
                    eprintln!(
                        "netwatch: warning: per-listener drop counters unavailable ({e}); \
                         listen_drops counts the namespace's TcpExt counters instead"
                    );
                }
            })
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;
    use crate::seed::SeedSocket;

    /// Own-namespace counters come from the table's rows once every
    /// listener there has one; a listener without one (not re-read yet)
    /// makes it ask the kernel, which knows nothing of a made-up cookie.
    #[test]
    fn own_namespace_counters_come_from_the_table_when_read() {
        let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino() as u32;
        let mut table = Table::new(0);
        let made_up = SeedSocket {
            cookie: Some(u64::MAX - 7),
            netns: own,
            ..SeedSocket::fixture(TcpState::Listen, "127.0.0.1:9", "0.0.0.0:0")
        };
        table.seed(vec![made_up.clone()], 1);
        let others = OtherNamespaces::default();
        let mut reader = Reader::default();
        let (dumped, _) = reader.read(&table, &others).unwrap();
        assert!(dumped.iter().all(|s| s.cookie != u64::MAX - 7), "the kernel has no such listener: {dumped:?}");
        let figures = Some(crate::seed::diag::Figures { drops: Some(5), rtt: None });
        table.update_listen_drops(&[SeedSocket { figures, ..made_up }]);
        let sample = Sample { netns: own, local: "127.0.0.1:9".parse().unwrap(), cookie: u64::MAX - 7, drops: 5 };
        assert_eq!(reader.read(&table, &others).unwrap(), (vec![sample], vec![]));
    }
}
