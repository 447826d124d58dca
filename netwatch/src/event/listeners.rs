//! Who owns a listener, for its passive children.
//!
//! A passive child is born in softirq, cloned from its listener on the
//! handshake's last ACK (`LISTEN -> SYN_RECV`), where the kernel cannot tell
//! whose it is; until `accept()` hands it to a process (the kernel's `Accept`
//! event) it belongs to its listener's owner. The kernel reports every
//! listener's birth, in the owner's own `listen()`, and its close; this
//! registry keeps the owners those events name, and those of listeners older
//! than netwatch from /proc, and lends them to the children's first event.
//! The rest of a child's events borrow from that one (the table).
//!
//! This is the agent's job, not the kernel's: a kernel map looked up on every
//! handshake cost the traced workload up to 2% on its own, its lines often
//! cold by the next handshake, where a lookup here is off the workload's CPU.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netwatch_common::{EventKind, OwnerSource};
use rustc_hash::FxHashMap;

use super::{Comm, Event};
use crate::seed::{Proto, SeedSocket};
use crate::socket::{Family, TcpState};

/// Where a listener listens, as its children see it: they look for the
/// exact local address first, then the family's wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    netns: u32,
    family: Family,
    ip: IpAddr,
    port: u16,
}

impl Key {
    fn of(e: &Event) -> Self {
        Self { netns: e.netns, family: e.family, ip: e.local.ip(), port: e.local.port() }
    }

    fn wildcard(self) -> Self {
        let ip = match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        Self { ip, ..self }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Listening {
    cookie: u64,
    pid: u32,
    comm: Comm,
    uid: u32,
}

/// The owners of the listening sockets netwatch knows, by address.
#[derive(Debug, Default)]
pub struct ListenerOwners {
    /// Several sockets may listen on one address (SO_REUSEPORT).
    by_key: FxHashMap<Key, Vec<Listening>>,
    /// Where each listener is, by cookie: its close may name another port
    /// than its birth did (a port the kernel picked is given back first).
    key_of: FxHashMap<u64, Key>,
}

impl ListenerOwners {
    /// Learns from `e` (a listener's birth or close) or completes it (a
    /// passive child's first event, whose owner the kernel left unknown).
    pub fn observe(&mut self, e: &mut Event) {
        match (e.old_state, e.new_state) {
            (_, TcpState::Listen) if e.kind == EventKind::Listen && e.pid != 0 => {
                self.add(Key::of(e), Listening { cookie: e.cookie, pid: e.pid, comm: e.comm, uid: e.uid });
            }
            (TcpState::Listen, TcpState::Close) => self.forget(e.cookie, Key::of(e)),
            (TcpState::Listen, TcpState::SynRecv) if e.pid == 0 => {
                if let Some(l) = self.owner_for(Key::of(e)) {
                    (e.pid, e.comm, e.uid, e.owner) = (l.pid, l.comm, l.uid, OwnerSource::Listener);
                }
            }
            _ => {}
        }
    }

    /// Learns the listeners that were open before the programs could see
    /// their `listen()`, with the owner /proc shows. A listener the kernel
    /// already reported keeps the kernel's word.
    pub fn seed(&mut self, sockets: &[SeedSocket]) {
        for s in sockets.iter().filter(|s| s.proto == Proto::Tcp && s.state == TcpState::Listen) {
            let Some(p) = s.owners.first() else { continue };
            let key = Key { netns: s.netns, family: s.family, ip: s.local.ip(), port: s.local.port() };
            let known = match s.cookie {
                Some(cookie) => self.key_of.contains_key(&cookie),
                None => self.by_key.contains_key(&key),
            };
            if !known {
                let l = Listening { cookie: s.cookie.unwrap_or(0), pid: p.pid, comm: Comm::new(&p.comm), uid: s.uid };
                self.add(key, l);
            }
        }
    }

    /// The listener `cookie` is held by `pid` now (`holders`: its owner
    /// exited, exec'd or handed it on), so its children are lent that.
    pub fn reown(&mut self, cookie: u64, pid: u32, comm: Comm) {
        let Some(key) = self.key_of.get(&cookie) else { return };
        if let Some(l) = self.by_key.get_mut(key).and_then(|v| v.iter_mut().find(|l| l.cookie == cookie)) {
            (l.pid, l.comm) = (pid, comm);
        }
    }

    /// Whom a passive child on `local` (of `family`, in `netns`) belongs
    /// to until `accept()`: its listener's holder now, as [`Self::observe`]
    /// lends it at the child's birth.
    pub fn owner_of_child(&self, netns: u32, family: Family, local: std::net::SocketAddr) -> Option<(u32, Comm)> {
        let l = self.owner_for(Key { netns, family, ip: local.ip(), port: local.port() })?;
        Some((l.pid, l.comm))
    }

    fn add(&mut self, key: Key, l: Listening) {
        if l.cookie != 0 {
            // The same socket listening again is listed once.
            if let Some(before) = self.key_of.insert(l.cookie, key) {
                self.remove_at(before, |old| old.cookie == l.cookie);
            }
        }
        self.by_key.entry(key).or_default().push(l);
    }

    /// Forgets the listener `cookie`, closed at `at`: by its cookie where
    /// known, else the listener from /proc without a cookie (no sock_diag)
    /// that listened there.
    fn forget(&mut self, cookie: u64, at: Key) {
        match self.key_of.remove(&cookie) {
            Some(key) => self.remove_at(key, |l| l.cookie == cookie),
            None => self.remove_at(at, |l| l.cookie == 0),
        }
    }

    fn remove_at(&mut self, key: Key, gone: impl Fn(&Listening) -> bool) {
        if let Some(v) = self.by_key.get_mut(&key) {
            v.retain(|l| !gone(l));
            if v.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    /// The owner of the listener a child on `key` came from: the exact
    /// address's listeners, else the wildcard's. Where several listen there
    /// (SO_REUSEPORT) and not all for one process, the kernel does not say
    /// which one the child came from: no owner rather than a guess, until
    /// accept() names it.
    fn owner_for(&self, key: Key) -> Option<&Listening> {
        let all = self.by_key.get(&key).or_else(|| self.by_key.get(&key.wildcard()))?;
        let first = all.first()?;
        all.iter().all(|l| l.pid == first.pid).then_some(first)
    }
}

#[cfg(test)]
#[path = "listeners_tests.rs"]
mod tests;
