//! A parsed filter, and how it decides.

use std::net::{IpAddr, SocketAddr};

use super::{
    fields::{self, Field, Got, Kind, States},
    Subject,
};

#[derive(Clone, Debug, Default, PartialEq)]
pub enum Expr {
    /// Keeps everything (the empty filter).
    #[default]
    True,
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// `state NAME`: the socket's state is in the set.
    State(States),
    Test(Test),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    /// Text contains.
    Contains,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Num(u64),
    Text(String),
    /// An address prefix (`None`: any address, ss's `*`) and maybe a port.
    Net {
        net: Option<(IpAddr, u8)>,
        port: Option<u16>,
    },
}

#[derive(Clone, Debug)]
pub struct Test {
    pub field: &'static Field,
    pub op: Op,
    pub value: Value,
}

impl PartialEq for Test {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.field, other.field) && self.op == other.op && self.value == other.value
    }
}

impl Expr {
    pub fn matches(&self, s: &dyn Subject) -> bool {
        match self {
            Self::True => true,
            Self::Not(e) => !e.matches(s),
            Self::And(all) => all.iter().all(|e| e.matches(s)),
            Self::Or(any) => any.iter().any(|e| e.matches(s)),
            Self::State(set) => s.state().is_some_and(|st| fields::has_state(*set, st)),
            Self::Test(t) => t.matches(s),
        }
    }

    /// Whether the expression asks about states (`state`, `exclude`): the
    /// live view then lists every row it selects rather than collapse any.
    pub fn names_state(&self) -> bool {
        match self {
            Self::State(_) => true,
            Self::Not(e) => e.names_state(),
            Self::And(v) | Self::Or(v) => v.iter().any(Self::names_state),
            Self::True | Self::Test(_) => false,
        }
    }

    /// Both must hold; `True` disappears.
    pub fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::True, e) | (e, Self::True) => e,
            (Self::And(mut a), Self::And(b)) => {
                a.extend(b);
                Self::And(a)
            }
            (Self::And(mut a), e) => {
                a.push(e);
                Self::And(a)
            }
            (a, b) => Self::And(vec![a, b]),
        }
    }

    /// Either holds.
    pub fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::Or(mut a), Self::Or(b)) => {
                a.extend(b);
                Self::Or(a)
            }
            (Self::Or(mut a), e) => {
                a.push(e);
                Self::Or(a)
            }
            (a, b) => Self::Or(vec![a, b]),
        }
    }

    /// Any of `alternatives`; `True` when there are none (a flag not given).
    pub fn any(mut alternatives: Vec<Self>) -> Self {
        match alternatives.len() {
            0 => Self::True,
            1 => alternatives.pop().unwrap_or(Self::True),
            _ => Self::Or(alternatives),
        }
    }

    pub fn test(field: &str, op: Op, value: Value) -> Self {
        let field = fields::field(field).unwrap_or_else(|| panic!("no filter field {field}"));
        Self::Test(Test { field, op, value })
    }
}

impl Test {
    fn matches(&self, s: &dyn Subject) -> bool {
        // `!=` is "no value equals": a socket held by PIDs 5 and 6 is not
        // `pid != 5`, and one without an owner is.
        let (op, negate) = match self.op {
            Op::Ne => (Op::Eq, true),
            op => (op, false),
        };
        let hit = (self.field.get)(s, &mut |got| compare(op, got, &self.value));
        hit != negate
    }
}

fn compare(op: Op, got: Got<'_>, want: &Value) -> bool {
    match (got, want) {
        (Got::Num(n), Value::Num(w)) => match op {
            Op::Eq => n == *w,
            Op::Lt => n < *w,
            Op::Gt => n > *w,
            Op::Le => n <= *w,
            Op::Ge => n >= *w,
            Op::Ne | Op::Contains => false,
        },
        (Got::Text(t), Value::Text(w)) => match op {
            Op::Eq => t == w,
            Op::Contains => t.contains(w.as_str()),
            _ => false,
        },
        (Got::Sock(sa), Value::Net { net, port }) => {
            port.is_none_or(|p| p == sa.port()) && net.is_none_or(|(ip, len)| in_prefix(sa, ip, len))
        }
        _ => false,
    }
}

/// IPv4-mapped IPv6 addresses match IPv4 prefixes (they are IPv4 traffic).
fn in_prefix(sa: SocketAddr, net: IpAddr, len: u8) -> bool {
    match (sa.ip().to_canonical(), net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Reads a value for a field of `kind`; the error says what was expected.
pub fn value(kind: Kind, word: &str) -> Result<Value, String> {
    match kind {
        Kind::Port => {
            let digits = word.strip_prefix(':').unwrap_or(word);
            digits
                .parse::<u16>()
                .map(|p| Value::Num(p.into()))
                .map_err(|_| "expected a port number (`:80` or `80`)".into())
        }
        Kind::Number => number(word).map(Value::Num),
        Kind::Duration => crate::duration::parse_duration(word)
            .map(|d| Value::Num(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
            .map_err(|_| "expected a duration (`500ms`, `10s`, `2m`, `1h`)".into()),
        Kind::Text => Ok(Value::Text(word.to_owned())),
        Kind::Addr => address(word)
            .ok_or_else(|| "expected an address: `127.0.0.1`, `10.0.0.0/8`, `[::1]`, `[::1]:80`, `*:80`".into()),
    }
}

fn number(word: &str) -> Result<u64, String> {
    let (digits, scale) = match word.as_bytes().last() {
        Some(b'k' | b'K') => (&word[..word.len() - 1], 1 << 10),
        Some(b'M') => (&word[..word.len() - 1], 1 << 20),
        Some(b'G') => (&word[..word.len() - 1], 1 << 30),
        _ => (word, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| "expected a whole number (suffixes k, M, G)".into())
}

/// `ADDR`, `ADDR/LEN`, `ADDR:PORT`, `[V6]`, `[V6]/LEN`, `[V6]:PORT`, `V6`,
/// `*`, `*:PORT`.
fn address(word: &str) -> Option<Value> {
    let (host, port) = split_port(word)?;
    let net = match host {
        "*" => None,
        _ => {
            let (ip, len) = match host.split_once('/') {
                Some((ip, len)) => (ip, Some(len.parse::<u8>().ok()?)),
                None => (host, None),
            };
            let ip: IpAddr = ip.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = len.unwrap_or(max);
            if len > max {
                return None;
            }
            Some((ip, len))
        }
    };
    Some(Value::Net { net, port })
}

/// Splits a trailing `:PORT` off where it cannot be part of an IPv6
/// address: after `]`, after `*`, or after an IPv4 address.
fn split_port(word: &str) -> Option<(&str, Option<u16>)> {
    let Some((host, port)) = word.rsplit_once(':') else { return Some((word, None)) };
    let bracketed = word.starts_with('[') && host.ends_with(']');
    // `:80` alone is any address, as in ss.
    let host = if host.is_empty() { "*" } else { host };
    let v4 = !host.contains(':');
    if bracketed || v4 {
        let port = if port == "*" { None } else { Some(port.parse().ok()?) };
        return Some((host, port));
    }
    // A bare IPv6 address (`::1`) or one with a prefix (`[::1]/128`).
    Some((word, None))
}
