//! `--json`: one object per line; the schema is documented in the README
//! and shared by every JSON output netwatch has.

use std::{
    fmt,
    io::{self, Write},
    net::IpAddr,
};

use netwatch_common::{EventKind, OwnerSource};
use serde::{Serialize, Serializer};

use super::{duration_ms, EventSink};
use crate::event::{
    clock::{SecondCache, WallClock},
    display_ip, kind_name, Event,
};

/// RFC 3339 in UTC with a fixed microsecond precision, so that lines sort
/// and align as text.
struct Ts<'a>(&'a str, u32);

impl Serialize for Ts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Ts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}Z", self.0, self.1)
    }
}

/// An address written straight into the output, IPv4-mapped shown as IPv4.
struct Ip(IpAddr);

impl Serialize for Ip {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&display_ip(self.0))
    }
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    ts: Ts<'a>,
    event: &'static str,
    pid: u32,
    comm: &'a str,
    uid: u32,
    family: &'static str,
    saddr: Ip,
    sport: u16,
    daddr: Ip,
    dport: u16,
    old_state: &'static str,
    new_state: &'static str,
    netns: u32,
    cookie: u64,
    owner: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    traffic: Option<JsonTraffic>,
}

/// A socket's traffic totals, in every JSON output that has them (the
/// README documents how headers are counted).
#[derive(Serialize)]
pub struct JsonTraffic {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
    pub tx_ip_bytes: u64,
    pub rx_ip_bytes: u64,
    pub retransmits: u32,
    pub resets_sent: u32,
    pub resets_received: u32,
}

impl From<&netwatch_common::Traffic> for JsonTraffic {
    fn from(t: &netwatch_common::Traffic) -> Self {
        Self {
            tx_bytes: t.tx_bytes,
            rx_bytes: t.rx_bytes,
            tx_packets: t.tx_packets,
            rx_packets: t.rx_packets,
            tx_ip_bytes: t.tx_ip_bytes,
            rx_ip_bytes: t.rx_ip_bytes,
            retransmits: t.retransmits,
            resets_sent: t.resets_sent,
            resets_received: t.resets_received,
        }
    }
}

/// Whether an event of this kind carries the socket's final totals.
pub const fn has_totals(kind: EventKind) -> bool {
    matches!(kind, EventKind::Close | EventKind::ConnectFailed | EventKind::UdpClose)
}

#[derive(Serialize)]
struct JsonLost<'a> {
    ts: Ts<'a>,
    event: &'static str,
    count: u64,
}

pub struct Json {
    seconds: SecondCache,
}

impl Json {
    pub fn new() -> Self {
        Self { seconds: SecondCache::new("%Y-%m-%dT%H:%M:%S", jiff::tz::TimeZone::UTC) }
    }
}

impl Default for Json {
    fn default() -> Self {
        Self::new()
    }
}

pub const fn owner_name(o: OwnerSource) -> &'static str {
    match o {
        OwnerSource::Unknown => "unknown",
        OwnerSource::Current => "process",
        OwnerSource::Listener => "listener",
        OwnerSource::Accept => "accept",
        OwnerSource::Proc => "proc",
    }
}

