//! One filter language for every output: `events` (trailing words or
//! `--filter`), `snapshot`, the live view (`/`) and `serve`'s export.
//!
//! The grammar is ss's as far as it goes ([`parse`]), so an expression that
//! works with `ss -tan` selects the same sockets here, plus netwatch's own
//! fields ([`fields::FIELDS`]). The old flags (`--pid`, `--port`, `-4`/`-6`,
//! `--netns`) build the same expressions ([`Filter::from_flags`]).
//!
//! Filters apply in the agent: the kernel must still see every event to
//! keep its owner records right.

mod expr;
mod fields;
mod parse;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

pub use expr::{Expr, Op, Value};
pub use parse::{looks_like_expression, parse, ParseError};

use crate::{
    event::Event,
    socket::Proto,
    table::{Closed, Row},
    workload::Workload,
};

/// What a filter looks at: an event, a table row or a closed connection.
pub trait Subject {
    fn proto(&self) -> Proto;
    /// The kernel's state number (an event's new state); UDP sockets are
    /// CLOSE unless connected (ESTABLISHED), as ss shows them.
    fn state(&self) -> Option<u8>;
    fn local(&self) -> SocketAddr;
    fn remote(&self) -> SocketAddr;
    fn netns(&self) -> u32;
    /// Calls `f` with each holder's PID and program name until it returns
    /// true; returns whether it did.
    fn each_owner(&self, f: &mut dyn FnMut(u32, &str) -> bool) -> bool;
    fn uid(&self) -> Option<u32>;
    fn cookie(&self) -> Option<u64>;
    /// Payload bytes both ways, as far as counted.
    fn bytes(&self) -> u64;
    /// How long the connection has lived (or lived), when its start is known.
    fn lifetime_ns(&self) -> Option<u64>;
    /// Where the (first) owner runs, where resolved.
    fn workload(&self) -> Option<&Workload> {
        None
    }
    /// The remote address's name from DNS (`crate::names`), where known.
    fn rhost(&self) -> Option<&str> {
        None
    }
    /// The `family` field, `-4`/`-6`: IPv4-mapped addresses count as IPv4
    /// (docs/design.md#ipv4-mapped-addresses).
    fn ipv4_traffic(&self) -> bool {
        let (local, remote) = (self.local().ip(), self.remote().ip());
        let addr = if remote.is_unspecified() { local } else { remote };
        addr.to_canonical().is_ipv4()
    }
}

impl Subject for Event {
    fn proto(&self) -> Proto {
        if self.kind == netwatch_common::EventKind::UdpClose {
            Proto::Udp
        } else {
            Proto::Tcp
        }
    }
    fn state(&self) -> Option<u8> {
        Some(self.new_state as u8)
    }
    fn local(&self) -> SocketAddr {
        self.local
    }
    fn remote(&self) -> SocketAddr {
        self.remote
    }
    fn netns(&self) -> u32 {
        self.netns
    }
    fn each_owner(&self, f: &mut dyn FnMut(u32, &str) -> bool) -> bool {
        self.pid != 0 && f(self.pid, self.comm.text())
    }
    fn uid(&self) -> Option<u32> {
        (self.pid != 0).then_some(self.uid)
    }
    fn cookie(&self) -> Option<u64> {
        Some(self.cookie)
    }
    fn bytes(&self) -> u64 {
        self.traffic.rx_bytes + self.traffic.tx_bytes
    }
    fn lifetime_ns(&self) -> Option<u64> {
        self.duration_ns()
    }
    fn workload(&self) -> Option<&Workload> {
        self.workload.as_ref()
    }
    fn rhost(&self) -> Option<&str> {
        self.rhost.as_deref()
    }
}

/// A table row as of `now_ns` (CLOCK_MONOTONIC), for its lifetime.
pub struct RowAt<'a> {
    pub row: &'a Row,
    pub now_ns: u64,
    /// Where its owner runs, where the caller resolved it.
    pub workload: Option<&'a Workload>,
}

impl Subject for RowAt<'_> {
    fn proto(&self) -> Proto {
        self.row.proto
    }
    fn state(&self) -> Option<u8> {
        Some(self.row.state as u8)
    }
    fn local(&self) -> SocketAddr {
        self.row.local
    }
    fn remote(&self) -> SocketAddr {
        self.row.remote
    }
    fn netns(&self) -> u32 {
        self.row.netns
    }
    fn each_owner(&self, f: &mut dyn FnMut(u32, &str) -> bool) -> bool {
        self.row.owners.iter().any(|o| f(o.pid, o.comm.text()))
    }
    fn uid(&self) -> Option<u32> {
        // TIME_WAIT and request sockets belong to nobody.
        (!self.row.owners.is_empty() || self.row.inode != 0).then_some(self.row.uid)
    }
    fn cookie(&self) -> Option<u64> {
        self.row.cookie
    }
    fn bytes(&self) -> u64 {
        let t = &self.row.traffic.totals;
        t.rx_bytes + t.tx_bytes
    }
    fn lifetime_ns(&self) -> Option<u64> {
        self.row.opened_ns.map(|o| self.now_ns.saturating_sub(o))
    }
    fn workload(&self) -> Option<&Workload> {
        self.workload
    }
}

