//! What a filter can test: the field table, and the state names.
//!
//! Every field is one entry of [`FIELDS`]: its name, the kind of value it
//! compares (which decides the operators and how the value is parsed) and a
//! function that hands each of a socket's values to a test. Adding a field
//! (`unit`, `container`, `rhost`) is adding one line, plus, when the value
//! is new, one method on [`Subject`].

use std::net::SocketAddr;

use netwatch_common::tcp;

use super::Subject;
use crate::socket::Proto;

/// One value of a socket's field, as handed to a test.
#[derive(Clone, Copy, Debug)]
pub enum Got<'a> {
    Num(u64),
    Text(&'a str),
    Sock(SocketAddr),
}

/// Calls the test with each of the subject's values for a field; true as
/// soon as one passes (a field such as `pid` has one value per holder).
pub type Getter = fn(&dyn Subject, &mut dyn FnMut(Got<'_>) -> bool) -> bool;

/// What a field's values are: how a filter's value is read and which
/// operators apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `sport`, `dport`: `:80` or `80`, compared as numbers.
    Port,
    /// `src`, `dst`: an address with an optional prefix length and port.
    Addr,
    /// A whole number (`k`, `M`, `G` suffixes: powers of 1024).
    Number,
    /// A duration (`500ms`, `10s`, `2m`), compared in nanoseconds.
    Duration,
    /// Text, compared exactly (`=`, `!=`) or by substring (`~`).
    Text,
}

pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub get: Getter,
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every field a filter can name besides `state`.
pub static FIELDS: &[Field] = &[
    Field { name: "sport", kind: Kind::Port, get: |s, f| f(Got::Num(s.local().port().into())) },
    Field { name: "dport", kind: Kind::Port, get: |s, f| f(Got::Num(s.remote().port().into())) },
    Field { name: "src", kind: Kind::Addr, get: |s, f| f(Got::Sock(s.local())) },
    Field { name: "dst", kind: Kind::Addr, get: |s, f| f(Got::Sock(s.remote())) },
    Field { name: "pid", kind: Kind::Number, get: |s, f| s.each_owner(&mut |pid, _| f(Got::Num(pid.into()))) },
    Field { name: "comm", kind: Kind::Text, get: |s, f| s.each_owner(&mut |_, comm| f(Got::Text(comm))) },
    Field { name: "uid", kind: Kind::Number, get: |s, f| s.uid().is_some_and(|u| f(Got::Num(u.into()))) },
    Field { name: "netns", kind: Kind::Number, get: |s, f| f(Got::Num(s.netns().into())) },
    Field { name: "cookie", kind: Kind::Number, get: |s, f| s.cookie().is_some_and(|c| f(Got::Num(c))) },
    Field { name: "bytes", kind: Kind::Number, get: |s, f| f(Got::Num(s.bytes())) },
    Field { name: "lifetime", kind: Kind::Duration, get: |s, f| s.lifetime_ns().is_some_and(|ns| f(Got::Num(ns))) },
    Field { name: "proto", kind: Kind::Text, get: |s, f| f(Got::Text(proto_name(s.proto()))) },
    Field { name: "family", kind: Kind::Number, get: |s, f| f(Got::Num(if s.ipv4_traffic() { 4 } else { 6 })) },
    Field {
        name: "unit",
        kind: Kind::Text,
        get: |s, f| s.workload().and_then(|w| w.unit.as_deref()).is_some_and(|u| f(Got::Text(u))),
    },
    // A container by its id or its name.
    Field {
        name: "container",
        kind: Kind::Text,
        get: |s, f| {
            s.workload()
                .and_then(|w| w.container.as_ref())
                .is_some_and(|c| f(Got::Text(&c.id)) || c.name.as_deref().is_some_and(|n| f(Got::Text(n))))
        },
    },
    Field { name: "cgroup", kind: Kind::Text, get: |s, f| s.workload().is_some_and(|w| f(Got::Text(&w.cgroup))) },
    Field {
        name: "pod",
        kind: Kind::Text,
        get: |s, f| s.workload().and_then(|w| w.pod_uid.as_deref()).is_some_and(|p| f(Got::Text(p))),
    },
    Field { name: "rhost", kind: Kind::Text, get: |s, f| s.rhost().is_some_and(|h| f(Got::Text(h))) },
];

pub fn field(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

const fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

/// A set of kernel state numbers, one bit each.
pub type States = u32;

const fn bit(state: u8) -> States {
    1 << state
}

/// Every state a socket can be in as netwatch shows it (request sockets
/// show as SYN_RECV).
const ALL: States = bit(tcp::ESTABLISHED)
    | bit(tcp::SYN_SENT)
    | bit(tcp::SYN_RECV)
    | bit(tcp::NEW_SYN_RECV)
    | bit(tcp::FIN_WAIT1)
    | bit(tcp::FIN_WAIT2)
    | bit(tcp::TIME_WAIT)
    | bit(tcp::CLOSE)
    | bit(tcp::CLOSE_WAIT)
    | bit(tcp::LAST_ACK)
    | bit(tcp::LISTEN)
    | bit(tcp::CLOSING);
const SYN_RECV: States = bit(tcp::SYN_RECV) | bit(tcp::NEW_SYN_RECV);

/// ss's state names and groups (ss(8), STATE-FILTER), then netstat's names.
pub fn states(name: &str) -> Option<States> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "all" => ALL,
        "connected" => ALL & !(bit(tcp::LISTEN) | bit(tcp::CLOSE)),
        "synchronized" => ALL & !(bit(tcp::LISTEN) | bit(tcp::CLOSE) | bit(tcp::SYN_SENT)),
        "bucket" => SYN_RECV | bit(tcp::TIME_WAIT),
        "big" => ALL & !(SYN_RECV | bit(tcp::TIME_WAIT)),
        "established" => bit(tcp::ESTABLISHED),
        "syn-sent" => bit(tcp::SYN_SENT),
        "syn-recv" | "syn_recv" => SYN_RECV,
        "fin-wait-1" => bit(tcp::FIN_WAIT1),
        "fin-wait-2" => bit(tcp::FIN_WAIT2),
        "time-wait" => bit(tcp::TIME_WAIT),
        "closed" | "unconn" => bit(tcp::CLOSE),
        "close-wait" => bit(tcp::CLOSE_WAIT),
        "last-ack" => bit(tcp::LAST_ACK),
        "listening" | "listen" => bit(tcp::LISTEN),
        "closing" => bit(tcp::CLOSING),
        _ => bit(tcp::from_name(name)?),
    })
}

pub const fn has_state(set: States, state: u8) -> bool {
    state < 32 && set & bit(state) != 0
}
