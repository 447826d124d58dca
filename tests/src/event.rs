//! netwatch's JSON event lines, parsed strictly: every field of the contract
//! must be present with its type, so a malformed line fails the test that
//! printed it.

use std::net::IpAddr;

use serde_json::Value;

/// Netstat names the `old_state`/`new_state` fields may carry.
pub const STATES: [&str; 11] = [
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

/// Values of the `event` field for socket events (`lost` is separate).
pub const KINDS: [&str; 11] = [
    "listen",
    "connect",
    "established",
    "handshake",
    "accept",
    "state",
    "close",
    "connect_failed",
    "udp_close",
    "destroy",
    "connect_error",
];

/// Events that end a socket, and carry its traffic totals.
pub const CLOSING: [&str; 3] = ["close", "connect_failed", "udp_close"];

/// Where the owner runs: present on any event, each where known.
pub const WORKLOAD_FIELDS: [&str; 7] =
    ["cgroup_id", "cgroup", "unit", "container_runtime", "container_id", "container_name", "pod_uid"];

/// The latency and failure fields (issue 18), each present only where the
/// event says it (docs/events.md), then the packet drops (on closing
/// events, only when there were any).
pub const WHY_FIELDS: [&str; 10] = [
    "connect_latency_us",
    "handshake_us",
    "syn_retransmits",
    "srtt_us",
    "reason",
    "errno",
    "protocol",
    "drops",
    "drop_reason",
    "drops_by_reason",
];

/// A socket's traffic totals, as every JSON output names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
    /// Only with per-packet counting (`events --traffic`, the live model).
    pub tx_ip_bytes: Option<u64>,
    pub rx_ip_bytes: Option<u64>,
    pub retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
}

impl Traffic {
    /// Reads every field (all required but the IP byte counts).
    pub fn from_json(v: &Value) -> Result<Self, String> {
        Ok(Self {
            tx_bytes: number(v, "tx_bytes")?,
            rx_bytes: number(v, "rx_bytes")?,
            tx_packets: number(v, "tx_packets")?,
            rx_packets: number(v, "rx_packets")?,
            tx_ip_bytes: optional(v, "tx_ip_bytes")?,
            rx_ip_bytes: optional(v, "rx_ip_bytes")?,
            retransmits: number(v, "retransmits")?,
            resets_sent: number(v, "resets_sent")?,
            resets_received: number(v, "resets_received")?,
        })
    }
}

/// One socket event line.
#[derive(Clone, Debug)]
pub struct SockEvent {
    pub line: String,
    pub ts: String,
    pub event: String,
    pub pid: u64,
    pub comm: String,
    pub uid: u64,
    pub family: String,
    pub saddr: String,
    pub sport: u16,
    pub daddr: String,
    pub dport: u16,
    pub old_state: String,
    pub new_state: String,
    pub netns: u64,
    pub cookie: u64,
    pub duration_ms: Option<f64>,
    /// On closing events only (required there, absent elsewhere).
    pub traffic: Option<Traffic>,
    /// The thread the event ran in (both or neither): only events made in
    /// a process's own system call have one.
    pub tid: Option<u64>,
    pub thread: Option<String>,
    /// On `accept` events only (required there, absent elsewhere).
    pub fd: Option<u64>,
    pub accept_queue_us: Option<u64>,
}

/// A parsed stdout line.
#[derive(Clone, Debug)]
pub enum Parsed {
    Sock(Box<SockEvent>),
    Lost { count: u64 },
}

/// Parses every line; panics naming the first malformed one.
pub fn parse_all(lines: &[String]) -> Vec<Parsed> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| parse_line(l).unwrap_or_else(|e| panic!("stdout line {i} is not a valid event ({e}): {l}")))
        .collect()
}

/// Only the socket events.
pub fn sock_events(parsed: &[Parsed]) -> Vec<SockEvent> {
    parsed
        .iter()
        .filter_map(|p| match p {
            Parsed::Sock(e) => Some((**e).clone()),
            Parsed::Lost { .. } => None,
        })
        .collect()
}

/// Sum of the counts of `lost` events.
pub fn lost_total(parsed: &[Parsed]) -> u64 {
    parsed.iter().map(|p| if let Parsed::Lost { count } = p { *count } else { 0 }).sum()
}

