//! Human-readable lines, one per event, aligned like tcpstates/tcplife.

use std::{
    io::{self, Write},
    net::SocketAddr,
};

use jiff::tz::TimeZone;

use super::{duration_ms, EventSink};
use crate::stream::Loss;
use crate::{
    event::{
        clock::{SecondCache, WallClock},
        display_ip, Event,
    },
    socket::event_label,
};

pub struct Text {
    seconds: SecondCache,
    packets: bool,
    /// The WORKLOAD column (`-W`): container, else unit, else cgroup.
    workload: bool,
}

impl Text {
    /// Local time, as tcpstates and tcplife print it.
    pub fn new() -> Self {
        Self::in_zone(TimeZone::try_system().unwrap_or(TimeZone::UTC))
    }

    fn in_zone(tz: TimeZone) -> Self {
        Self { seconds: SecondCache::new("%H:%M:%S", tz), packets: true, workload: false }
    }

    /// With the WORKLOAD column last.
    pub fn with_workload(self) -> Self {
        Self { workload: true, ..self }
    }

    /// See [`super::json::Json::without_packet_counters`].
    pub fn without_packet_counters() -> Self {
        Self { packets: false, ..Self::new() }
    }

    fn time(&mut self, at: jiff::Timestamp) -> String {
        let (prefix, us) = self.seconds.split(at);
        format!("{prefix}.{us:06}")
    }
}

impl Default for Text {
    fn default() -> Self {
        Self::new()
    }
}

/// `addr:port`, IPv6 in brackets, IPv4-mapped shown as IPv4.
pub fn endpoint(sa: SocketAddr) -> String {
    SocketAddr::new(display_ip(sa.ip()), sa.port()).to_string()
}

/// Bytes as whole KiB, rounded down as tcplife does.
fn kib(bytes: u64) -> String {
    (bytes / 1024).to_string()
}

/// Latency figures and the failure reason, appended to a line as
/// `key=value` words (`crate::why`): `lat=` connect latency, `hs=` passive
/// handshake, `syn_rtx=` handshake retransmits, `srtt=`, `reason=` with the
/// errno in brackets, `drops=` packets dropped with their count per reason
/// in brackets.
fn why_text(e: &Event) -> String {
    let l = crate::why::latency(e);
    let mut words = Vec::new();
    words.extend(l.connect_us.map(|us| format!("lat={}", micros(us))));
    words.extend(l.handshake_us.map(|us| format!("hs={}", micros(us))));
    words.extend(l.syn_retransmits.filter(|&n| n != 0).map(|n| format!("syn_rtx={n}")));
    words.extend(l.srtt_us.map(|us| format!("srtt={}", micros(u64::from(us)))));
    words.extend(crate::why::failure(e).map(|f| format!("reason={}", f.label(""))));
    if e.kind == netwatch_common::EventKind::ConnectError {
        if let Some(p) = crate::why::protocol_name(e.traffic.protocol) {
            words.push(format!("proto={p}"));
        }
    }
    if e.kind == netwatch_common::EventKind::ListenDrop {
        words.push(format!("drops={}", e.traffic.drops));
    }
    if super::json::has_totals(e.kind) && e.traffic.drops != 0 {
        let reasons: Vec<String> =
            crate::probe::drops_by_reason(&e.traffic).into_iter().map(|(r, n)| format!("{r}:{n}")).collect();
        words.push(format!("drops={}({})", e.traffic.drops, reasons.join(",")));
    }
    words.join(" ")
}

/// Microseconds as milliseconds with three decimals, like DURATION.
fn micros(us: u64) -> String {
    format!("{:.3}ms", us as f64 / 1000.0)
}

impl EventSink for Text {
    fn header(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        write!(
            out,
            "{:<15} {:<14} {:<22} {:<28} {:<28} {:<26} {:<12} {:>9} {:>9}",
            "TIME", "EVENT", "PID/COMM", "LOCAL", "REMOTE", "TRANSITION", "DURATION", "TX_KB", "RX_KB"
        )?;
        writeln!(out, "{}", if self.workload { " WORKLOAD" } else { "" })
    }

    fn event(&mut self, out: &mut Vec<u8>, e: &Event, clock: &WallClock) -> io::Result<()> {
        let transition = format!("{} -> {}", e.old_state.name(), e.new_state.name());
        let duration = e.lifetime_ns().map(|ns| format!("{:.3}ms", duration_ms(ns))).unwrap_or_default();
        // tcplife's columns: payload KiB each way, on the events that end a socket.
        let (tx, rx) = if super::json::totals_known(e.kind, self.packets) {
            (kib(e.traffic.tx_bytes), kib(e.traffic.rx_bytes))
        } else {
            (String::new(), String::new())
        };
        let line = format!(
            "{:<15} {:<14} {:<22} {:<28} {:<28} {:<26} {:<12} {:>9} {:>9}",
            self.time(clock.at(e.ts_ns)),
            e.kind.name(),
            event_label(e.pid, &e.comm),
            endpoint(e.local),
            endpoint(e.remote),
            transition,
            duration,
            tx,
            rx
        );
        let mut line = match (self.workload, &e.workload) {
            (true, Some(w)) => format!("{line} {w}"),
            (true, None) => format!("{line} -"),
            (false, _) => line.trim_end().to_owned(),
        };
        let why = why_text(e);
        if !why.is_empty() {
            line.push(' ');
            line.push_str(&why);
        }
        // The name is escaped where it was parsed: no spaces, nothing unprintable.
        if let Some(h) = &e.rhost {
            line.push_str(" rhost=");
            line.push_str(h);
        }
        writeln!(out, "{line}")
    }

