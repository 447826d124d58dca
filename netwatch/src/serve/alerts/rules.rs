//! The alert conditions, as pure functions of the table: every candidate
//! with its current figure; the engine compares them with the thresholds.

use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, SocketAddr},
};

use super::{Finding, SockRef};
use crate::{
    baseline::ListenerKey,
    event::display_ip,
    seed::Proto,
    serve::listeners::ListenerIndex,
    socket::{Owner, TcpState},
    table::{Row, Table},
};

/// How many sockets an alert lists by name (the figure counts them all).
pub const SAMPLE: usize = 5;

/// TCP connections (not listeners).
fn connections(table: &Table) -> impl Iterator<Item = &Row> {
    table.rows().filter(|r| r.proto == Proto::Tcp && r.state != TcpState::Listen)
}

/// SYN_RECV rows per listener: request sockets from sock_diag and children
/// whose handshake is in flight (docs/design.md#syn-recv), matched to the
/// listener of the same namespace and port (and address, unless the
/// listener's is a wildcard).
pub fn syn_backlog(table: &Table) -> Vec<Finding> {
    let index = ListenerIndex::new(table);
    let mut per: HashMap<(u32, SocketAddr), (&Row, Vec<&Row>)> = HashMap::new();
    for r in table.rows().filter(|r| r.proto == Proto::Tcp && r.state == TcpState::SynRecv) {
        let Some(l) = index.find(r) else { continue };
        per.entry((l.netns, l.local)).or_insert_with(|| (l, Vec::new())).1.push(r);
    }
    per.into_values()
        .map(|(l, half)| {
            let owner = l.owners.first().cloned();
            let mut sockets = vec![SockRef::of(l)];
            sockets.extend(half.iter().take(SAMPLE).map(|r| SockRef::of(r)));
            Finding {
                key: format!("{}/{}", l.netns, endpoint(l.local)),
                value: half.len() as u64,
                subject: format!(
                    "half-open (SYN_RECV) connections on listener {} (netns {}) of {}",
                    endpoint(l.local),
                    l.netns,
                    owner_text(owner.as_ref())
                ),
                owner,
                sockets,
            }
        })
        .collect()
}

/// Current connections per remote address.
pub fn remote_connections(table: &Table) -> Vec<Finding> {
    let mut per: HashMap<IpAddr, Vec<&Row>> = HashMap::new();
    for r in connections(table).filter(|r| !r.remote.ip().is_unspecified()) {
        per.entry(display_ip(r.remote.ip())).or_default().push(r);
    }
    per.into_iter()
        .map(|(ip, rows)| {
            let owner = main_owner(&rows);
            Finding {
                key: ip.to_string(),
                value: rows.len() as u64,
                subject: format!("connections with remote address {ip} (mostly {})", owner_text(owner.as_ref())),
                owner,
                sockets: rows.iter().take(SAMPLE).map(|r| SockRef::of(r)).collect(),
            }
        })
        .collect()
}

/// Sockets with a listed port at either end: connections (not TIME_WAIT) and listeners in
/// the table, plus `recent` connections seen in events since the last
/// check (too short-lived to be in the table by then).
pub fn suspicious_ports(table: &Table, ports: &BTreeSet<u16>, recent: &[SockRef]) -> Vec<Finding> {
    let mut per: HashMap<u16, Vec<SockRef>> = HashMap::new();
    let mut seen = BTreeSet::new();
    let listed = |a: SocketAddr| ports.contains(&a.port());
    // TIME_WAIT rows are over: no process is on them any more. Rows are
    // checked before a SockRef (strings) is made: most have no listed port.
    let rows = table
        .rows()
        .filter(|r| r.proto == Proto::Tcp && r.state != TcpState::TimeWait && (listed(r.local) || listed(r.remote)));
    for s in rows.map(SockRef::of).chain(recent.iter().cloned()) {
        let Some(port) = [s.sport, s.dport].into_iter().find(|p| ports.contains(p)) else { continue };
        // A connection both in the table and in the events counts once.
        if seen.insert((s.netns, s.saddr.clone(), s.sport, s.daddr.clone(), s.dport)) {
            per.entry(port).or_default().push(s);
        }
    }
    per.into_iter()
        .map(|(port, mut socks)| {
            socks.sort_by_key(|s| (s.state == "LISTEN", s.sport, s.dport));
            let owner = socks
                .iter()
                .find_map(|s| s.pid.map(|pid| Owner { pid, comm: s.comm.as_deref().unwrap_or_default().into() }));
            Finding {
                key: port.to_string(),
                value: socks.len() as u64,
                subject: format!("sockets using suspicious port {port} (first: {})", owner_text(owner.as_ref())),
                owner,
                sockets: socks.into_iter().take(SAMPLE).collect(),
            }
        })
        .collect()
}

/// Listening TCP sockets whose (address, port) the baseline lacks, except
/// the agent's own (`own_pid`, its metrics endpoint): a baseline is usually
/// taken before the agent first starts, and the agent warning about itself
/// at every start is noise.
pub fn new_listeners(table: &Table, baseline: &BTreeSet<ListenerKey>, own_pid: u32) -> Vec<Finding> {
    table
        .rows()
        .filter(|r| r.proto == Proto::Tcp && r.state == TcpState::Listen)
        .filter(|r| r.owners.is_empty() || r.owners.iter().any(|o| o.pid != own_pid))
        .filter(|r| !baseline.contains(&ListenerKey::new(Proto::Tcp, r.local)))
        .map(|r| {
            let owner = r.owners.first().cloned();
            Finding {
                key: format!("{}/{}", r.netns, endpoint(r.local)),
                value: 1,
                subject: format!(
                    "listening socket {} (netns {}) of {} not in the baseline",
                    endpoint(r.local),
                    r.netns,
                    owner_text(owner.as_ref())
                ),
                owner,
                sockets: vec![SockRef::of(r)],
            }
        })
        .collect()
}

/// All TCP connections, naming the processes with the most.
pub fn total_connections(table: &Table) -> Vec<Finding> {
    let rows: Vec<&Row> = connections(table).collect();
    let owner = main_owner(&rows);
    vec![Finding {
        key: "all".to_owned(),
        value: rows.len() as u64,
        subject: format!("TCP connections in total (most owned by {})", owner_text(owner.as_ref())),
        owner,
        sockets: Vec::new(),
    }]
}

/// The process owning most of `rows`.
fn main_owner(rows: &[&Row]) -> Option<Owner> {
    let mut per: HashMap<u32, (&Owner, usize)> = HashMap::new();
    for o in rows.iter().filter_map(|r| r.owners.first()) {
        per.entry(o.pid).or_insert((o, 0)).1 += 1;
    }
    per.into_values().max_by(|a, b| a.1.cmp(&b.1).then(b.0.pid.cmp(&a.0.pid))).map(|(o, _)| *o)
}

pub fn owner_text(o: Option<&Owner>) -> String {
    o.map_or_else(|| "an unknown process".to_owned(), |o| format!("pid {} ({})", o.pid, o.comm))
}

pub fn endpoint(a: SocketAddr) -> String {
    match display_ip(a.ip()) {
        IpAddr::V6(ip) => format!("[{ip}]:{}", a.port()),
        ip => format!("{ip}:{}", a.port()),
    }
}
