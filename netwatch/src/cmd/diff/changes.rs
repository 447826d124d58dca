//! What changed between two baselines: listeners and established peers,
//! each reduced to an identity that survives restarts and client ports.
//!
//! - A listener is (protocol, local address, port) ([`ListenerKey`]).
//! - A peer is (protocol, direction, remote address, service port): for a
//!   connection this host accepted (its local port has a listener, or is
//!   outside the ephemeral range while the remote one is inside), the local
//!   port; for one it opened, the remote port. The client's ephemeral port
//!   is never part of it, so reconnecting clients are not changes, and
//!   neither are several connections between the same two services.
//!
//! Owners (PIDs change on every restart) and namespace inodes are shown but
//! not compared.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    ops::RangeInclusive,
};

use crate::{
    baseline::{Baseline, ListenerKey, Socket},
    seed::Proto,
    socket::Owner,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// This host accepted it.
    In,
    /// This host opened it.
    Out,
}

impl Direction {
    pub const fn name(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Listener(ListenerKey),
    Peer { proto: Proto, direction: Direction, remote: IpAddr, port: u16 },
}

/// One identity with what the sockets behind it show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: Key,
    pub sockets: usize,
    pub owners: BTreeSet<Owner>,
    pub netns: BTreeSet<u32>,
}

/// Which sockets take part.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Namespace inodes; empty: all.
    pub netns: Vec<u32>,
    /// Sockets with one of these ports at either end; empty: all.
    pub ports: Vec<u16>,
    /// Listeners only, no peers.
    pub listeners_only: bool,
}

impl Scope {
    fn has(&self, s: &Socket) -> bool {
        (self.netns.is_empty() || self.netns.contains(&s.netns))
            && (self.ports.is_empty() || self.ports.contains(&s.local.port()) || self.ports.contains(&s.remote.port()))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub appeared: Vec<Entry>,
    pub disappeared: Vec<Entry>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.appeared.is_empty() && self.disappeared.is_empty()
    }
}

pub fn compare(before: &Baseline, after: &Baseline, scope: &Scope, ephemeral: &RangeInclusive<u16>) -> Changes {
    let (old, mut new) = (entries(before, scope, ephemeral), entries(after, scope, ephemeral));
    // What is in both leaves `new`: the rest of it appeared.
    let disappeared = old.into_iter().filter_map(|(key, e)| new.remove(&key).is_none().then_some(e)).collect();
    Changes { appeared: new.into_values().collect(), disappeared }
}

/// The identities of one baseline, with their sockets merged.
pub fn entries(b: &Baseline, scope: &Scope, ephemeral: &RangeInclusive<u16>) -> BTreeMap<Key, Entry> {
    let sockets: Vec<&Socket> = b.sockets.iter().filter(|s| scope.has(s)).collect();
    // Listening ports per namespace, to tell accepted connections apart.
    let listening: BTreeSet<(u32, Proto, u16, IpAddr)> =
        sockets.iter().filter(|s| s.is_listener()).map(|s| (s.netns, s.proto, s.local.port(), s.local.ip())).collect();
    let accepted = |s: &Socket| {
        let port = s.local.port();
        let wildcard = if s.local.is_ipv4() { IpAddr::from([0u8; 4]) } else { IpAddr::from([0u16; 8]) };
        // A listener on :: accepts IPv4 too (shown as IPv4 here).
        let any = [s.local.ip(), wildcard, IpAddr::from([0u16; 8])];
        any.iter().any(|ip| listening.contains(&(s.netns, s.proto, port, *ip)))
            || (!ephemeral.contains(&port) && ephemeral.contains(&s.remote.port()))
    };
    let mut out: BTreeMap<Key, Entry> = BTreeMap::new();
    for s in sockets {
        let key = match s.listener_key() {
            Some(k) => Key::Listener(k),
            None if s.proto == Proto::Tcp && s.state == "ESTABLISHED" && !scope.listeners_only => {
                let (direction, port) =
                    if accepted(s) { (Direction::In, s.local.port()) } else { (Direction::Out, s.remote.port()) };
                Key::Peer { proto: s.proto, direction, remote: s.remote.ip(), port }
            }
            None => continue,
        };
        let e = out.entry(key).or_insert_with(|| Entry {
            key,
            sockets: 0,
            owners: BTreeSet::new(),
            netns: BTreeSet::new(),
        });
        e.sockets += 1;
        e.owners.extend(s.owners.iter().cloned());
        e.netns.insert(s.netns);
    }
    out
}