    fn lost(&mut self, out: &mut Vec<u8>, loss: &Loss, at: jiff::Timestamp) -> io::Result<()> {
        writeln!(out, "{:<15} {:<14} {} events lost ({})", self.time(at), "lost", loss.total(), loss.causes())
    }
}

#[cfg(test)]
mod tests {
    use netwatch_common::EventKind;

    use super::*;
    use crate::{
        event::Comm,
        socket::{Family, TcpState},
    };

    /// `e`'s line, times in UTC.
    fn line(e: &Event) -> String {
        let mut out = Vec::new();
        Text::in_zone(TimeZone::UTC).event(&mut out, e, &WallClock::new()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn line_has_owner_endpoints_transition_and_duration() {
        let e = Event {
            ts_ns: 2_000_000,
            start_ns: Some(1_000_000),
            family: Family::V6,
            local: "[::1]:41000".parse().unwrap(),
            remote: "[::1]:9".parse().unwrap(),
            pid: 7,
            ..crate::event::fixture(EventKind::ConnectFailed, TcpState::SynSent, TcpState::Close)
        };
        let s = line(&e);
        for want in ["connect_failed", "7/curl", "[::1]:41000", "[::1]:9", "SYN_SENT -> CLOSE", "1.000ms"] {
            assert!(s.contains(want), "{want:?} missing from {s:?}");
        }
        assert!(s.contains("1.000ms") && s.ends_with(" 0 reason=aborted\n"), "{s:?}");
    }

    #[test]
    fn latency_and_reason_are_appended() {
        let mut e = Event {
            ts_ns: 1_250_000,
            start_ns: Some(1_000_000),
            local: "127.0.0.1:41000".parse().unwrap(),
            pid: 7,
            ..crate::event::fixture(EventKind::Established, TcpState::SynSent, TcpState::Established)
        };
        e.traffic.total_retrans = 1;
        assert!(line(&e).ends_with(" SYN_SENT -> ESTABLISHED lat=0.250ms syn_rtx=1\n"), "{:?}", line(&e));
        (e.kind, e.old_state, e.new_state) = (EventKind::Close, TcpState::Established, TcpState::Close);
        (e.traffic.sk_err, e.traffic.srtt_us) = (104, 2500);
        assert!(line(&e).ends_with(" srtt=2.500ms reason=reset_by_peer(ECONNRESET)\n"), "{:?}", line(&e));
        (e.kind, e.old_state, e.traffic.sk_err, e.traffic.protocol) =
            (EventKind::ConnectError, TcpState::Close, 101, 17);
        assert!(line(&e).ends_with(" reason=no_route(ENETUNREACH) proto=udp\n"), "{:?}", line(&e));
        // Packets dropped, per reason (named by number where this
        // kernel's BTF does not name them), after the reason.
        (e.kind, e.traffic.drops, e.traffic.drop_slots, e.traffic.drop_counts) = (EventKind::Close, 3, 9999, [2, 0, 0]);
        assert!(line(&e).ends_with(" reason=no_route(ENETUNREACH) drops=3(9999:2,other:1)\n"), "{:?}", line(&e));
        e.kind = EventKind::ConnectError;
        // The remote's name from DNS comes last.
        e.rhost = Some("svc.example.test".into());
        assert!(line(&e).ends_with(" proto=udp rhost=svc.example.test\n"), "{:?}", line(&e));
    }

    /// `-W`: a last column, its header aligned with it; `-` where unknown.
    #[test]
    fn workload_column() {
        let mut e = Event {
            ts_ns: 2_000_000,
            start_ns: None,
            local: "127.0.0.1:80".parse().unwrap(),
            remote: "0.0.0.0:0".parse().unwrap(),
            pid: 7,
            comm: Comm::new("nginx"),
            ..crate::event::fixture(EventKind::Listen, TcpState::Close, TcpState::Listen)
        };
        let mut t = Text::in_zone(TimeZone::UTC).with_workload();
        let mut out = Vec::new();
        t.header(&mut out).unwrap();
        t.event(&mut out, &e, &WallClock::new()).unwrap();
        e.workload = Some(crate::tui::fixtures::workload("/system.slice/nginx.service", Some("nginx.service"), None));
        t.event(&mut out, &e, &WallClock::new()).unwrap();
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        let at = lines[0].find("WORKLOAD").unwrap();
        assert_eq!(&lines[1][at..], "-", "{s}");
        assert_eq!(&lines[2][at..], "nginx.service", "{s}");
        assert!(!line(&e).contains("nginx.service"), "no column without -W");
    }

    #[test]
    fn lost_line_names_the_cause() {
        let mut out = Vec::new();
        let loss = Loss { ring_full: 0, skipped: 3 };
        Text::in_zone(TimeZone::UTC).lost(&mut out, &loss, jiff::Timestamp::UNIX_EPOCH).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.ends_with(" lost           3 events lost (hook runs skipped)\n"), "{s:?}");
    }
}
