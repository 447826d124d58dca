//! Completing what the kernel reports partially; the socket's cookie ties
//! its events together, so each event lends the next what it knew.
//!
//! - Tuples (docs/design.md#partial-tuples): `CLOSE -> SYN_SENT` fires before the
//!   local port is chosen, and by the time `-> CLOSE` fires the port has
//!   been released again.
//! - Owners, start times and inodes: the kernel sends them only on the
//!   events that run in the owner's own system call or name the socket's
//!   birth (connect, listen, a passive child's first transition, accept);
//!   the rest, mostly in softirq, carry none and get them here. A socket
//!   opened before netwatch started gets the owner /proc showed at start-up.

use std::net::SocketAddr;

use netwatch_common::{EventKind, OwnerSource};
use rustc_hash::FxHashMap;

use super::{Comm, Event};
use crate::{seed::SeedSocket, socket::merge_addr};

/// Most recently seen endpoints per socket cookie. Cookies are kernel-made
/// sequential integers, not attacker-chosen keys, so a fast non-keyed hash
/// is safe here and runs for every event.
#[derive(Debug, Default)]
pub struct TupleCache {
    known: FxHashMap<u64, Known>,
    /// Keep a socket until its `destroy` event rather than its close: only
    /// when destroy events are wanted (the kernel sends few otherwise).
    pub until_destroy: bool,
}

#[derive(Debug)]
struct Known {
    local: SocketAddr,
    remote: SocketAddr,
    /// (pid, comm, uid, how it was learnt): from the socket's birth or
    /// accept event, or from /proc for sockets older than netwatch.
    owner: Option<(u32, Comm, u32, OwnerSource)>,
    start_ns: Option<u64>,
    inode: u64,
}

impl Known {
    fn new(e: &Event) -> Self {
        Self { local: e.local, remote: e.remote, owner: None, start_ns: None, inode: 0 }
    }

    /// Fills what `e` lacks from what this socket's earlier events knew.
    fn lend(&self, e: &mut Event) {
        e.local = merge_addr(e.local, self.local);
        e.remote = merge_addr(e.remote, self.remote);
        e.lend(self.owner, self.start_ns, self.inode);
    }

    /// Remembers what `e`, already completed, knows.
    fn learn(&mut self, e: &Event) {
        (self.local, self.remote) = (e.local, e.remote);
        if e.pid != 0 {
            // The kernel's word is newer (accept handed the socket on).
            self.owner = Some((e.pid, e.comm, e.uid, e.owner));
        }
        // The first start wins: the socket's birth.
        self.start_ns = self.start_ns.or(e.start_ns);
        if e.inode != 0 {
            self.inode = e.inode;
        }
    }
}

/// Bound on remembered sockets: past it (lost `destroy` events under
/// overload) the cache starts over rather than grow without limit.
const MAX_SOCKETS: usize = 1 << 20;

impl TupleCache {
    /// Fills unknown (zero) ports, addresses, owner, start and inode of `e`
    /// from earlier events of the same socket, and remembers what `e` knows.
    pub fn complete(&mut self, e: &mut Event) {
        // The socket's last event: its destroy, or its close unless destroy
        // events are wanted. Forgetting at the close keeps the cache as
        // small as the set of live sockets, and its lookups in cache.
        let ends = matches!(e.kind, EventKind::Close | EventKind::ConnectFailed | EventKind::UdpClose);
        if e.kind == EventKind::Destroy || (ends && !self.until_destroy) {
            if let Some(k) = self.known.remove(&e.cookie) {
                k.lend(e);
            }
            return;
        }
        if self.known.len() >= MAX_SOCKETS && !self.known.contains_key(&e.cookie) {
            self.known.clear();
        }
        // One hash lookup per event: this runs for every event.
        let k = self.known.entry(e.cookie).or_insert_with(|| Known::new(e));
        k.lend(e);
        k.learn(e);
    }