/// RFC 3339 in UTC with microseconds, for one-off timestamps.
pub fn rfc3339(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl EventSink for Json {
    fn event(&mut self, out: &mut Vec<u8>, e: &Event, clock: &WallClock) -> io::Result<()> {
        let closing = matches!(e.kind, EventKind::Close | EventKind::ConnectFailed);
        let (prefix, us) = self.seconds.split(clock.at(e.ts_ns));
        let j = JsonEvent {
            ts: Ts(prefix, us),
            event: kind_name(e.kind),
            pid: e.pid,
            comm: &e.comm.as_str(),
            uid: e.uid,
            family: e.family.name(),
            saddr: Ip(e.local.ip()),
            sport: e.local.port(),
            daddr: Ip(e.remote.ip()),
            dport: e.remote.port(),
            old_state: e.old_state_name(),
            new_state: e.new_state_name(),
            netns: e.netns,
            cookie: e.cookie,
            owner: owner_name(e.owner),
            duration_ms: if closing { e.duration_ns().map(duration_ms) } else { None },
            traffic: has_totals(e.kind).then(|| JsonTraffic::from(&e.traffic)),
        };
        serde_json::to_writer(&mut *out, &j)?;
        out.write_all(b"\n")
    }

    fn lost(&mut self, out: &mut Vec<u8>, count: u64, at: jiff::Timestamp) -> io::Result<()> {
        let (prefix, us) = self.seconds.split(at);
        serde_json::to_writer(&mut *out, &JsonLost { ts: Ts(prefix, us), event: "lost", count })?;
        out.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Comm, Family};

    pub fn event() -> Event {
        Event {
            kind: EventKind::Close,
            ts_ns: 10_000_000,
            start_ns: Some(6_500_000),
            cookie: 9,
            inode: 0,
            family: Family::V6,
            local: "[::ffff:127.0.0.1]:5000".parse().unwrap(),
            remote: "[::1]:80".parse().unwrap(),
            pid: 42,
            comm: Comm::new("srv \"x\""),
            uid: 0,
            netns: 1,
            old_state: 9,
            new_state: 7,
            owner: OwnerSource::Accept,
            traffic: netwatch_common::Traffic::ZERO,
        }
    }

    #[test]
    fn close_event_has_every_field_and_duration() {
        let mut out = Vec::new();
        Json::new().event(&mut out, &event(), &WallClock::new()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["event"], "close");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["comm"], "srv \"x\"");
        assert_eq!(v["family"], "IPv6");
        assert_eq!(v["saddr"], "127.0.0.1");
        assert_eq!(v["daddr"], "::1");
        assert_eq!((v["sport"].as_u64(), v["dport"].as_u64()), (Some(5000), Some(80)));
        assert_eq!((v["old_state"].as_str(), v["new_state"].as_str()), (Some("LAST_ACK"), Some("CLOSE")));
        assert_eq!(v["duration_ms"], 3.5);
        assert_eq!(v["owner"], "accept");
        assert_eq!((v["tx_bytes"].as_u64(), v["rx_bytes"].as_u64()), (Some(0), Some(0)));
        assert_eq!(v["retransmits"], 0);
        let ts = v["ts"].as_str().unwrap();
        assert!(ts.parse::<jiff::Timestamp>().is_ok(), "{ts}");
        assert_eq!(ts.len(), "2026-11-22T00:37:00.784084Z".len());
        assert!(out.ends_with(b"}\n"));
    }

    #[test]
    fn no_duration_outside_closes_or_when_start_unknown() {
        let mut e = event();
        e.kind = EventKind::State;
        let mut out = Vec::new();
        let mut j = Json::new();
        j.event(&mut out, &e, &WallClock::new()).unwrap();
        e.kind = EventKind::Close;
        e.start_ns = None;
        j.event(&mut out, &e, &WallClock::new()).unwrap();
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert!(v.get("duration_ms").is_none());
        }
    }

    #[test]
    fn totals_only_on_closing_events() {
        let mut e = event();
        e.traffic.tx_bytes = 1_000_000;
        e.traffic.rx_bytes = 10_000;
        e.traffic.retransmits = 3;
        e.traffic.resets_received = 1;
        let mut j = Json::new();
        let mut out = Vec::new();
        j.event(&mut out, &e, &WallClock::new()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!((v["tx_bytes"].as_u64(), v["rx_bytes"].as_u64()), (Some(1_000_000), Some(10_000)));
        assert_eq!((v["retransmits"].as_u64(), v["resets_received"].as_u64()), (Some(3), Some(1)));
        e.kind = EventKind::State;
        out.clear();
        j.event(&mut out, &e, &WallClock::new()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v.get("tx_bytes").is_none());
    }

    #[test]
    fn lost_line() {
        let mut out = Vec::new();
        Json::new().lost(&mut out, 17, jiff::Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"ts\":\"1970-01-01T00:00:00.000000Z\",\"event\":\"lost\",\"count\":17}\n"
        );
    }
}
