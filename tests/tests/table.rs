//! End-to-end tests of the connection table (`netwatch snapshot`): seeded
//! from the kernel and kept live by events, it must show what `ss` shows,
//! socket by socket, and count and remember what came and went.
//!
//! They need root and one thread (`cargo xtask test`); without root they
//! fail rather than skip. `NETWATCH_BIN` names the netwatch binary to test
//! (default: `target/release/netwatch`). Only 127.0.0.0/8, ::1 and network
//! namespaces the tests make themselves are used; every process and
//! namespace they start is ended by a guard on drop.

#[path = "table/churn.rs"]
mod churn;
#[path = "table/history.rs"]
mod history;
#[path = "table/seeded.rs"]
mod seeded;
#[path = "table/text.rs"]
mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use netwatch_tests::snapshot::NwSocket;
use netwatch_tests::ss::SsSocket;

/// Every test starts here.
fn setup() {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root: run `cargo xtask test`");
    netwatch_tests::setup(env!("CARGO_BIN_EXE_nw-peer"));
}

/// [`setup`], then into a network namespace of the test's own, where `ss`
/// and netwatch run too: the namespace's sockets are then exactly the
/// test's (netwatch's rows of other namespaces are told apart by inode).
#[must_use = "the test leaves its namespace when this is dropped"]
fn setup_in(tag: &str) -> netwatch_tests::netns::Own {
    setup();
    netwatch_tests::netns::own(tag)
}

/// The test's own sockets of one protocol: those whose local end is one
/// of `local` (our listeners and bound UDP sockets, and the children they
/// accepted), or whose remote end is one of `remote` (our clients).
///
/// Whole endpoints, not ports: other processes' ephemeral ports may be
/// ours too, towards other destinations.
struct Ours {
    proto: &'static str,
    local: BTreeSet<SocketAddr>,
    remote: BTreeSet<SocketAddr>,
}

impl Ours {
    /// Sockets at either end of the endpoints the test has bound.
    fn bound(proto: &'static str, eps: impl IntoIterator<Item = SocketAddr>) -> Self {
        let eps: BTreeSet<SocketAddr> = eps.into_iter().map(canonical).collect();
        Self { proto, local: eps.clone(), remote: eps }
    }

    fn has(&self, proto: &str, local: SocketAddr, remote: SocketAddr) -> bool {
        proto == self.proto && (self.local.contains(&local) || self.remote.contains(&remote))
    }

    fn ss<'s>(&self, rows: &'s [SsSocket]) -> Vec<&'s SsSocket> {
        let ep = |ip: Option<IpAddr>, port| SocketAddr::new(ip.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), port);
        rows.iter().filter(|s| self.has(&s.proto, ep(s.saddr, s.sport), ep(s.daddr, s.dport))).collect()
    }

    /// netwatch's rows of ours, in the test's namespace.
    fn nw<'s>(&self, rows: &'s [NwSocket]) -> Vec<&'s NwSocket> {
        let ep = |ip: IpAddr, port| SocketAddr::new(ip.to_canonical(), port);
        let own = netwatch_tests::netns::own_inode();
        rows.iter()
            .filter(|s| s.netns == own && self.has(&s.proto, ep(s.saddr, s.sport), ep(s.daddr, s.dport)))
            .collect()
    }
}

/// IPv4-mapped IPv6 as IPv4, as both views show it.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// How many sockets are in each state.
fn states(rows: &[&SsSocket]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(r.state.clone()).or_default() += 1;
    }
    m
}

fn expect_states(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
}

/// Panics listing `problems`, if any.
fn assert_none(context: &str, problems: &[String]) {
    if problems.is_empty() {
        return;
    }
    let shown: Vec<&str> = problems.iter().take(15).map(String::as_str).collect();
    panic!(
        "{context}: {} problem(s){}:\n  {}",
        problems.len(),
        if problems.len() > 15 { ", first 15" } else { "" },
        shown.join("\n  ")
    );
}

/// TcpExt TCPTimeWaitOverflow from /proc/net/netstat: closes that found
/// the TIME_WAIT table full (`tcp_max_tw_buckets`), so their connection left
/// no TIME_WAIT or orphaned FIN_WAIT2 behind. Other processes' churn can
/// fill the table; tests that count such rows say so when it happened.
fn tw_overflows() -> u64 {
    // The test thread's namespace: /proc/net is the main thread's.
    let text = std::fs::read_to_string("/proc/thread-self/net/netstat").expect("reading /proc/thread-self/net/netstat");
    let mut rows = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (rows.next().expect("TcpExt header"), rows.next().expect("TcpExt values"));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "TCPTimeWaitOverflow")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// ss lines, for messages.
fn lines(rows: &[&SsSocket]) -> String {
    rows.iter().map(|r| format!("    {}\n", r.line.trim())).collect()
}