    /// Remembers the owners of sockets that existed before the programs
    /// were attached (TCP sockets with a cookie and an owner).
    pub fn preload(&mut self, sockets: &[SeedSocket]) {
        for s in sockets.iter().filter(|s| s.proto == crate::seed::Proto::Tcp) {
            let (Some(cookie), Some(p)) = (s.cookie, s.owners.first()) else { continue };
            self.known.entry(cookie).or_insert(Known {
                local: s.local,
                remote: s.remote,
                owner: Some((p.pid, Comm::new(&p.comm), s.uid, OwnerSource::Proc)),
                start_ns: None,
                inode: s.inode,
            });
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.known.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::Comm,
        socket::{Family, TcpState},
    };

    fn ev(kind: EventKind, cookie: u64, local: &str, remote: &str) -> Event {
        Event {
            kind,
            ts_ns: 0,
            start_ns: None,
            cookie,
            inode: 0,
            family: Family::V4,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            pid: 1,
            comm: Comm::default(),
            uid: 0,
            netns: 0,
            old_state: TcpState::Close,
            new_state: TcpState::Close,
            owner: OwnerSource::Unknown,
            traffic: netwatch_common::Traffic::ZERO,
        }
    }

    #[test]
    fn close_gets_the_port_established_reported() {
        let mut c = TupleCache::default();
        let mut connect = ev(EventKind::Connect, 5, "127.0.0.1:0", "127.0.0.1:80");
        c.complete(&mut connect);
        assert_eq!(connect.local.port(), 0, "nothing known yet");
        c.complete(&mut ev(EventKind::Established, 5, "127.0.0.1:4000", "127.0.0.1:80"));
        let mut close = ev(EventKind::Close, 5, "127.0.0.1:0", "127.0.0.1:80");
        c.complete(&mut close);
        assert_eq!(close.local, "127.0.0.1:4000".parse().unwrap());
        // Other sockets are not affected.
        let mut other = ev(EventKind::Close, 6, "127.0.0.1:0", "127.0.0.1:80");
        c.complete(&mut other);
        assert_eq!(other.local.port(), 0);
    }

    #[test]
    fn preloaded_owner_fills_events_without_one() {
        let mut c = TupleCache::default();
        let seeded = SeedSocket {
            proto: crate::seed::Proto::Tcp,
            family: Family::V4,
            local: "127.0.0.1:22".parse().unwrap(),
            remote: "127.0.0.1:5000".parse().unwrap(),
            state: 1,
            inode: 9,
            uid: 33,
            cookie: Some(8),
            netns: 1,
            owners: vec![crate::seed::Process { pid: 700, comm: "sshd".into(), fd: 4 }],
            timer: None,
            rx_queue: 0,
            tx_queue: 0,
        };
        c.preload(&[seeded]);
        let mut e = ev(EventKind::State, 8, "127.0.0.1:22", "127.0.0.1:5000");
        e.pid = 0;
        c.complete(&mut e);
        assert_eq!((e.pid, e.comm.as_str().as_ref(), e.uid, e.owner), (700, "sshd", 33, OwnerSource::Proc));
        // The kernel's own owner is never overridden.
        let mut e = ev(EventKind::State, 8, "127.0.0.1:22", "127.0.0.1:5000");
        e.pid = 5;
        c.complete(&mut e);
        assert_eq!(e.pid, 5);
    }

    #[test]
    fn the_births_owner_start_and_inode_are_lent_until_accept_hands_it_on() {
        let mut c = TupleCache::default();
        // A passive child's first event names its listener's owner.
        let mut born = ev(EventKind::State, 9, "127.0.0.1:80", "127.0.0.1:4000");
        (born.pid, born.owner, born.start_ns) = (10, OwnerSource::Listener, Some(1_000));
        c.complete(&mut born);
        // Softirq events carry no owner, start or inode.
        let mut accept = ev(EventKind::Accept, 9, "127.0.0.1:80", "127.0.0.1:4000");
        (accept.pid, accept.start_ns) = (0, None);
        c.complete(&mut accept);
        assert_eq!((accept.pid, accept.owner, accept.start_ns), (10, OwnerSource::Listener, Some(1_000)));
        // accept() in another process: its owner from now on, the start
        // still the handshake's.
        let mut adopt = ev(EventKind::Adopt, 9, "0.0.0.0:0", "0.0.0.0:0");
        (adopt.pid, adopt.owner, adopt.start_ns, adopt.inode) = (11, OwnerSource::Accept, None, 555);
        c.complete(&mut adopt);
        assert_eq!(adopt.local, "127.0.0.1:80".parse().unwrap());
        let mut close = ev(EventKind::Close, 9, "127.0.0.1:80", "127.0.0.1:4000");
        (close.pid, close.start_ns) = (0, None);
        c.complete(&mut close);
        assert_eq!((close.pid, close.owner, close.start_ns, close.inode), (11, OwnerSource::Accept, Some(1_000), 555));
        // Another socket learns nothing from this one.
        let mut other = ev(EventKind::State, 10, "127.0.0.1:80", "127.0.0.1:4001");
        (other.pid, other.start_ns) = (0, None);
        c.complete(&mut other);
        assert_eq!((other.pid, other.start_ns, other.inode), (0, None, 0));
    }

    #[test]
    fn destroy_forgets_so_reused_cookies_start_clean() {
        let mut c = TupleCache::default();
        c.complete(&mut ev(EventKind::Established, 5, "127.0.0.1:4000", "127.0.0.1:80"));
        let mut d = ev(EventKind::Destroy, 5, "127.0.0.1:0", "0.0.0.0:0");
        c.complete(&mut d);
        assert_eq!(d.local.port(), 4000);
        assert_eq!(d.remote, "127.0.0.1:80".parse().unwrap());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn close_forgets_unless_destroy_events_are_wanted() {
        for until_destroy in [false, true] {
            let mut c = TupleCache { until_destroy, ..TupleCache::default() };
            c.complete(&mut ev(EventKind::Established, 5, "127.0.0.1:4000", "127.0.0.1:80"));
            let mut close = ev(EventKind::Close, 5, "127.0.0.1:0", "127.0.0.1:80");
            c.complete(&mut close);
            assert_eq!(close.local.port(), 4000, "the close is completed either way");
            assert_eq!(c.len(), usize::from(until_destroy));
            let mut d = ev(EventKind::Destroy, 5, "127.0.0.1:0", "0.0.0.0:0");
            c.complete(&mut d);
            assert_eq!(d.local.port(), if until_destroy { 4000 } else { 0 });
            assert_eq!(c.len(), 0);
        }
    }
}