/// The kernel's ephemeral port range (`ip_local_port_range`), or its
/// default when that cannot be read.
pub fn ephemeral_range() -> RangeInclusive<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(str::parse::<u16>);
            Some(it.next()?.ok()?..=it.next()?.ok()?)
        })
        .unwrap_or(32768..=60999)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(proto: Proto, local: &str, remote: &str, state: &str, pid: u32) -> Socket {
        Socket {
            proto,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            state: state.into(),
            netns: 1,
            owners: vec![Owner { pid, comm: format!("p{pid}").as_str().into() }],
        }
    }

    fn base(sockets: Vec<Socket>) -> Baseline {
        Baseline { ts: None, sockets }
    }

    const EPH: RangeInclusive<u16> = 32768..=60999;

    #[test]
    fn ephemeral_ports_are_not_identity() {
        let server = |client_port: u16, pid| {
            vec![
                sock(Proto::Tcp, "0.0.0.0:443", "0.0.0.0:0", "LISTEN", 1),
                sock(Proto::Tcp, "10.0.0.1:443", &format!("10.0.0.9:{client_port}"), "ESTABLISHED", pid),
                sock(Proto::Tcp, "10.0.0.1:40000", "10.0.0.7:5432", "ESTABLISHED", 3),
            ]
        };
        // New PIDs, new client ports: nothing changed.
        let c = compare(&base(server(50000, 2)), &base(server(50001, 7)), &Scope::default(), &EPH);
        assert!(c.is_empty(), "{c:?}");
        let e = entries(&base(server(50000, 2)), &Scope::default(), &EPH);
        let keys: Vec<Key> = e.into_keys().collect();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            keys,
            vec![
                Key::Listener(ListenerKey { proto: Proto::Tcp, addr: ip("0.0.0.0"), port: 443 }),
                Key::Peer { proto: Proto::Tcp, direction: Direction::In, remote: ip("10.0.0.9"), port: 443 },
                Key::Peer { proto: Proto::Tcp, direction: Direction::Out, remote: ip("10.0.0.7"), port: 5432 },
            ]
        );
    }

    #[test]
    fn appeared_and_disappeared_with_owners() {
        let before = base(vec![sock(Proto::Tcp, "0.0.0.0:22", "0.0.0.0:0", "LISTEN", 1)]);
        let after = base(vec![
            sock(Proto::Udp, "127.0.0.1:5353", "0.0.0.0:0", "UNCONN", 4),
            sock(Proto::Udp, "127.0.0.1:40000", "127.0.0.1:53", "ESTABLISHED", 4),
            sock(Proto::Tcp, "127.0.0.1:41000", "127.0.0.1:8080", "TIME_WAIT", 0),
        ]);
        let c = compare(&before, &after, &Scope::default(), &EPH);
        assert_eq!(c.disappeared.len(), 1);
        assert_eq!(c.disappeared[0].owners.iter().next().unwrap().comm.text(), "p1");
        // Connected UDP and TIME_WAIT are neither listeners nor established peers.
        assert_eq!(c.appeared.len(), 1);
        assert_eq!(
            c.appeared[0].key,
            Key::Listener(ListenerKey { proto: Proto::Udp, addr: "127.0.0.1".parse().unwrap(), port: 5353 })
        );
        let only_22 = Scope { ports: vec![22], ..Scope::default() };
        assert_eq!(compare(&before, &after, &only_22, &EPH).appeared, vec![]);
        let other_ns = Scope { netns: vec![2], ..Scope::default() };
        assert!(compare(&before, &after, &other_ns, &EPH).is_empty());
    }

    #[test]
    fn loopback_connection_is_one_peer_each_way() {
        let b = base(vec![
            sock(Proto::Tcp, "127.0.0.1:9000", "0.0.0.0:0", "LISTEN", 1),
            sock(Proto::Tcp, "127.0.0.1:45000", "127.0.0.1:9000", "ESTABLISHED", 2),
            sock(Proto::Tcp, "127.0.0.1:9000", "127.0.0.1:45000", "ESTABLISHED", 1),
        ]);
        let dirs: Vec<Key> = entries(&b, &Scope::default(), &EPH).into_keys().skip(1).collect();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            dirs,
            vec![
                Key::Peer { proto: Proto::Tcp, direction: Direction::In, remote: lo, port: 9000 },
                Key::Peer { proto: Proto::Tcp, direction: Direction::Out, remote: lo, port: 9000 },
            ]
        );
        let listeners_only = Scope { listeners_only: true, ..Scope::default() };
        assert_eq!(entries(&b, &listeners_only, &EPH).len(), 1);
    }
}