pub fn parse_line(line: &str) -> Result<Parsed, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let ts = string(&v, "ts")?;
    check_ts(&ts)?;
    let event = string(&v, "event")?;
    if event == "lost" {
        return Ok(Parsed::Lost { count: number(&v, "count")? });
    }
    if !KINDS.contains(&event.as_str()) {
        return Err(format!("unknown event {event:?}"));
    }
    let family = string(&v, "family")?;
    // A UDP close without per-packet counting has no totals.
    let traffic = if CLOSING.contains(&event.as_str()) && (event != "udp_close" || v.get("tx_bytes").is_some()) {
        Some(Traffic::from_json(&v)?)
    } else if v.get("tx_bytes").is_some() {
        return Err(format!("{event} event with traffic totals"));
    } else {
        None
    };
    let (tid, thread) = (optional(&v, "tid")?, v.get("thread").map(|_| string(&v, "thread")).transpose()?);
    if tid.is_some() != thread.is_some() || tid == Some(0) {
        return Err(format!("`tid` {tid:?} and `thread` {thread:?} come together, tid never 0"));
    }
    let fd = optional(&v, "fd")?;
    if fd.is_some() != (event == "accept") {
        return Err(format!("{event} event with fd {fd:?}: an `accept` has one, no other event does"));
    }
    let accept_queue_us = optional(&v, "accept_queue_us")?;
    if accept_queue_us.is_some() && event != "accept" {
        return Err(format!("{event} event with accept_queue_us"));
    }
    let e = SockEvent {
        traffic,
        tid,
        thread,
        fd,
        accept_queue_us,
        line: line.to_owned(),
        ts,
        event,
        pid: number(&v, "pid")?,
        comm: string(&v, "comm")?,
        uid: number(&v, "uid")?,
        saddr: address(&v, "saddr", &family)?,
        sport: port(&v, "sport")?,
        daddr: address(&v, "daddr", &family)?,
        dport: port(&v, "dport")?,
        old_state: state(&v, "old_state")?,
        new_state: state(&v, "new_state")?,
        netns: number(&v, "netns")?,
        cookie: number(&v, "cookie")?,
        duration_ms: match v.get("duration_ms") {
            None | Some(Value::Null) => None,
            Some(d) => Some(d.as_f64().ok_or("duration_ms is not a number")?),
        },
        family,
    };
    Ok(Parsed::Sock(Box::new(e)))
}

fn string(v: &Value, key: &str) -> Result<String, String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("`{key}` missing or not a string"))
}

fn number(v: &Value, key: &str) -> Result<u64, String> {
    v.get(key).and_then(Value::as_u64).ok_or_else(|| format!("`{key}` missing or not an unsigned integer"))
}

fn optional(v: &Value, key: &str) -> Result<Option<u64>, String> {
    v.get(key).map(|_| number(v, key)).transpose()
}

fn port(v: &Value, key: &str) -> Result<u16, String> {
    u16::try_from(number(v, key)?).map_err(|_| format!("`{key}` is not a port"))
}

fn state(v: &Value, key: &str) -> Result<String, String> {
    let s = string(v, key)?;
    if STATES.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(format!("`{key}` = {s:?} is not a netstat state name"))
    }
}

/// IPv4 as a dotted quad; IPv6 in canonical compressed form, except that
/// IPv4-mapped addresses must be shown as dotted quads.
fn address(v: &Value, key: &str, family: &str) -> Result<String, String> {
    let s = string(v, key)?;
    let ip: IpAddr = s.parse().map_err(|_| format!("`{key}` = {s:?} is not an IP address"))?;
    match (family, ip) {
        ("IPv4", IpAddr::V4(_)) => Ok(s),
        ("IPv6", IpAddr::V4(_)) => Ok(s),
        ("IPv6", IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
            Err(format!("`{key}` = {s:?}: IPv4-mapped addresses must be shown as dotted quads"))
        }
        ("IPv6", IpAddr::V6(v6)) if v6.to_string() != s => {
            Err(format!("`{key}` = {s:?} is not in canonical form ({v6})"))
        }
        ("IPv6", IpAddr::V6(_)) => Ok(s),
        _ => Err(format!("`{key}` = {s:?} does not match family {family:?}")),
    }
}

/// RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SS[.frac](Z|+00:00)`.
fn check_ts(ts: &str) -> Result<(), String> {
    let bad = || format!("ts {ts:?} is not an RFC 3339 UTC timestamp");
    let rest = ts.strip_suffix('Z').or_else(|| ts.strip_suffix("+00:00")).ok_or_else(bad)?;
    let (base, frac) = rest.split_once('.').unwrap_or((rest, "0"));
    let shape = base.len() == 19
        && base.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if shape && !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"ts":"2025-01-02T03:04:05.123456Z","event":"connect","pid":7,"comm":"nw-peer","uid":0,"family":"IPv6","saddr":"::1","sport":0,"daddr":"::1","dport":80,"old_state":"CLOSE","new_state":"SYN_SENT","netns":4026531840,"cookie":9}"#;

    #[test]
    fn parses_a_connect() {
        let Ok(Parsed::Sock(e)) = parse_line(LINE) else { panic!("did not parse") };
        assert_eq!((e.pid, e.dport, e.saddr.as_str(), e.duration_ms), (7, 80, "::1", None));
    }

    #[test]
    fn rejects_non_canonical_and_mapped_ipv6() {
        assert!(parse_line(&LINE.replace(r#""saddr":"::1""#, r#""saddr":"0:0::1""#)).is_err());
        assert!(parse_line(&LINE.replace(r#""saddr":"::1""#, r#""saddr":"::ffff:127.0.0.1""#)).is_err());
        assert!(parse_line(&LINE.replace(r#""saddr":"::1""#, r#""saddr":"127.0.0.1""#)).is_ok());
    }

    #[test]
    fn checks_timestamps() {
        assert!(check_ts("2025-01-02T03:04:05Z").is_ok());
        assert!(check_ts("2025-01-02T03:04:05.1+00:00").is_ok());
        assert!(check_ts("2025-01-02 03:04:05Z").is_err());
        assert!(check_ts("2025-01-02T03:04:05+01:00").is_err());
        assert!(check_ts("1735787045").is_err());
    }

    #[test]
    fn parses_lost() {
        let l = r#"{"ts":"2025-01-02T03:04:05Z","event":"lost","count":3}"#;
        assert!(matches!(parse_line(l), Ok(Parsed::Lost { count: 3 })));
    }
}
