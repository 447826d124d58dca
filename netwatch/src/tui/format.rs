//! Short human labels for the table cells: pure, unit tested.

use std::{fmt::Write as _, net::SocketAddr};

use crate::event::display_ip;

/// Appends `addr:port` (IPv6 in brackets, IPv4-mapped shown as IPv4) to
/// `out`, the allocation-free twin of `output::text::endpoint`.
pub fn push_endpoint(out: &mut String, sa: SocketAddr) {
    let _ = write!(out, "{}", SocketAddr::new(display_ip(sa.ip()), sa.port()));
}

/// A byte count in 4 characters or so, binary units: `0`, `512`, `1.5K`,
/// `340K`, `12M`, `3.1G`. Empty for zero would hide "counted nothing"
/// from "not counted", so zero is `0`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return n.to_string();
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1}{}", UNITS[unit])
    } else {
        format!("{}{}", v as u64, UNITS[unit])
    }
}

/// A duration as a person reads it: `3.2ms`, `350ms`, `12s`, `5m03s`,
/// `2h10m`, `3d04h`. Below 10 ms a decimal is kept: that is where the
/// short-lived connections netwatch exists to catch live.
pub fn duration(ns: u64) -> String {
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;
    match ns {
        n if n < 10 * MS => format!("{:.1}ms", n as f64 / MS as f64),
        n if n < S => format!("{}ms", n / MS),
        n if n < 60 * S => format!("{}s", n / S),
        n if n < 3600 * S => format!("{}m{:02}s", n / (60 * S), n / S % 60),
        n if n < 86_400 * S => format!("{}h{:02}m", n / (3600 * S), n / (60 * S) % 60),
        n => format!("{}d{:02}h", n / (86_400 * S), n / (3600 * S) % 24),
    }
}

/// A latency in microseconds (the Connect and RTT columns): loopback and
/// LAN figures are well under a millisecond, so those get µs.
pub fn latency(us: u64) -> String {
    if us < 1_000 {
        format!("{us}us")
    } else {
        duration(us * 1_000)
    }
}

/// The Age column; `>` marks a connection older than netwatch, whose age
/// only counts from when it was first seen.
pub fn age(ns: u64, start_known: bool) -> String {
    if start_known {
        duration(ns)
    } else {
        format!(">{}", duration(ns))
    }
}

/// Case-insensitive substring test with `needle` already lowercase; no
/// allocation, since it runs over every row when a filter is set.
pub fn contains_ci(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use crate::socket::TcpState;

    use super::*;
    use crate::{
        output::snapshot::{proto_label as proto, state_name as state},
        socket::{Family, Proto},
    };

    #[test]
    fn byte_counts_are_short() {
        assert_eq!(bytes(0), "0");
        assert_eq!(bytes(1023), "1023");
        assert_eq!(bytes(1536), "1.5K");
        assert_eq!(bytes(1_000_000), "976K");
        assert_eq!(bytes(5 << 30), "5.0G");
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        let ms = 1_000_000;
        let s = 1_000 * ms;
        for (ns, want) in [
            (0, "0.0ms"),
            (3 * ms + 200_000, "3.2ms"),
            (350 * ms, "350ms"),
            (999 * ms, "999ms"),
            (12 * s + 400 * ms, "12s"),
            (59 * s, "59s"),
            (5 * 60 * s + 3 * s, "5m03s"),
            (2 * 3600 * s + 10 * 60 * s + 59 * s, "2h10m"),
            (3 * 86_400 * s + 4 * 3600 * s, "3d04h"),
        ] {
            assert_eq!(duration(ns), want, "{ns} ns");
        }
        assert_eq!(age(12 * s, true), "12s");
        assert_eq!(age(12 * s, false), ">12s");
    }

    #[test]
    fn labels_follow_netstat() {
        assert_eq!(proto(Proto::Tcp, Family::V6), "tcp6");
        assert_eq!(proto(Proto::Udp, Family::V4), "udp");
        assert_eq!(state(Proto::Tcp, TcpState::Listen), "LISTEN");
        assert_eq!(state(Proto::Udp, TcpState::Close), "");
        assert_eq!(state(Proto::Udp, TcpState::Established), "ESTABLISHED");
        let mut s = String::new();
        push_endpoint(&mut s, "[::ffff:10.0.0.1]:80".parse().unwrap());
        push_endpoint(&mut s, "[::1]:22".parse().unwrap());
        assert_eq!(s, "10.0.0.1:80[::1]:22");
    }

    #[test]
    fn substring_ignores_ascii_case() {
        assert!(contains_ci("1234/Nginx", "nginx"));
        assert!(contains_ci("anything", ""));
        assert!(!contains_ci("ab", "abc"));
    }
}
