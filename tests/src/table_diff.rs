//! netwatch's table against `ss`, socket by socket, keyed by the socket
//! cookie both report: same tuple, state, inode, uid and owning processes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::snapshot::NwSocket;
use crate::ss::SsSocket;

/// What differs between the two views of one socket (empty: they agree).
pub fn row_diff(ss: &SsSocket, nw: &NwSocket) -> Vec<String> {
    let mut d = Vec::new();
    let mut field = |name: &str, want: String, got: String| {
        if want != got {
            d.push(format!("{name}: ss {want}, netwatch {got}"));
        }
    };
    field("proto", ss.proto.clone(), nw.proto.clone());
    field("family", ss.family.clone(), nw.family.clone());
    field("state", ss.state.clone(), nw.state.clone());
    field("sport", ss.sport.to_string(), nw.sport.to_string());
    field("dport", ss.dport.to_string(), nw.dport.to_string());
    field("inode", ss.inode.to_string(), nw.inode.to_string());
    field("uid", ss.uid.to_string(), nw.uid.to_string());
    field("owners", format!("{:?}", ss.owners), format!("{:?}", nw.owners));
    if !same_ip(ss.saddr, nw.saddr) {
        d.push(format!("saddr: ss {:?}, netwatch {}", ss.saddr, nw.saddr));
    }
    if !same_ip(ss.daddr, nw.daddr) {
        d.push(format!("daddr: ss {:?}, netwatch {}", ss.daddr, nw.daddr));
    }
    d
}

/// ss's `*` is the unspecified address of either family.
fn same_ip(ss: Option<IpAddr>, nw: IpAddr) -> bool {
    match ss {
        None => nw.is_unspecified(),
        Some(ip) => ip == nw.to_canonical(),
    }
}

/// Whether two ss reads show a socket the same way (timers aside).
pub fn ss_same(a: &SsSocket, b: &SsSocket) -> bool {
    (&a.proto, &a.family, &a.state, a.saddr, a.sport, a.daddr, a.dport, a.inode, a.uid, &a.owners)
        == (&b.proto, &b.family, &b.state, b.saddr, b.sport, b.daddr, b.dport, b.inode, b.uid, &b.owners)
}

/// Whether two ss reads show the same sockets, the same way.
pub fn ss_same_set(a: &[&SsSocket], b: &[&SsSocket]) -> bool {
    let (a, b) = (by_cookie(a), by_cookie(b));
    a.len() == b.len() && a.iter().all(|(c, x)| b.get(c).is_some_and(|y| ss_same(x, y)))
}

fn by_cookie(ss: &[&SsSocket]) -> BTreeMap<u64, SsSocket> {
    ss.iter().map(|s| (s.cookie, (*s).clone())).collect()
}

/// Exact comparison of two sets that must be the same sockets: every one
/// on both sides, each the same; netwatch's rows all in namespace `netns`.
pub fn exact(ss: &[&SsSocket], nw: &[&NwSocket], netns: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let ss = by_cookie(ss);
    let mut seen = BTreeMap::new();
    for n in nw {
        if n.netns != netns {
            problems.push(format!("netwatch row in netns {} instead of {netns}: {}", n.netns, n.json));
        }
        let Some(cookie) = n.cookie else {
            problems.push(format!("netwatch row without a cookie: {}", n.json));
            continue;
        };
        if seen.insert(cookie, n).is_some() {
            problems.push(format!("netwatch has cookie {cookie} twice: {}", n.json));
        }
        match ss.get(&cookie) {
            None => problems.push(format!("netwatch has a socket ss does not show: {}", n.json)),
            Some(s) => problems.extend(differs(s, n)),
        }
    }
    for (cookie, s) in &ss {
        if !seen.contains_key(cookie) {
            problems.push(format!("ss shows a socket netwatch does not: {}", s.line.trim()));
        }
    }
    problems
}

/// The report for one socket both tools show, if they disagree on it.
fn differs(s: &SsSocket, n: &NwSocket) -> Option<String> {
    let d = row_diff(s, n);
    (!d.is_empty()).then(|| {
        format!("socket differs ({}):\n    ss:       {}\n    netwatch: {}", d.join("; "), s.line.trim(), n.json)
    })
}

/// The whole table of a namespace that others may be changing, against ss
/// read just before and just after netwatch: every socket both reads show
/// unchanged must be in netwatch, the same; every netwatch row must be a
/// socket one of the reads shows, the same as one of them.
pub fn between(before: &[&SsSocket], after: &[&SsSocket], nw: &[&NwSocket]) -> Vec<String> {
    let mut problems = Vec::new();
    let (before, after) = (by_cookie(before), by_cookie(after));
    let nw_by: BTreeMap<u64, &NwSocket> = nw.iter().filter_map(|n| Some((n.cookie?, *n))).collect();
    for n in nw.iter().filter(|n| n.cookie.is_none()) {
        problems.push(format!("netwatch row without a cookie: {}", n.json));
    }
    for (cookie, b) in &before {
        let Some(a) = after.get(cookie).filter(|a| ss_same(a, b)) else { continue };
        match nw_by.get(cookie) {
            None => problems.push(format!("a socket both ss reads show is not in netwatch: {}", a.line.trim())),
            Some(n) => problems.extend(differs(a, n)),
        }
    }
    for (cookie, n) in &nw_by {
        let versions: Vec<&SsSocket> = [before.get(cookie), after.get(cookie)].into_iter().flatten().collect();
        if versions.is_empty() {
            problems.push(format!("netwatch has a socket neither ss read shows: {}", n.json));
        } else if versions.iter().all(|s| !row_diff(s, n).is_empty()) {
            let lines: Vec<&str> = versions.iter().map(|s| s.line.trim()).collect();
            problems
                .push(format!("netwatch row matches neither ss read:\n    netwatch: {}\n    ss: {lines:#?}", n.json));
        }
    }
    problems
}
