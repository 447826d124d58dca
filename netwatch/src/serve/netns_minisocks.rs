//! Request sockets (SYN_RECV) and TIME_WAIT sockets of the *other* network
//! namespaces with listeners, re-read once a second for the alerts.
//!
//! No tracepoint reports request sockets (docs/design.md#syn-recv); the live
//! table re-reads them from sock_diag for netwatch's own namespace only, so
//! a SYN flood on a container's listener would otherwise stay invisible
//! until the next full re-seed. sock_diag answers for the namespace its
//! socket was created in: one socket per namespace is opened once, from a
//! short-lived thread that `setns`es into it through a listener owner's
//! `/proc/PID/ns/net` (needs CAP_SYS_ADMIN), and kept while the namespace
//! has listeners.

use std::{
    collections::{BTreeSet, HashMap},
    io,
};

use netwatch_common::tcp;

use crate::{
    seed::{diag::DiagSocket, open_diag_sockets, own_netns, Proto, SeedSocket},
    socket::TcpState,
    table::Table,
};

#[derive(Default)]
pub struct OtherNamespaces {
    own: Option<u32>,
    sockets: HashMap<u32, DiagSocket>,
    /// Namespaces that could not be entered: not retried every second.
    refused: BTreeSet<u32>,
}

impl OtherNamespaces {
    /// Re-reads the minisockets of every other namespace that has a
    /// listener in `table`; returns problems worth a warning.
    pub fn refresh(&mut self, table: &mut Table, now_ns: u64) -> Vec<String> {
        let own = *self.own.get_or_insert_with(|| own_netns().unwrap_or(0));
        let mut wanted: HashMap<u32, Vec<u32>> = HashMap::new();
        for r in table.rows().filter(|r| r.proto == Proto::Tcp && r.state == TcpState::Listen && r.netns != own) {
            wanted.entry(r.netns).or_default().extend(r.owners.iter().map(|o| o.pid));
        }
        // A namespace whose listeners are gone is read one last time (its
        // request sockets went with them), then no more.
        let gone: Vec<u32> = self.sockets.keys().filter(|ns| !wanted.contains_key(ns)).copied().collect();
        for ns in gone {
            if let Some(diag) = self.sockets.remove(&ns) {
                table.reconcile_minisocks(ns, dump(&diag, ns).unwrap_or_default(), now_ns);
            }
        }
        self.refused.retain(|ns| wanted.contains_key(ns));
        let mut warnings = Vec::new();
        for (ns, pids) in &wanted {
            if self.sockets.contains_key(ns) || self.refused.contains(ns) {
                continue;
            }
            match open_in(*ns, pids) {
                Ok(s) => {
                    self.sockets.insert(*ns, s);
                }
                Err(e) => {
                    self.refused.insert(*ns);
                    warnings.push(format!("cannot read half-open connections of network namespace {ns}: {e}"));
                }
            }
        }
        for (&ns, diag) in &self.sockets {
            match dump(diag, ns) {
                Ok(out) => table.reconcile_minisocks(ns, out, now_ns),
                Err(e) => warnings.push(format!("re-reading half-open connections of network namespace {ns}: {e}")),
            }
        }
        warnings
    }

    /// The sock_diag socket of each other namespace with listeners.
    pub fn sockets(&self) -> impl Iterator<Item = (u32, &DiagSocket)> {
        self.sockets.iter().map(|(ns, d)| (*ns, d))
    }
}

/// TIME_WAIT and request sockets of one namespace, as the table's own
/// re-read asks for them (orphan FIN_WAIT2 minisockets need their own bit).
fn dump(diag: &DiagSocket, ns: u32) -> io::Result<Vec<SeedSocket>> {
    let states = (1 << tcp::TIME_WAIT) | (1 << tcp::FIN_WAIT2) | (1 << tcp::NEW_SYN_RECV);
    let mut out = Vec::new();
    diag.dump_tcp_each(states, ns, &mut out)?;
    Ok(out)
}

/// A sock_diag socket inside namespace `ns`, entered through the first of
/// `pids` still in it. With the memory counters: the same socket reads the
/// listeners' drop counters (`super::listen_drops`).
fn open_in(ns: u32, pids: &[u32]) -> io::Result<DiagSocket> {
    let paths = pids.iter().map(|pid| format!("/proc/{pid}/ns/net").into()).collect();
    let opened = open_diag_sockets([(ns, paths)], true).pop().map(|(_, s)| s);
    opened.unwrap_or_else(|| Err(io::Error::other("the namespace thread panicked")))
}