impl Subject for Closed {
    fn proto(&self) -> Proto {
        self.proto
    }
    /// A closed connection is CLOSE, as its last event said.
    fn state(&self) -> Option<u8> {
        Some(netwatch_common::tcp::CLOSE)
    }
    fn local(&self) -> SocketAddr {
        self.local
    }
    fn remote(&self) -> SocketAddr {
        self.remote
    }
    fn netns(&self) -> u32 {
        self.netns
    }
    fn each_owner(&self, f: &mut dyn FnMut(u32, &str) -> bool) -> bool {
        self.owner.as_ref().is_some_and(|o| f(o.pid, o.comm.text()))
    }
    fn uid(&self) -> Option<u32> {
        None
    }
    fn cookie(&self) -> Option<u64> {
        self.cookie
    }
    fn bytes(&self) -> u64 {
        self.traffic.rx_bytes + self.traffic.tx_bytes
    }
    fn lifetime_ns(&self) -> Option<u64> {
        self.duration_ns
    }
}

/// An expression and the flags given with it, all of which must hold;
/// by default `Expr::True` and no workload flag: everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    pub expr: Expr,
    /// `--unit`, `--container`, `--cgroup` (`crate::workload::cli`).
    pub workload: WorkloadFilter,
}

/// `--unit` (exact), `--container` (a name or an id prefix), `--cgroup` (a
/// path prefix, whole components): each keeps an owner matching any of its
/// values; an owner of unknown workload matches none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadFilter {
    pub units: Vec<String>,
    pub containers: Vec<String>,
    pub cgroups: Vec<String>,
}

impl WorkloadFilter {
    /// Whether any of them is set: the workload must then be resolved.
    pub fn is_set(&self) -> bool {
        !(self.units.is_empty() && self.containers.is_empty() && self.cgroups.is_empty())
    }

    pub fn matches(&self, w: Option<&Workload>) -> bool {
        if !self.is_set() {
            return true;
        }
        let Some(w) = w else { return false };
        (self.units.is_empty() || w.unit.as_deref().is_some_and(|u| self.units.iter().any(|x| x == u)))
            && (self.containers.is_empty() || self.containers.iter().any(|c| w.container_is(c)))
            && (self.cgroups.is_empty() || self.cgroups.iter().any(|p| under(&w.cgroup, p)))
    }
}

/// Whether cgroup `path` is `prefix` or below it (`/a/b` is under `/a`,
/// `/ab` is not); the leading `/` is optional.
fn under(path: &str, prefix: &str) -> bool {
    let (path, prefix) = (path.trim_matches('/'), prefix.trim_matches('/'));
    prefix.is_empty() || path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Filter {
    /// The shorthand flags as expressions: `--pid 5 --pid 6` is `( pid = 5
    /// or pid = 6 )`, `--port 80` is `( sport = 80 or dport = 80 )`, `-4` is
    /// `family = 4`, `--netns N` is `netns = N`; different flags all hold.
    pub fn from_flags(pids: &[u32], ports: &[u16], ipv4: Option<bool>, netns: &[u32]) -> Self {
        let num = |field: &str, n: u64| Expr::test(field, Op::Eq, Value::Num(n));
        let pid = Expr::any(pids.iter().map(|&p| num("pid", p.into())).collect());
        let port = Expr::any(ports.iter().flat_map(|&p| [num("sport", p.into()), num("dport", p.into())]).collect());
        let family = ipv4.map_or(Expr::True, |v4| num("family", if v4 { 4 } else { 6 }));
        let ns = Expr::any(netns.iter().map(|&n| num("netns", n.into())).collect());
        Self { expr: pid.and(port).and(family).and(ns), workload: WorkloadFilter::default() }
    }

    /// Words given on the command line, joined as ss joins them.
    pub fn with_words(self, words: &[String]) -> Result<Self, ParseError> {
        let text = words.join(" ");
        Ok(Self { expr: self.expr.and(parse(&text)?), ..self })
    }

    pub fn matches(&self, s: &dyn Subject) -> bool {
        self.expr.matches(s) && self.workload.matches(s.workload())
    }

    pub fn is_all(&self) -> bool {
        self.expr == Expr::True && !self.workload.is_set()
    }
}
