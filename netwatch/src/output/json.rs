//! `--json`: one object per line; the schema is documented in the README
//! and shared by every JSON output netwatch has.

use std::io::{self, Write};

use serde::Serialize;

use super::{duration_ms, EventSink};
use crate::event::{clock::WallClock, display_ip, kind_name, Event};

#[derive(Serialize)]
struct JsonEvent<'a> {
    ts: String,
    event: &'static str,
    pid: u32,
    comm: &'a str,
    uid: u32,
    family: &'static str,
    saddr: String,
    sport: u16,
    daddr: String,
    dport: u16,
    old_state: &'static str,
    new_state: &'static str,
    netns: u32,
    cookie: u64,
    owner: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
}

#[derive(Serialize)]
struct JsonLost {
    ts: String,
    event: &'static str,
    count: u64,
}

pub struct Json;

/// RFC 3339 in UTC with a fixed microsecond precision, so that lines sort
/// and align as text.
pub fn rfc3339(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn owner_name(o: netwatch_common::OwnerSource) -> &'static str {
    use netwatch_common::OwnerSource::*;
    match o {
        Unknown => "unknown",
        Current => "process",
        Listener => "listener",
        Accept => "accept",
    }
}

impl EventSink for Json {
    fn event(&mut self, out: &mut dyn Write, e: &Event, clock: &WallClock) -> io::Result<()> {
        let closing = matches!(e.kind, netwatch_common::EventKind::Close | netwatch_common::EventKind::ConnectFailed);
        let j = JsonEvent {
            ts: rfc3339(clock.at(e.ts_ns)),
            event: kind_name(e.kind),
            pid: e.pid,
            comm: &e.comm,
            uid: e.uid,
            family: e.family.name(),
            saddr: display_ip(e.local.ip()).to_string(),
            sport: e.local.port(),
            daddr: display_ip(e.remote.ip()).to_string(),
            dport: e.remote.port(),
            old_state: e.old_state_name(),
            new_state: e.new_state_name(),
            netns: e.netns,
            cookie: e.cookie,
            owner: owner_name(e.owner),
            duration_ms: if closing { e.duration_ns().map(duration_ms) } else { None },
        };
        serde_json::to_writer(&mut *out, &j)?;
        out.write_all(b"\n")
    }

    fn lost(&mut self, out: &mut dyn Write, count: u64, at: jiff::Timestamp) -> io::Result<()> {
        serde_json::to_writer(&mut *out, &JsonLost { ts: rfc3339(at), event: "lost", count })?;
        out.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use netwatch_common::{EventKind, OwnerSource};

    use super::*;
    use crate::event::Family;

    pub fn event() -> Event {
        Event {
            kind: EventKind::Close,
            ts_ns: 10_000_000,
            start_ns: Some(6_500_000),
            cookie: 9,
            family: Family::V6,
            local: "[::ffff:127.0.0.1]:5000".parse().unwrap(),
            remote: "[::1]:80".parse().unwrap(),
            pid: 42,
            comm: "srv \"x\"".into(),
            uid: 0,
            netns: 1,
            old_state: 9,
            new_state: 7,
            owner: OwnerSource::Accept,
        }
    }

    #[test]
    fn close_event_has_every_field_and_duration() {
        let mut out = Vec::new();
        Json.event(&mut out, &event(), &WallClock::new()).unwrap();
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
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
        assert!(out.ends_with(b"}\n"));
    }

    #[test]
    fn no_duration_outside_closes_or_when_start_unknown() {
        let mut e = event();
        e.kind = EventKind::State;
        let mut out = Vec::new();
        Json.event(&mut out, &e, &WallClock::new()).unwrap();
        e.kind = EventKind::Close;
        e.start_ns = None;
        Json.event(&mut out, &e, &WallClock::new()).unwrap();
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert!(v.get("duration_ms").is_none());
        }
    }

    #[test]
    fn lost_line() {
        let mut out = Vec::new();
        Json.lost(&mut out, 17, jiff::Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"ts\":\"1970-01-01T00:00:00.000000Z\",\"event\":\"lost\",\"count\":17}\n");
    }
}
