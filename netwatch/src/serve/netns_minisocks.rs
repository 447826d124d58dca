//! Request sockets (SYN_RECV) and TIME_WAIT sockets of the *other* network
//! namespaces with listeners, re-read once a second for the alerts.
//!
//! No tracepoint reports request sockets (docs/design.md#syn-recv); the live
//! table re-reads them from sock_diag for netwatch's own namespace only, so
//! a SYN flood on a container's listener would otherwise stay invisible
//! until the next full re-seed. Each namespace is read through the socket
//! [`OtherNamespaces`] keeps in it.

use std::io;

use netwatch_common::tcp;

use crate::{
    seed::{diag::DiagSocket, OtherNamespaces, SeedSocket, Tracked},
    table::Table,
};

/// Re-reads the minisockets of every other namespace that has a listener
/// in `table`; returns problems worth a warning.
pub fn refresh(others: &mut OtherNamespaces, table: &mut Table, now_ns: u64) -> Vec<String> {
    let Tracked { gone, mut warnings } = others.track(&table.listener_namespaces());
    // A namespace whose listeners are gone is read one last time (its
    // request sockets went with them), then no more.
    for (ns, diag) in gone {
        table.reconcile_minisocks(ns, dump(&diag, ns).unwrap_or_default(), now_ns);
    }
    for (ns, diag) in others.sockets() {
        match dump(diag, ns) {
            Ok(out) => table.reconcile_minisocks(ns, out, now_ns),
            Err(e) => warnings.push(format!("re-reading half-open connections of network namespace {ns}: {e}")),
        }
    }
    warnings
}

/// TIME_WAIT and request sockets of one namespace, as the table's own
/// re-read asks for them (orphan FIN_WAIT2 minisockets need their own bit).
fn dump(diag: &DiagSocket, ns: u32) -> io::Result<Vec<SeedSocket>> {
    let states = (1 << tcp::TIME_WAIT) | (1 << tcp::FIN_WAIT2) | (1 << tcp::NEW_SYN_RECV);
    let mut out = Vec::new();
    diag.dump_tcp_each(states, ns, &mut out)?;
    Ok(out)
}
