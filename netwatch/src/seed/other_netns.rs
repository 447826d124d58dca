//! A sock_diag socket kept open inside each *other* network namespace that
//! has a TCP listener: what serve re-reads there once a second (request and
//! TIME_WAIT sockets, for the alerts), and what `events` and serve read the
//! listeners' drop counters through.
//!
//! sock_diag answers for the namespace its socket was created in. Each
//! socket is opened once, from a short-lived thread that `setns`es in
//! through a listener owner's `/proc/PID/ns/net` or another way in
//! ([`open_in`], [`open_diag_sockets`]; needs CAP_SYS_ADMIN), and kept while the namespace has listeners; a
//! namespace that cannot be entered is not retried while it keeps them.

use std::{
    collections::{BTreeSet, HashMap},
    io,
    path::PathBuf,
};

use super::{diag::DiagSocket, open_diag_sockets, own_netns};

#[derive(Default)]
pub struct OtherNamespaces {
    own: Option<u32>,
    sockets: HashMap<u32, DiagSocket>,
    refused: BTreeSet<u32>,
}

/// What [`OtherNamespaces::track`] changed.
#[derive(Default)]
pub struct Tracked {
    /// Namespaces that have no listener any more, with their sockets, for
    /// a last read.
    pub gone: Vec<(u32, DiagSocket)>,
    /// Namespaces that could not be entered, said once each.
    pub warnings: Vec<String>,
}

impl OtherNamespaces {
    /// netwatch's own namespace, which is never tracked here.
    pub fn own(&mut self) -> u32 {
        *self.own.get_or_insert_with(|| own_netns().unwrap_or(0))
    }

    /// Follows `listeners`: each namespace with a TCP listener, with the
    /// PIDs of its listeners' owners (the ways in). Opens a socket in each
    /// new one, closes those of namespaces no longer there.
    pub fn track(&mut self, listeners: &HashMap<u32, Vec<u32>>) -> Tracked {
        let own = self.own();
        let wanted = |ns: &u32| *ns != own && listeners.contains_key(ns);
        let mut tracked = Tracked::default();
        let gone: Vec<u32> = self.sockets.keys().filter(|ns| !wanted(ns)).copied().collect();
        tracked.gone = gone.into_iter().filter_map(|ns| self.sockets.remove_entry(&ns)).collect();
        self.refused.retain(wanted);
        for (&ns, pids) in listeners {
            if ns == own || self.sockets.contains_key(&ns) || self.refused.contains(&ns) {
                continue;
            }
            match open_in(ns, pids) {
                Ok(s) => {
                    self.sockets.insert(ns, s);
                }
                Err(e) => {
                    self.refused.insert(ns);
                    tracked.warnings.push(format!("cannot read the TCP listeners of network namespace {ns}: {e}"));
                }
            }
        }
        tracked
    }

    /// The sock_diag socket of each other namespace with listeners.
    pub fn sockets(&self) -> impl Iterator<Item = (u32, &DiagSocket)> {
        self.sockets.iter().map(|(ns, d)| (*ns, d))
    }
}

/// A sock_diag socket inside namespace `ns`, asking for the memory
/// counters (which carry a listener's drop counter). Entered through the
/// first way in that still is `ns` (checked by inode): a listener owner's
/// namespace, else init's (a host listener whose owner is not visible,
/// for netwatch run in a namespace of its own), else a bind mount under
/// `/run/netns` (`ip netns add`).
fn open_in(ns: u32, pids: &[u32]) -> io::Result<DiagSocket> {
    let owners = pids.iter().map(|pid| PathBuf::from(format!("/proc/{pid}/ns/net")));
    let mounts = std::fs::read_dir("/run/netns").into_iter().flatten().flatten().map(|e| e.path());
    let paths = owners.chain([PathBuf::from("/proc/1/ns/net")]).chain(mounts).collect();
    let opened = open_diag_sockets([(ns, paths)], true).pop().map(|(_, s)| s);
    opened.unwrap_or_else(|| Err(io::Error::other("the namespace thread panicked")))
}
